"""The one write path (io.py): outputs that are inputs are refused, a model and its external data are
replaced as a pair, temporaries do not outlive a killed writer, and every I/O error is one line.

Faults are real where the machine allows it (a full or read-only tmpfs in a private mount namespace,
a file-size limit) and injected otherwise (`_ONNXDOCTOR_TEST_FAULT`: a SIGKILL or an errno at a named
step of the write, in the real CLI process)."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

from .conftest import onnxdoctor_exe

MODEL = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[2,512] x) => (float[2,512] y) { t = Add(x, w) y = Relu(t) dead = Neg(x) }
"""


def _model(scale: float = 1.0) -> onnx.ModelProto:
    m = onnx.parser.parse_model(MODEL)
    m.graph.initializer.extend([numpy_helper.from_array(np.arange(512, dtype=np.float32) * scale, "w"),
                                numpy_helper.from_array(np.ones((64, 64), np.float32), "unused_big")])
    return m


def _save_pair(folder: Path, name: str = "m.onnx", location: str | None = None, scale: float = 1.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    onnx.save_model(_model(scale), path, save_as_external_data=True, location=location or f"{name}.data", size_threshold=0)
    return path


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _run(*args, env_extra: dict | None = None, preexec=None, timeout: int = 300, prefix: list[str] | None = None):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run((prefix or []) + onnxdoctor_exe() + [str(a) for a in args], capture_output=True, text=True,
                          env=env, preexec_fn=preexec, timeout=timeout)


def _one_line(proc, *needles: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("onnxdoctor: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _w(path: Path) -> np.ndarray:
    m = onnx.load(path)  # loads the external data: the pair must be complete
    onnx.checker.check_model(m)
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}["w"]


def _temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".onnxdoctor-tmp." in p.name]


# ------------------------------------------------------------------------------------------------
# Outputs that are inputs
# ------------------------------------------------------------------------------------------------
def test_fix_output_onto_the_inputs_external_data_is_refused(tmp_path):
    src = _save_pair(tmp_path / "m", "model.onnx")
    before = _hashes(src.parent)
    _one_line(_run("fix", src, "-o", src.parent / "model.onnx.data"), "model.onnx.data", "external data")
    assert _hashes(src.parent) == before


def test_fix_never_overwrites_another_models_data_named_like_its_output(tmp_path):
    """a.onnx keeps its weights in b.onnx.data: `fix a.onnx -o b.onnx` writes its data elsewhere."""
    a = _save_pair(tmp_path, "a.onnx", location="b.onnx.data")
    before = _hashes(tmp_path)
    proc = _run("fix", a, "-o", tmp_path / "b.onnx", "--rules", "strict", "--isolated")
    assert proc.returncode == 0, proc.stderr
    after = _hashes(tmp_path)
    assert {k: after[k] for k in before} == before  # a.onnx and b.onnx.data byte-identical
    assert np.array_equal(_w(tmp_path / "b.onnx"), np.arange(512, dtype=np.float32))
    assert "b.onnx.1.data" in after


@pytest.mark.parametrize("how", ["same", "dotdot", "symlink", "hardlink"])
@pytest.mark.parametrize("command", ["check-o", "check-baseline", "fix-o", "fix-report", "verify-o"])
def test_report_and_model_outputs_never_overwrite_the_input(tmp_path, command, how):
    m = tmp_path / "m.onnx"
    onnx.save(_model(), m)
    if how == "same":
        out = m
    elif how == "dotdot":
        (tmp_path / "sub").mkdir()
        out = tmp_path / "sub" / ".." / "m.onnx"
    elif how == "symlink":
        out = tmp_path / "link.onnx"
        out.symlink_to(m)
    else:
        out = tmp_path / "hard.onnx"
        os.link(m, out)
    before = m.read_bytes()
    args = {
        "check-o": ("check", m, "-o", out),
        "check-baseline": ("check", m, "--write-baseline", out),
        "fix-o": ("fix", m, "-o", out),
        "fix-report": ("fix", m, "-o", tmp_path / "fixed.onnx", "--report", out),
        "verify-o": ("verify", m, "--fp16", "-o", out),
    }[command]
    _one_line(_run(*args), str(out), "refused")
    assert m.read_bytes() == before
    assert not (tmp_path / "fixed.onnx").exists()


def test_check_report_onto_external_data_or_baseline_is_refused(tmp_path):
    m = _save_pair(tmp_path)
    before = _hashes(tmp_path)
    _one_line(_run("check", m, "-o", tmp_path / "m.onnx.data"), "m.onnx.data", "external data")
    base = tmp_path / "b.json"
    assert _run("check", m, "--write-baseline", base).returncode == 0
    before = _hashes(tmp_path)
    _one_line(_run("check", m, "--baseline", base, "-o", base), "b.json", "--baseline")
    assert _hashes(tmp_path) == before


def test_verify_report_onto_the_against_model_is_refused(tmp_path):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(_model(), a)
    onnx.save(_model(), b)
    before = _hashes(tmp_path)
    _one_line(_run("verify", a, "--against", b, "-o", b), "b.onnx", "--against")
    assert _hashes(tmp_path) == before


def test_two_outputs_naming_one_file_are_refused(tmp_path):
    m = tmp_path / "m.onnx"
    onnx.save(_model(), m)
    _one_line(_run("fix", m, "-o", tmp_path / "x.onnx", "--report", tmp_path / "x.onnx"), "x.onnx")
    _one_line(_run("check", m, "-o", tmp_path / "x.json", "--write-baseline", tmp_path / "x.json"), "x.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_missing_folder_and_directory_outputs_are_one_line(tmp_path):
    m = tmp_path / "m.onnx"
    onnx.save(_model(), m)
    _one_line(_run("fix", m, "-o", tmp_path / "nope" / "x.onnx"), "nope", "does not exist")
    _one_line(_run("check", m, "-o", tmp_path / "nope" / "r.txt"), "nope", "does not exist")
    _one_line(_run("fix", m, "-o", tmp_path), "is a directory")


# ------------------------------------------------------------------------------------------------
# Model + external data replaced as a pair
# ------------------------------------------------------------------------------------------------
def test_rewriting_an_output_replaces_the_pair_and_removes_the_old_data(tmp_path):
    src = _save_pair(tmp_path / "src")
    out = tmp_path / "out" / "o.onnx"
    out.parent.mkdir()
    for expected in ("o.onnx.data", "o.onnx.1.data", "o.onnx.data"):
        proc = _run("fix", src, "-o", out, "--rules", "strict", "--isolated")
        assert proc.returncode == 0, proc.stderr
        assert sorted(p.name for p in out.parent.iterdir()) == sorted(["o.onnx", expected])
        assert np.array_equal(_w(out), np.arange(512, dtype=np.float32))


def test_in_place_replaces_the_pair(tmp_path):
    src = _save_pair(tmp_path)
    proc = _run("fix", src, "--in-place", "--rules", "strict", "--isolated")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.1.data"]
    m = onnx.load(src)
    assert "unused_big" not in {t.name for t in m.graph.initializer}


STEPS = ["data-written", "model-written", "data-renamed", "committed"]


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("mode", ["in-place", "existing-output"])
def test_killed_between_steps_leaves_the_old_pair_or_the_new_pair(tmp_path, step, mode):
    src = _save_pair(tmp_path / "src", scale=1.0)
    if mode == "in-place":
        target = src
        args = ("fix", src, "--in-place")
    else:
        target = _save_pair(tmp_path / "out", "o.onnx", scale=2.0)  # an older result, other weights
        args = ("fix", src, "-o", target)
        src_before = _hashes(src.parent)
    old_w = _w(target).copy()
    proc = _run(*args, "--rules", "strict", "--isolated", env_extra={"_ONNXDOCTOR_TEST_FAULT": f"{step}:kill"})
    assert proc.returncode == -9, (proc.returncode, proc.stderr)
    w = _w(target)  # loads: a complete pair
    new_w = np.arange(512, dtype=np.float32)
    committed = step == "committed"
    assert np.array_equal(w, new_w if committed else old_w)
    if mode == "existing-output":
        assert _hashes(src.parent) == src_before
    # The next write cleans what the killed one left.
    proc = _run(*args, "--rules", "strict", "--isolated")
    assert proc.returncode == 0, proc.stderr
    assert _temporaries(target.parent) == []
    assert np.array_equal(_w(target), new_w)


@pytest.mark.parametrize("step", ["write", "data-written", "model-written", "data-renamed"])
def test_injected_io_error_before_the_commit_changes_nothing(tmp_path, step):
    src = _save_pair(tmp_path / "src")
    target = _save_pair(tmp_path / "out", "o.onnx", scale=2.0)
    before = _hashes(target.parent)
    proc = _run("fix", src, "-o", target, "--rules", "strict", "--isolated",
                env_extra={"_ONNXDOCTOR_TEST_FAULT": f"{step}:enospc"})
    line = _one_line(proc, "o.onnx", "no space left")
    assert "nothing was changed" in line
    assert _hashes(target.parent) == before  # no temporaries, no new data file, old pair intact


def test_io_error_after_the_commit_says_so(tmp_path):
    src = _save_pair(tmp_path / "src")
    out = tmp_path / "o.onnx"
    proc = _run("fix", src, "-o", out, "--rules", "strict", "--isolated", env_extra={"_ONNXDOCTOR_TEST_FAULT": "committed:eio"})
    _one_line(proc, "o.onnx", "written, but")
    assert np.array_equal(_w(out), np.arange(512, dtype=np.float32))


def test_report_write_error_is_one_line(tmp_path):
    m = tmp_path / "m.onnx"
    onnx.save(_model(), m)
    proc = _run("check", m, "-o", tmp_path / "r.json", "--format", "json", env_extra={"_ONNXDOCTOR_TEST_FAULT": "write:enospc"})
    _one_line(proc, "r.json", "no space left")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_file_size_limit_is_a_real_io_error(tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse the write (EFBIG): a real error, not an injected one."""
    src = _save_pair(tmp_path / "src")
    out = tmp_path / "o.onnx"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))  # the data file is 2 KiB

    proc = _run("fix", src, "-o", out, "--rules", "strict", "--isolated", preexec=limit)
    _one_line(proc, "o.onnx", "file too large")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def _private_tmpfs(options: str) -> list[str] | None:
    """A command prefix running in a private mount namespace with a small tmpfs at $MNT."""
    unshare = shutil.which("unshare")
    if unshare is None or sys.platform != "linux":
        return None
    probe = subprocess.run([unshare, "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True)
    if probe.returncode != 0:
        return None
    return [unshare, "-rm", "sh", "-c", f'mount -t tmpfs -o {options} tmpfs "$MNT" && eval "$FILL" && exec "$@"', "sh"]


@pytest.mark.parametrize("kind", ["full", "read-only"])
def test_real_full_disk_and_read_only_folder(tmp_path, kind):
    prefix = _private_tmpfs("size=32k" if kind == "full" else "ro,size=64k")
    # full: 28 of its 32 KiB taken, one page left for the 2 KiB data file and none for the model
    fill = 'head -c 28672 /dev/zero > "$MNT/filler"' if kind == "full" else "true"
    if prefix is None:
        pytest.skip("cannot mount a private tmpfs here (no user namespaces)")
    src = _save_pair(tmp_path / "src")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    before = _hashes(src.parent)
    proc = _run("fix", src, "-o", mnt / "o.onnx", "--rules", "strict", "--isolated", prefix=prefix,
                env_extra={"MNT": str(mnt), "FILL": fill})
    _one_line(proc, "o.onnx", "no space left" if kind == "full" else "read-only file system")
    assert _hashes(src.parent) == before


def test_concurrent_writers_leave_one_complete_pair(tmp_path):
    src = _save_pair(tmp_path / "src")
    out = tmp_path / "out" / "o.onnx"
    out.parent.mkdir()
    env = dict(os.environ)
    procs = [subprocess.Popen(onnxdoctor_exe() + ["fix", str(src), "-o", str(out), "--rules", "strict", "--isolated",
                                                  "--no-prove"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for _ in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    assert np.array_equal(_w(out), np.arange(512, dtype=np.float32))
    m = onnx.load(out, load_external_data=False)
    used = {e.value for t in m.graph.initializer for e in t.external_data if e.key == "location"}
    assert sorted(p.name for p in out.parent.iterdir()) == sorted({"o.onnx"} | used)


def test_writing_external_data_holds_one_tensor_copy_at_a_time(tmp_path):
    """protobuf hands out a copy of a tensor's bytes at each read: the data file's chunks were all
    read before writing (every weight twice in memory), and swapping stubs into the model and back
    copied every weight into its protobuf arena again (kept until the model goes). Measured in a
    fresh interpreter: 4 tensors of 64 MB, the peak RSS while writing them over the RSS before."""
    code = f"""
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
from onnxdoctor.io import Inputs, save_model
def mb(key):
    return int(next(l for l in open('/proc/self/status') if l.startswith(key)).split()[1]) // 1024
n = 16 * 2**20
inits = [numpy_helper.from_array(np.full(n, i + 1, np.float32), f"w{{i}}") for i in range(4)]
nodes = [helper.make_node("Add", ["x", f"w{{i}}"], [f"y{{i}}"]) for i in range(4)]
g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])],
                      [helper.make_tensor_value_info(f"y{{i}}", TensorProto.FLOAT, [n]) for i in range(4)], initializer=inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
del inits, g
before = mb("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # the peak starts again from here
save_model(m, {str(tmp_path / "out.onnx")!r}, Inputs(), external=True)
print(mb("VmHWM") - before, mb("VmRSS") - before)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    peak, kept = map(int, proc.stdout.split())
    assert peak < 160, peak  # one 64 MB tensor copy at a time (was 4 copies, then 4 more in the arena)
    assert kept < 32, kept
    back = onnx.load(tmp_path / "out.onnx")
    assert [float(numpy_helper.to_array(t)[7]) for t in back.graph.initializer] == [1.0, 2.0, 3.0, 4.0]
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in onnx.load(tmp_path / "out.onnx", load_external_data=False).graph.initializer)
