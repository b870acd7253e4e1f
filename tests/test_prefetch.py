"""Shape inference in a helper process (prefetch.py, _infer_worker.py): same result as in-process,
used only for the very file it read, and never required."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdoctor import api, model as model_mod, prefetch

pytestmark = pytest.mark.skipif(not prefetch.usable(), reason="needs two usable cores")


def _big_model(path, *, inconsistent: bool = False):
    """Big enough for the helper (an inline weight of ~600 KiB), with shapes to infer through a
    Shape -> Gather -> Concat -> Reshape chain."""
    w = numpy_helper.from_array(np.ones((400, 400), np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        helper.make_node("Shape", ["h"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["b"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["b", "zero1"], ["b1"], name="unsq"),
        helper.make_node("Concat", ["b1", "tail"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["h", "target"], ["r"], name="reshape"),
        helper.make_node("Relu", ["r"], ["y"], name="relu"),
    ]
    inits = [w, numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "zero1"),
             numpy_helper.from_array(np.array([20, 20], np.int64), "tail")]
    x_shape = ["batch", 400]
    if inconsistent:  # strict shape inference fails: the MatMul inner dims disagree
        x_shape = ["batch", 399]
    g = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(m, path)
    assert os.path.getsize(path) >= prefetch.MIN_BYTES
    return path


def _types(m: model_mod.Model) -> dict:
    return {name: m.main.types.get(name) for name in sorted(m.main.types.names())}


def test_helper_inference_is_used_and_equals_in_process(tmp_path):
    path = str(_big_model(tmp_path / "big.onnx"))
    prefetch.start(path)
    assert prefetch._key(path) in prefetch._pending
    got = model_mod.load(path, use_prefetch=True)
    assert prefetch._key(path) not in prefetch._pending  # taken
    ref = model_mod.load(path)
    assert _types(got) == _types(ref)
    assert got.main.types.get("h").shape == ("batch", 400) and got.main.types.get("r").rank == 3
    assert got.shape_inference_error is None and ref.shape_inference_error is None


def test_inference_error_from_the_helper_is_the_same_finding(tmp_path):
    path = str(_big_model(tmp_path / "bad.onnx", inconsistent=True))
    prefetch.start(path)
    got = model_mod.load(path, use_prefetch=True)
    ref = model_mod.load(path)
    assert ref.shape_inference_error and got.shape_inference_error == ref.shape_inference_error
    assert _types(got) == _types(ref)


def test_a_file_changed_after_the_helper_read_it_is_inferred_again(tmp_path):
    path = str(_big_model(tmp_path / "big.onnx"))
    prefetch.start(path)
    _big_model(tmp_path / "big.onnx", inconsistent=True)  # rewritten: new size or mtime
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    got = model_mod.load(path, use_prefetch=True)
    assert got.shape_inference_error  # inferred from the new content, not the helper's old result


def test_a_failing_helper_is_not_needed(tmp_path, monkeypatch):
    broken = tmp_path / "worker.py"
    broken.write_text("import sys; sys.exit(3)\n")
    monkeypatch.setattr(prefetch, "_WORKER", str(broken))
    path = str(_big_model(tmp_path / "big.onnx"))
    prefetch.start(path)
    got = model_mod.load(path, use_prefetch=True)
    assert _types(got) == _types(model_mod.load(path))


def test_small_files_and_frozen_shapes_do_not_use_a_helper(tmp_path):
    small = tmp_path / "small.onnx"
    onnx.save(helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]), opset_imports=[helper.make_opsetid("", 17)]), small)
    prefetch.start(small)
    assert prefetch._key(small) not in prefetch._pending
    path = str(_big_model(tmp_path / "big.onnx"))
    prefetch.start(path)
    m = model_mod.load(path, use_prefetch=True, shapes={"x": [2, 400]})
    assert prefetch._key(path) not in prefetch._pending  # discarded: the frozen graph is inferred here
    assert m.main.types.get("h").shape == (2, 400)


def test_check_reports_the_same_with_and_without_helper(tmp_path, run_cli, monkeypatch):
    path = _big_model(tmp_path / "big.onnx")
    with_helper = run_cli("check", path, "--format", "json")
    alone = run_cli("check", path, "--format", "json", "-j", "1")
    assert with_helper.returncode == alone.returncode
    assert json.loads(with_helper.stdout) == json.loads(alone.stdout)
    started = []
    monkeypatch.setattr(prefetch, "start", lambda p, _real=prefetch.start: (started.append(p), _real(p)))
    assert api.check(str(path)).models[0].findings == api.check(str(path), jobs=1).models[0].findings
    assert started == [str(path)]  # the default used the helper; jobs=1 did not


def test_launcher_knows_which_check_options_take_a_value():
    import click

    from onnxdoctor import _launch, cli

    takes_value = set()
    for p in cli.check.params:
        if isinstance(p, click.Option) and not p.is_flag and not p.count:
            takes_value.update(p.opts + p.secondary_opts)
    assert takes_value == _launch.CHECK_VALUE_OPTIONS


@pytest.mark.parametrize(("args", "expected"), [
    (["m.onnx"], "m.onnx"),
    (["--trt", "8.6", "m.onnx", "--format", "json", "-o", "out.json"], "m.onnx"),
    (["--trt=10", "-oout.json", "--isolated", "--no-color", "m.onnx", "-j", "2"], "m.onnx"),
    (["--format", "json", "--", "-odd-name.onnx"], "-odd-name.onnx"),
    (["m.onnx", "-j", "1"], None),        # one process asked for
    (["m.onnx", "-j1"], None),
    (["m.onnx", "--jobs=1"], None),
    (["m.onnx", "--shape", "x:1x3"], None),  # frozen shapes change the graph before inference
    (["a.onnx", "b.onnx"], None),          # several models: no helper
    (["--trt"], None),
    ([], None),
])
def test_launcher_finds_the_single_model(args, expected):
    from onnxdoctor._launch import single_model

    assert single_model(args) == expected


def _big_nested_model(path):
    """Over MIN_BYTES, with an If (two branches) and a model-local function: every graph the views
    have must be typed from the helper's packed types."""
    text = """
    <ir_version: 8, opset_import: ["" : 17, "local" : 1]>
    g (bool c, float[N, 400] x) => (float[N, 400] y, float[N, 400] z) {
      h = MatMul(x, w)
      y = If <then_branch = t () => (float[N, 400] a) { a = Relu(h) },
              else_branch = e () => (float[N, 400] b) { b = Neg(h) }> (c)
      z = local.Twice(h)
    }
    <domain: "local", opset_import: ["" : 17]>
    Twice (v) => (out) { s = Add(v, v) out = Identity(s) }
    """
    m = onnx.parser.parse_model(text)
    m.graph.initializer.append(numpy_helper.from_array(np.ones((400, 400), np.float32), "w"))
    onnx.save(m, path)
    assert os.path.getsize(path) >= prefetch.MIN_BYTES
    return str(path)


def test_helper_types_every_graph_and_function(tmp_path):
    path = _big_nested_model(tmp_path / "nested.onnx")
    prefetch.start(path)
    got = model_mod.load(path, use_prefetch=True)
    ref = model_mod.load(path)
    assert len(got.graphs) == len(ref.graphs) == 4  # main, two branches, the function
    assert all(g.types.packed and not g.types.raw for g in got.graphs[:3])  # the helper's types were used
    for a, b in zip(got.graphs, ref.graphs):
        names = sorted(b.types.names())
        assert sorted(a.types.names()) == names
        assert [a.types.get(n) for n in names] == [b.types.get(n) for n in names]
    assert got.graphs[1].types.get("a").shape == ("N", 400)


def test_unusable_packed_types_mean_inference_here(tmp_path, monkeypatch):
    import marshal

    path = _big_nested_model(tmp_path / "nested.onnx")
    monkeypatch.setattr(prefetch, "take", lambda p, st: ("packed", marshal.dumps([{}])))  # one table for 4 graphs
    got = model_mod.load(path, use_prefetch=True)
    ref = model_mod.load(path)
    assert got.graphs[1].types.get("a") == ref.graphs[1].types.get("a") is not None


_FORKED = r"""
import json, marshal, os, sys
from onnxdoctor import _typeinfo, prefetch
from onnxdoctor.model import loading

path, broken = sys.argv[1], sys.argv[2] == "broken"
if broken:  # the child fails in run(): no result, and the caller goes on
    from onnxdoctor import _infer_worker
    _infer_worker.run = lambda p: 1 / 0
me = os.getpid()
prefetch.start(path, fork=True)
assert os.getpid() == me  # the child never returns into this code
pending = prefetch._pending[prefetch._key(path)]
pid = pending.proc.pid
result = prefetch.take(path, os.stat(path))
try:
    os.waitpid(pid, os.WNOHANG)
    reaped = False
except ChildProcessError:
    reaped = True
out = {"reaped": reaped, "code": pending.proc.returncode, "kind": result[0] if result else None}
if result and result[0] == "packed":
    from onnxdoctor import _onnx
    data = open(path, "rb").read()
    inferred = _onnx.infer_shapes(data, strict=True)
    ref = _typeinfo.pack(_onnx.ModelProto.FromString(inferred), inferred)
    out["same"] = marshal.loads(result[1]) == ref
# a second helper, discarded before it is taken: killed and reaped
prefetch.start(path, fork=True)
second = prefetch._pending[prefetch._key(path)].proc
prefetch.discard(path)
out["discarded"] = second.returncode is not None
print(json.dumps(out))
"""


@pytest.mark.skipif(not prefetch._can_fork(), reason="the console script forks only on Linux")
@pytest.mark.parametrize("broken", [False, True])
def test_forked_helper_gives_the_spawned_helpers_result(tmp_path, broken):
    """What the console script does (prefetch.start(fork=True) before its imports), in a fresh process:
    the child writes the same packed types as the helper script, exits, and is reaped; a child that
    fails gives no result; a discarded one is killed and reaped."""
    import subprocess
    import sys

    path = _big_nested_model(tmp_path / "nested.onnx")
    src = os.path.dirname(os.path.dirname(os.path.abspath(prefetch.__file__)))
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-c", _FORKED, path, "broken" if broken else "ok"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["reaped"] and out["discarded"]
    if broken:
        assert out["code"] == 1 and out["kind"] is None
    else:
        assert out["code"] == 0 and out["kind"] == "packed" and out["same"] is True
