"""What `fix` keeps in memory between its phases: freed memory goes back to the system before a run's
peak (onnxdoctor._memory), and a model read from a file is held once (its weights in the store)."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

from onnxdoctor import _memory, prove

H = '<ir_version: 8, opset_import: ["" : 17]>\n'

glibc = pytest.mark.skipif(_memory._glibc() is None, reason="glibc's allocator only")


def test_release_collects_reference_cycles_while_collection_is_off():
    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a
    dead = weakref.ref(a)
    was = gc.isenabled()
    gc.disable()
    try:
        del a, b
        assert dead() is not None  # only the cyclic collector frees a cycle
        _memory.release()
        assert dead() is None
    finally:
        if was:
            gc.enable()


_RETAINED = """
import numpy as np
from onnxdoctor import _memory
if {mmap}:
    assert _memory.large_blocks_from_mmap()
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
base = rss()
with _memory.runs():
    big = np.ones(24 << 18, np.float32)   # 24 MiB: mapped by default, and glibc's threshold then rises to it
    del big
    mid = np.ones(8 << 18, np.float32)    # 8 MiB: from the heap by default, which keeps it when freed
    del mid
print((rss() - base) >> 20)
"""


@glibc
def test_a_runs_large_blocks_go_back_to_the_system_when_freed():
    def retained(mmap: bool) -> int:
        out = subprocess.run([sys.executable, "-c", textwrap.dedent(_RETAINED.format(mmap=mmap))],
                             capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    assert retained(False) >= 6  # glibc's default: the 8 MiB block stays resident after its free
    assert retained(True) <= 2


def test_an_onnx_runtime_run_maps_its_large_blocks_only_when_asked():
    # runs() is a no-op in a process that did not ask (an API caller's): no mallopt
    from onnxdoctor.prove import Bounded, onnxruntime

    m = onnx.parser.parse_model(H + "g (float[512,512] x) => (float[512,512] y) { y = Relu(x) }")
    sess = Bounded(onnxruntime().InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]))
    x = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    assert not _memory._runs_from_mmap
    (y,) = sess.run(None, {"x": x})
    np.testing.assert_array_equal(y, np.maximum(x, 0))


def _model_with_big_weight(rng) -> onnx.ModelProto:
    m = onnx.parser.parse_model(H + """g (float[2,256] x) => (float[2,256] y) {
        h = MatMul(x, w)
        a = Relu(h)
        b = Relu(h)
        y = Add(a, b)
    }""")
    m.graph.initializer.append(numpy_helper.from_array(rng.standard_normal((256, 256)).astype(np.float32), "w"))
    return m


def test_fix_of_a_file_holds_its_weights_once(tmp_path):
    # api.fix read the file: its big initializer goes to the store at once, the model read goes, and the
    # result, the written file and the report's original are as before
    from onnxdoctor import api
    from onnxdoctor.weights import WeightStore

    rng = np.random.default_rng(0)
    m = _model_with_big_weight(rng)
    src, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(m, src)
    res = api.fix(src, out, rules="default", trt="10.15")
    assert res.changed and res.proof.passed
    assert [WeightStore.key_of(t) is not None for t in res.original.graph.initializer] == [True]
    assert [n.op_type for n in res.original.graph.node] == ["MatMul", "Relu", "Relu", "Add"]
    written = onnx.load(out)
    assert [n.op_type for n in written.graph.node] == ["MatMul", "Relu", "Add"]
    assert np.array_equal(numpy_helper.to_array(written.graph.initializer[0]), numpy_helper.to_array(m.graph.initializer[0]))
    feeds = {"x": rng.standard_normal((2, 256)).astype(np.float32)}
    np.testing.assert_allclose(prove.run(written, feeds)["y"], prove.run(m, feeds)["y"], rtol=1e-6)


def test_fix_of_a_file_with_nothing_to_change_writes_its_weights(tmp_path):
    from onnxdoctor import api

    rng = np.random.default_rng(1)
    m = onnx.parser.parse_model(H + "g (float[2,256] x) => (float[2,256] y) { y = MatMul(x, w) }")
    m.graph.initializer.append(numpy_helper.from_array(rng.standard_normal((256, 256)).astype(np.float32), "w"))
    src, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(m, src)
    res = api.fix(src, out, rules="default", trt="10.15")
    assert not res.changed
    want = numpy_helper.to_array(m.graph.initializer[0])
    for got in (onnx.load(out), res.model):
        (t,) = got.graph.initializer
        assert t.name == "w" and not t.external_data and np.array_equal(numpy_helper.to_array(t), want)
        assert [n.op_type for n in got.graph.node] == ["MatMul"]


def test_fix_of_an_in_memory_model_leaves_it_as_given():
    # an in-memory model is the caller's: not stripped, not modified
    from onnxdoctor import api

    m = _model_with_big_weight(np.random.default_rng(2))
    before = m.SerializeToString()
    res = api.fix(m, None, rules="default", trt="10.15")
    assert res.changed and res.original is m
    assert m.SerializeToString() == before


def test_collecting_freezes_survivors_and_gives_them_back():
    class Node:
        pass

    assert gc.get_freeze_count() == 0
    with _memory.collecting():
        keep = Node()
        _memory.release()
        assert gc.get_freeze_count() > 0  # what survived is frozen: later collections skip it
        a, b = Node(), Node()
        a.other, b.other = b, a
        dead = weakref.ref(a)
        del a, b
        _memory.between_steps()  # collects what was made since
        assert dead() is None
        assert keep is not None
    assert gc.get_freeze_count() == 0


def test_collecting_leaves_a_process_that_froze_its_own_objects_alone():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with _memory.collecting():
            _memory.release()
            assert gc.get_freeze_count() == frozen  # not frozen further
        assert gc.get_freeze_count() == frozen  # and not unfrozen
    finally:
        gc.unfreeze()


def test_between_steps_does_nothing_outside_a_fix_run():
    class Node:
        pass

    was = gc.isenabled()
    gc.disable()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        dead = weakref.ref(a)
        del a, b
        _memory.between_steps()  # a full collection per rewrite would cost a caller's process dearly
        assert dead() is not None
        gc.collect()
        assert dead() is None
    finally:
        if was:
            gc.enable()


def test_only_the_latest_pending_rewrite_keeps_its_model_and_bisection_rebuilds_the_others(monkeypatch):
    # three rewrites pending in one iteration, the last of them wrong: the pending results before it hold
    # no model (a bisection applies them again), the culprit alone is rolled back, the result is right
    import onnxdoctor.rewrites as rewrites_pkg
    from onnxdoctor import fix as fixing

    from .test_fix_pipeline import WrongRemoveNoops, model

    table = tuple(WrongRemoveNoops() if r.name == "remove-noops" else r for r in rewrites_pkg.all_rewrites())
    monkeypatch.setattr(rewrites_pkg, "all_rewrites", lambda: table)
    held, rebuilt = [], []
    settle, model_at = fixing._Run.settle, fixing._Run._model_at

    def recording_settle(self, steps, blocked):
        held.append([(p.rw.name, p.model is not None) for p in self.pending])
        return settle(self, steps, blocked)

    def recording_model_at(self, pending, i, base):
        rebuilt.append(pending[i].model is None)
        return model_at(self, pending, i, base)

    monkeypatch.setattr(fixing._Run, "settle", recording_settle)
    monkeypatch.setattr(fixing._Run, "_model_at", recording_model_at)
    m = model()
    res = fixing.fix_model(m, fixing.FixOptions(trt="10.15"))
    first = held[0]
    assert len(first) >= 3 and [kept for _, kept in first] == [False] * (len(first) - 1) + [True]
    assert any(rebuilt)  # the bisection proved a prefix whose model it had to build again
    status = {s.rewrite: s.status for s in res.steps if s.status != "no-change"}
    assert status["remove-noops"] == "rolled-back"
    assert status["dedupe-nodes"] == "applied" and status["collapse-layout-chains"] == "applied"
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 256)).astype(np.float32)}
    np.testing.assert_allclose(prove.run(res.model, feeds)["y"], prove.run(m, feeds)["y"], rtol=1e-5, atol=1e-5)
    assert res.proof is not None and res.proof.passed
