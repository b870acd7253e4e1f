"""Hostile inputs (issue 13's list): each gives exit 2 with one line naming the file, or a finding,
never a traceback, and leaves every input byte-identical. Run through the installed CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import TensorProto, helper, numpy_helper

from .conftest import REPO, onnxdoctor_exe

sys.path.insert(0, str(REPO / "bench"))
import fuzz  # noqa: E402  (the fuzz harness's catalog builds the hostile models)


def _hashes(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p)] = "link:" + os.readlink(p)
        elif p.is_fifo():
            out[str(p)] = "fifo"
        elif p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _judge(proc, model: Path, *, allow: tuple[int, ...] = (0, 1, 2)) -> str:
    """The contract: no traceback, exit 0/1/2, exit 2 with one line naming the model."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-2000:]
    assert proc.returncode in allow, (proc.returncode, proc.stdout[-1000:], proc.stderr[-1000:])
    assert "\x1b" not in proc.stdout + proc.stderr
    if proc.returncode == 2:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("onnxdoctor: ") and model.name in lines[0], lines[0]
        return lines[0]
    return proc.stdout


COMMANDS = {
    "check": lambda m, out: ("check", m, "--format", "json"),
    "fix": lambda m, out: ("fix", m, "-o", out / "fixed.onnx", "--isolated"),
    "verify": lambda m, out: ("verify", m, "--fp16"),
}

# Every unusual external-data location of the issue: refused (exit 2) or reported (MOD502).
EXTERNAL_CASES = ["ext-long-name", "ext-long-component", "ext-nul", "ext-symlink-loop", "ext-negative-offset",
                  "ext-past-end-offset", "ext-no-length-short", "ext-nonnumeric", "ext-absolute", "ext-dotdot",
                  "ext-symlink-out", "ext-fifo", "ext-directory", "ext-no-location", "ext-huge-length",
                  "ext-in-sparse", "ext-in-constant", "ext-in-function", "ext-in-function-dotdot", "ext-in-if"]


@pytest.mark.parametrize("case", EXTERNAL_CASES)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_unusual_external_data_is_refused_or_reported(run_cli, tmp_path, case, command):
    folder = tmp_path / "m"
    folder.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    model = folder / fuzz.CATALOG[case](folder)
    before = _hashes(folder)
    proc = run_cli(*COMMANDS[command](model, out))
    result = _judge(proc, model)
    if proc.returncode != 2:
        # check may report it: then as MOD502 (missing or short data)
        assert command == "check" and "MOD502" in result, (case, result[:500])
    else:
        assert list(out.iterdir()) == []
    assert _hashes(folder) == before


@pytest.mark.parametrize("case", ["ext-in-constant-ok", "ext-in-if-ok"])
def test_external_data_in_constants_and_branches_is_loaded(run_cli, tmp_path, case):
    """Tensors hidden in Constant attributes and If branches are read like initializers."""
    folder = tmp_path / "m"
    folder.mkdir()
    model = folder / fuzz.CATALOG[case](folder)
    before = _hashes(folder)
    proc = run_cli("fix", model, "-o", tmp_path / "fixed.onnx", "--isolated")
    _judge(proc, model, allow=(0, 1))
    onnx.checker.check_model(onnx.load(tmp_path / "fixed.onnx"))
    assert _hashes(folder) == before


def test_invalid_utf8_in_names_and_strings(run_cli, tmp_path):
    model = tmp_path / fuzz.CATALOG["utf8-garbage"](tmp_path)
    before = _hashes(tmp_path)
    for fmt in ("text", "json", "sarif", "github"):
        proc = run_cli("check", model, "--format", fmt, "-v")
        _judge(proc, model, allow=(0, 1))
        assert "\\xf8\\x88P" in proc.stdout.replace("\\\\", "\\")  # the dim's name, decoded leniently, is shown
    line = _judge(run_cli("fix", model, "-o", tmp_path / "x.onnx"), model, allow=(2,))
    assert "not valid UTF-8" in line
    assert _hashes(tmp_path) == before


@pytest.mark.parametrize("case,needle", [("elem-0", "element type 0"), ("elem-999", "element type 999"),
                                         ("dims-2^40", "1,099,511,627,776"), ("rank-66", "rank 66"),
                                         ("big-static-input", "300,000,000")])
def test_inputs_that_cannot_be_generated_are_one_line(run_cli, tmp_path, case, needle):
    model = tmp_path / fuzz.CATALOG[case](tmp_path)
    before = _hashes(tmp_path)
    for args in (("fix", model, "-o", tmp_path / "x.onnx", "--precision", "fp16", "--unsafe-fixes"), ("verify", model, "--fp16")):
        line = _judge(run_cli(*args), model, allow=(2,))
        assert needle in line, line
    assert _hashes(tmp_path) == before


def test_absurd_static_dims_in_fix(run_cli, tmp_path):
    m = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[1073741824,1073741824] x) => (float[1073741824,1073741824] y) { y = Relu(x) }""")
    model = tmp_path / "absurd.onnx"
    onnx.save(m, model)
    _judge(run_cli("fix", model, "-o", tmp_path / "x.onnx"), model, allow=(2,))
    assert not (tmp_path / "x.onnx").exists()


def test_qdq_axis_given_as_a_list_is_a_finding(run_cli, tmp_path):
    model = tmp_path / fuzz.CATALOG["qdq-axis-list"](tmp_path)
    before = _hashes(tmp_path)
    proc = run_cli("check", model, "--format", "json", "--trt", "10.15")
    out = _judge(proc, model, allow=(1,))
    assert '"MOD506"' in out
    # fix and verify (which tracebacked on it) give a result or one line
    (tmp_path / "out").mkdir()
    for args in (("fix", model, "-o", tmp_path / "out" / "x.onnx", "--isolated"), ("verify", model, "--fp16")):
        _judge(run_cli(*args), model)
    assert {k: v for k, v in _hashes(tmp_path).items() if "/out/" not in k} == before


@pytest.mark.parametrize("case,code", [("dup-producer", "MOD504"), ("writes-input", "MOD504"), ("opset-99", "MOD505")])
def test_structurally_invalid_models_are_findings_not_silence(run_cli, tmp_path, case, code):
    model = tmp_path / fuzz.CATALOG[case](tmp_path)
    proc = run_cli("check", model, "--format", "json")
    out = _judge(proc, model, allow=(1,))
    assert f'"{code}"' in out


def test_folder_run_with_an_unreadable_model_says_so_on_stderr(run_cli, tmp_path):
    """Text format too: an unreadable model always has its line on stderr (exit 1 beside readable
    models, exit 2 when none could be read)."""
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage")
    (tmp_path / "worse.onnx").write_bytes(b"")
    for expected in (2, 1):
        proc = run_cli("check", tmp_path)  # text format
        assert proc.returncode == expected, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 2 and all(ln.startswith("onnxdoctor: ") for ln in lines), proc.stderr
        assert "bad.onnx" in lines[0] and "worse.onnx" in lines[1]
        onnx.save(fuzz.small_model(), tmp_path / "good.onnx")


def test_a_model_onnx_runtime_cannot_run_names_the_file(run_cli, tmp_path):
    model = tmp_path / fuzz.CATALOG["opset-99"](tmp_path)
    for args in (("fix", model, "-o", tmp_path / "x.onnx"), ("verify", model, "--fp16")):
        _judge(run_cli(*args), model, allow=(2,))


@pytest.mark.parametrize("command", ["check", "check-github", "fix", "verify", "profile"])
def test_terminal_escapes_from_the_model_are_escaped(run_cli, tmp_path, command):
    model = tmp_path / fuzz.CATALOG["escapes"](tmp_path)
    args = {"check": ("check", model), "check-github": ("check", model, "--format", "github"),
            "fix": ("fix", model, "-o", tmp_path / "x.onnx", "--no-prove"), "verify": ("verify", model, "--fp16"),
            "profile": ("profile", model, "--no-validate")}[command]
    proc = run_cli(*args)
    _judge(proc, model)
    if command != "profile":  # (the profile of static inputs names none)
        assert "\\x1b" in proc.stdout + proc.stderr  # shown, escaped


def test_deeply_nested_and_garbage_bytes(run_cli, tmp_path):
    for case in ("nested-bytes-1000", "nested-bytes-70", "empty-graph"):
        folder = tmp_path / case
        folder.mkdir()
        model = folder / fuzz.CATALOG[case](folder)
        for command in ("check", "fix", "verify"):
            _judge(run_cli(*COMMANDS[command](model, folder)), model)


def test_graphsurgeon_logging_stays_quiet(run_cli, tmp_path):
    """graphsurgeon logged "[W] Found distinct Nodes that share the same name" to stdout with the
    nodes' raw names (terminal escapes included) when fix imported a graph with duplicate names."""
    m = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[2,4] x) => (float[2,4] y) {
      two = Constant<value = float {2.0}>()
      three = Constant<value = float {3.0}>()
      six = Mul(two, three)
      a = Mul(x, six)
      dead = Neg(a)
      y = Abs(a)
    }""")
    m.graph.node[3].name = m.graph.node[5].name = "evil\x1b[31m\x1b]0;x\x07"
    model = tmp_path / "dup-names.onnx"
    onnx.save(m, model)
    before = _hashes(tmp_path)
    (tmp_path / "out").mkdir()
    proc = run_cli("fix", model, "-o", tmp_path / "out" / "x.onnx", "--rules", "strict", "--no-prove", "--isolated")
    _judge(proc, model, allow=(0, 1))
    assert "[W]" not in proc.stdout + proc.stderr and "colored" not in proc.stdout + proc.stderr
    assert not [ln for ln in proc.stderr.splitlines() if ln.strip()], proc.stderr
    assert {k: v for k, v in _hashes(tmp_path).items() if "/out/" not in k} == before


# ------------------------------------------------------------------------------------------------
# Resources: issue 13's hangs and memory, each a fast result or one clear over-budget line
# ------------------------------------------------------------------------------------------------
def _measured(*args) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run the CLI in a child of a fresh Python: (process, wall seconds, that run's peak RSS in MB)."""
    code = ("import resource, subprocess, sys, time, json\n"
            "t = time.monotonic()\n"
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "print(json.dumps([p.returncode, p.stdout, p.stderr, time.monotonic() - t,"
            " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))\n")
    out = subprocess.run([sys.executable, "-c", code, *onnxdoctor_exe(), *map(str, args)], capture_output=True,
                         text=True, timeout=600)
    rc, stdout, stderr, seconds, rss = json.loads(out.stdout)
    return subprocess.CompletedProcess(args, rc, stdout, stderr), seconds, rss


def test_fp16_conversion_of_a_5000_output_graph_is_fast(tmp_path):
    """Renaming kept-type outputs was a pass over every node per output (minutes at 5,000 outputs)."""
    model = tmp_path / "wide.onnx"
    onnx.save(fuzz._many_outputs(5000), model)
    before = _hashes(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    proc, seconds, _ = _measured("fix", model, "-o", out / "wide16.onnx", "--precision", "fp16", "--unsafe-fixes",
                                 "--isolated")
    _judge(proc, model, allow=(0, 1))
    assert seconds < 120, seconds  # a few seconds on a quiet machine
    fixed = onnx.load(out / "wide16.onnx")
    assert len(fixed.graph.output) == 5000
    assert {o.type.tensor_type.elem_type for o in fixed.graph.output} == {TensorProto.FLOAT}  # I/O types kept
    assert sum(n.op_type == "Cast" for n in fixed.graph.node) >= 5000
    assert {k: v for k, v in _hashes(tmp_path).items() if "/out/" not in k} == before


# The 100,000-node chain under --time-limit: tests/test_deadline.py.


def test_a_1kb_model_declaring_a_huge_static_input_stays_small(tmp_path):
    """float[30000, 10000] declared by a 1 KB model made fix --precision fp16 take 5.9 GB."""
    model = tmp_path / fuzz.CATALOG["big-static-input"](tmp_path)
    assert model.stat().st_size < 1024
    before = _hashes(tmp_path)
    for args in (("fix", model, "-o", tmp_path / "x.onnx", "--precision", "fp16", "--unsafe-fixes"),
                 ("verify", model, "--against", model, "--layerwise")):
        proc, _, rss = _measured(*args)
        assert "300,000,000" in _judge(proc, model, allow=(2,))
        assert rss < 1000, rss  # nothing generated: the interpreter, onnx and ONNX Runtime only
    assert _hashes(tmp_path) == before


def test_2_2_gb_of_external_weights_stay_on_the_external_data_path(run_cli, tmp_path):
    """A 3 KB model whose 22 tensors of 100 MB live in a 2.2 GB (sparse) file: check reads no weight
    (the 2 GB protobuf limit never comes near), and the file is left as it was."""
    folder = tmp_path / "m"
    folder.mkdir()
    k, n = 22, 25_000_000
    model = _sparse_external_model(folder, k, n)
    stat = (folder / "w.bin").stat()
    proc, seconds, rss = _measured("check", model, "--format", "json")
    _judge(proc, model, allow=(0, 1))
    assert rss < 1000, rss  # the weights were not read
    assert (folder / "w.bin").stat().st_mtime_ns == stat.st_mtime_ns and (folder / "w.bin").stat().st_size == k * n * 4


def _sparse_external_model(folder: Path, k: int, n: int, runtime_index: bool = False) -> Path:
    """A model whose k float tensors of n elements live in one sparse file of zeros, w.bin, each
    read by a Gather of 4 elements: at constant indices, or (`runtime_index`) at indices computed
    from the input (nothing to fold)."""
    with open(folder / "w.bin", "wb") as fh:
        fh.truncate(k * n * 4)  # zeros, no disk blocks
    if runtime_index:
        nodes = [helper.make_node("Mul", ["x", "zero"], ["x0"]), helper.make_node("Cast", ["x0"], ["idx"], to=TensorProto.INT64)]
        inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    else:
        nodes, inits = [], [numpy_helper.from_array(np.array([0, 1, 2, 3], np.int64), "idx")]
    outs = []
    for i in range(k):
        t = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=[n], data_location=TensorProto.EXTERNAL)
        for key, value in (("location", "w.bin"), ("offset", str(i * n * 4)), ("length", str(n * 4))):
            t.external_data.add(key=key, value=value)
        inits.append(t)
        nodes += [helper.make_node("Gather", [f"w{i}", "idx"], [f"g{i}"]), helper.make_node("Add", [f"g{i}", "x"], [f"o{i}"])]
        outs.append(helper.make_tensor_value_info(f"o{i}", TensorProto.FLOAT, [4]))
    g = helper.make_graph(nodes, "huge", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])], outs, initializer=inits)
    model = folder / "huge.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), model)
    return model


def test_an_impossible_annotation_does_not_blow_up_data_propagation(tmp_path):
    """A Constant whose value_info says element type 999 and 2^40 elements, read by a Gather of a
    Shape: merged into inference, onnx's data propagation computed 2^40 values inside one call
    (10.9 GB before the time limit could stop it; fuzz seed 2031, case 59). fix drops annotations
    no tensor can have, and runs in its usual size."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array(0, np.int64))),
             helper.make_node("Gather", ["s", "c"], ["g"], axis=0),
             helper.make_node("Unsqueeze", ["g", "ax"], ["gu"]),
             helper.make_node("Concat", ["gu", "four"], ["shp"], axis=0),
             helper.make_node("Reshape", ["x", "shp"], ["y"])]
    g = helper.make_graph(nodes, "poisoned", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.array([0], np.int64), "ax"),
                           numpy_helper.from_array(np.array([4], np.int64), "four")])
    vi = g.value_info.add()
    vi.name, vi.type.tensor_type.elem_type = "c", 999
    vi.type.tensor_type.shape.dim.add().dim_value = 2**40
    model = tmp_path / "poisoned.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), model)
    before = _hashes(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    proc, _, rss = _measured("fix", model, "-o", out / "fixed.onnx", "--isolated", "--time-limit", "60")
    _judge(proc, model, allow=(0, 1))
    assert rss < 1000, rss
    fixed = onnx.load(out / "fixed.onnx")
    assert not any(v.type.tensor_type.elem_type == 999 for v in fixed.graph.value_info)
    assert {k: v for k, v in _hashes(tmp_path).items() if "/out/" not in k} == before


def test_2_2_gb_of_external_weights_through_fix_are_held_once(tmp_path):
    """fix reads a file's external weights straight into its store (never into the protobuf), runs
    them in ONNX Runtime as fed inputs (no session copy): on 2.2 GB of zeros (22 equal tensors, one
    stored entry) a dry run stays far below the weights' size. It peaked at 12.9 GB. (With constant
    indices, fold-constants materializes the weights it folds: a few copies of them, see
    docs/robustness.md.)"""
    folder = tmp_path / "m"
    folder.mkdir()
    model = _sparse_external_model(folder, k=22, n=25_000_000, runtime_index=True)
    before = _hashes(tmp_path)
    proc, _, rss = _measured("fix", model, "--dry-run", "--rules", "default", "--isolated")
    _judge(proc, model, allow=(0, 1))
    assert "proof of the result vs the original: pass" in proc.stdout or "no rewrite applied" in proc.stdout, proc.stdout
    assert rss < 1500, rss  # the interpreter, onnx, ONNX Runtime and one 100 MB entry
    assert _hashes(tmp_path) == before


def test_fix_holds_distinct_external_weights_about_once(tmp_path):
    """256 MB of distinct external weights through `fix -o`: the peak grows by about the weights'
    size over the same model with tiny weights (it grew by 4.25x: the protobuf's copy, the store's,
    ONNX Runtime's session copy, the materialized result and its serialization)."""
    peaks = {}
    for n in (64, 4096):
        folder = tmp_path / str(n)
        folder.mkdir()
        rng = np.random.default_rng(0)
        ws = [numpy_helper.from_array((rng.standard_normal((n, n), dtype=np.float32) / n).astype(np.float32), f"w{i}")
              for i in range(4)]
        nodes = [helper.make_node("Identity", ["x"], ["h"])]
        x = "h"
        for i in range(4):
            nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]))
            x = f"m{i}"
        g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, n])], initializer=ws)
        model = folder / "mlp.onnx"
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), model, save_as_external_data=True,
                  location="mlp.onnx.data")
        out = folder / "out.onnx"
        proc, _, peaks[n] = _measured("fix", model, "-o", out, "--rules", "default", "--isolated")
        _judge(proc, model, allow=(0, 1))
        assert "remove-noops" in proc.stdout and "proof of the result vs the original: pass" in proc.stdout, proc.stdout
        fixed = onnx.load(out)  # its weights written from the store, each where the model says
        assert [i.name for i in fixed.graph.initializer] == [w.name for w in ws]
        for got, want in zip(fixed.graph.initializer, ws):
            np.testing.assert_array_equal(numpy_helper.to_array(got), numpy_helper.to_array(want))
    weights_mb = 4 * 4096 * 4096 * 4 / 2**20
    assert peaks[4096] - peaks[64] < 2 * weights_mb, peaks


@pytest.mark.parametrize("case", ["if-branch-int", "transpose-perm-float"])
def test_attributes_of_another_kind_are_no_traceback(run_cli, tmp_path, case):
    """Found by the fuzz run seed 2027 (cases 426, 525): an If whose then_branch is an INT and a
    Transpose chain whose perm is a FLOAT tracebacked in check's predicates and layout patterns."""
    if case == "if-branch-int":
        m = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (bool c, float[2] x) => (float[2] y) {
          y = If(c) <then_branch = g1 () => (float[2] r) { r = Neg(x) }, else_branch = g2 () => (float[2] r) { r = Abs(x) }>
        }""")
        node = m.graph.node[0]
        keep = [a for a in node.attribute if a.name != "then_branch"]
        del node.attribute[:]
        node.attribute.extend([*keep, helper.make_attribute("then_branch", 3)])
    else:
        m = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,2,3] x) => (float[1,2,3] y) {
          t = Transpose<perm = [0, 2, 1]>(x)
          y = Transpose<perm = [0, 2, 1]>(t)
        }""")
        node = m.graph.node[1]
        del node.attribute[:]
        node.attribute.append(helper.make_attribute("perm", 1.5))
    model = tmp_path / f"{case}.onnx"
    onnx.save(m, model)
    before = _hashes(tmp_path)
    for fmt in ("text", "github"):
        _judge(run_cli("check", model, "--format", fmt, "--trt", "10.15"), model)
    assert _hashes(tmp_path) == before
