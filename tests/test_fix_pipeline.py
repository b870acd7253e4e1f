"""The fix pipeline's machinery (issue 15): rewrites run on a graph without its big weights, one
proof per run, and a failed proof bisected to the rewrite that broke it, which alone is rolled
back while the others are kept (the ones after it applied again without it)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

import onnxdoctor.rewrites as rewrites_pkg
from onnxdoctor import prove
from onnxdoctor.fix import FixOptions, fix_model
from onnxdoctor.rewrites.hygiene import DedupeNodes, RemoveNoops
from onnxdoctor.weights import LOCATION, WeightStore

# An Identity (GRF405: remove-noops), two equal Relu (GRF407: dedupe-nodes), a Reshape pair (GRF416:
# collapse-layout-chains) and a big weight (stored out of the graph while the rewrites run).
MODEL = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,256] x) => (float[2,256] y) {
  i = Identity(x)
  h = MatMul(i, w)
  a = Relu(h)
  b = Relu(h)
  s = Add(a, b)
  r1 = Reshape(s, flat)
  r2 = Reshape(r1, back)
  y = Mul(r2, k)
}
"""


def model() -> onnx.ModelProto:
    m = onnx.parser.parse_model(MODEL)
    rng = np.random.default_rng(0)
    m.graph.initializer.extend([
        numpy_helper.from_array(rng.standard_normal((256, 256)).astype(np.float32), "w"),
        numpy_helper.from_array(np.array([-1], np.int64), "flat"),
        numpy_helper.from_array(np.array([2, 256], np.int64), "back"),
        numpy_helper.from_array(np.full(256, 0.5, np.float32), "k"),
    ])
    onnx.checker.check_model(m, full_check=True)
    return m


class WrongRemoveNoops(RemoveNoops):
    """remove-noops, plus a deliberate error: the scale `k` changes sign (its readers get -k)."""

    def apply(self, model, ctx):
        out = super().apply(model, ctx)
        if not out.changed:
            return out
        for t in out.model.graph.initializer:
            if t.name == "k":
                t.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(t), "k"))
        return out


class RecordingDedupeNodes(DedupeNodes):
    """dedupe-nodes, recording what graph it was given (the weight stays out of it)."""

    seen: list = []

    def apply(self, model, ctx):
        w = next(t for t in model.graph.initializer if t.name == "w")
        type(self).seen.append((w.data_location, WeightStore.key_of(w) is not None, len(w.raw_data)))
        return super().apply(model, ctx)


@pytest.fixture
def swapped(monkeypatch):
    """The registry with some rewrites replaced by the classes above."""

    def use(**classes):
        table = tuple(classes.get(r.name, type(r))() for r in rewrites_pkg.all_rewrites())
        monkeypatch.setattr(rewrites_pkg, "all_rewrites", lambda: table)

    yield use


def _steps(res):
    return [(s.rewrite, s.status) for s in res.steps if s.status != "no-change"]


def test_a_wrong_rewrite_is_rolled_back_alone_and_the_others_kept(swapped):
    swapped(**{"remove-noops": WrongRemoveNoops})
    m = model()
    res = fix_model(m, FixOptions(trt="10.15"))
    status = dict(_steps(res))
    assert status["remove-noops"] == "rolled-back", res.steps
    wrong = next(s for s in res.steps if s.rewrite == "remove-noops")
    assert wrong.reason.startswith("outputs differ") and not wrong.proof.passed
    # the others of the same iteration are kept, each with the proof that covered it
    for name in ("dedupe-nodes", "collapse-layout-chains"):
        step = next(s for s in res.steps if s.rewrite == name and s.status == "applied")
        assert step.proof is not None and step.proof.passed
    ops = [n.op_type for n in res.model.graph.node]
    assert ops.count("Relu") == 1 and ops.count("Reshape") == 0 and "Identity" in ops
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 256)).astype(np.float32)}
    np.testing.assert_allclose(prove.run(res.model, feeds)["y"], prove.run(m, feeds)["y"], rtol=1e-5, atol=1e-5)
    assert res.proof is not None and res.proof.passed
    # one proof of the whole iteration, then bisection: a few runs, not one per rewrite and retry
    assert res.timings["proof_runs"] <= 6


def test_rewrites_after_the_culprit_run_again_without_it(swapped):
    # dedupe-nodes (phase 90, after collapse-layout-chains ... and before remove-noops by name) sees the
    # Identity still there once remove-noops is rolled back; the final model is valid and equal
    swapped(**{"remove-noops": WrongRemoveNoops})
    res = fix_model(model(), FixOptions(trt="10.15"))
    onnx.checker.check_model(res.model, full_check=True)
    k = next(t for t in res.model.graph.initializer if t.name == "k")
    assert (numpy_helper.to_array(k) == 0.5).all()  # the wrong change is not in the result


def test_one_proof_per_run_when_every_rewrite_holds():
    from ._fixtures import MODELS

    res = fix_model(onnx.load(MODELS / "real" / "bert-torchscript-opset14.onnx"), FixOptions(trt="10.15"))
    assert len({s.iteration for s in res.steps if s.status == "applied"}) >= 2  # several iterations, one proof
    assert res.timings["proof_runs"] == 1 and res.proof.passed
    assert not [s for s in res.steps if s.status not in ("applied", "no-change")]
    assert all(s.seconds is not None for s in res.steps)


def test_rewrites_get_the_graph_without_its_big_weights_and_the_result_has_them(swapped):
    RecordingDedupeNodes.seen = []
    swapped(**{"dedupe-nodes": RecordingDedupeNodes})
    m = model()
    res = fix_model(m, FixOptions(trt="10.15"))
    assert RecordingDedupeNodes.seen and all(seen == (onnx.TensorProto.EXTERNAL, True, 0) for seen in RecordingDedupeNodes.seen)
    w = next(t for t in res.model.graph.initializer if t.name == "w")
    assert w.data_location == onnx.TensorProto.DEFAULT and w.raw_data == next(
        t for t in m.graph.initializer if t.name == "w").raw_data
    assert not [t for t in res.model.graph.initializer if t.external_data]


def test_a_rewrite_that_reads_weights_gets_them():
    # fold-batch-norm scales a 256x256x1x1 Conv weight (256 KiB: stored out of the graph)
    rng = np.random.default_rng(3)
    m = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
        g (float[1,256,4,4] x) => (float[1,256,4,4] y) { c = Conv(x, w)\n y = BatchNormalization(c, s, b, m, v) }""")
    m.graph.initializer.extend([numpy_helper.from_array(rng.standard_normal((256, 256, 1, 1)).astype(np.float32), "w")] + [
        numpy_helper.from_array(rng.uniform(0.5, 2, 256).astype(np.float32), n) for n in "sbmv"])
    res = fix_model(m, FixOptions(trt="10.15"))
    assert [n.op_type for n in res.model.graph.node] == ["Conv"]
    assert res.proof.passed
    onnx.checker.check_model(res.model, full_check=True)


def test_store_keeps_equal_weights_once_and_stubs_name_the_content():
    m = model()
    m.graph.initializer.append(onnx.TensorProto())
    m.graph.initializer[-1].CopyFrom(m.graph.initializer[0])
    m.graph.initializer[-1].name = "w_copy"
    store = WeightStore()
    work = store.strip(m)
    stubs = {t.name: t for t in work.graph.initializer if t.external_data}
    assert set(stubs) == {"w", "w_copy"} and len(store.arrays) == 1
    refs = {n: {e.key: e.value for e in t.external_data} for n, t in stubs.items()}
    assert refs["w"] == refs["w_copy"] and refs["w"]["location"] == LOCATION
    # GRF404 sees them as duplicates, as it would see the inline copies
    from onnxdoctor.engine import analyze
    from onnxdoctor.model import from_proto
    from onnxdoctor.registry import all_rules
    from onnxdoctor.target import Target

    codes = [f.code for f in analyze(from_proto(work), Target.make("10.15"), all_rules())]
    assert "GRF404" in codes
    back = store.materialize(work)
    assert [t.raw_data for t in back.graph.initializer] == [t.raw_data for t in m.graph.initializer]
    feeds = {"x": np.ones((2, 256), np.float32)}
    np.testing.assert_array_equal(store.run(work, feeds)["y"], prove.run(m, feeds)["y"])


def test_report_has_timings_and_step_seconds():
    from onnxdoctor.report.fix import to_dict

    res = fix_model(model(), FixOptions(trt="10.15"))
    d = to_dict(res, "model.onnx", [])
    assert {"store", "check", "inputs", "rewrites", "proofs", "total", "proof_runs"} <= set(d["timings"])
    assert all("seconds" in s for s in d["steps"])
    assert d["timings"]["total"] >= d["timings"]["proofs"]


def test_progress_shows_each_phase_with_its_time():
    import io

    from rich.console import Console

    from onnxdoctor.cli import PhaseProgress

    out = io.StringIO()
    with PhaseProgress(Console(file=out, force_terminal=True, width=120)) as progress:
        fix_model(model(), FixOptions(trt="10.15"), log=progress)
    text = out.getvalue()
    for phase in ("checking the model", "iteration 1: dedupe-nodes", "proving 3 rewrite(s) in ONNX Runtime",
                  "iteration 1: checking the result"):
        assert phase in text, text[-2000:]
    assert "0:00:0" in text  # the elapsed-time column


def test_inconclusive_proof_names_the_data_sized_nodes():
    """A proof whose output size depends on data names the sizing nodes as `Op 'name'` (unnamed: `Op`),
    with the name's closing quote kept."""
    ref_text = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[6] x) => (int64[1,N] y) {
  m = Greater(x, half)
  y = NonZero(m)
}
"""
    ref = onnx.parser.parse_model(ref_text)
    ref.graph.node[1].name = "nz"
    ref.graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
    cand = onnx.parser.parse_model(ref_text.replace("Greater(x, half)", "Greater(x, third)").replace("m =", "q =")
                                   .replace("(m)", "(q)"))
    cand.graph.initializer.append(numpy_helper.from_array(np.array(0.25, np.float32), "third"))
    feeds = {"x": np.array([0.1, 0.3, 0.6, 0.9, 0.2, 0.7], np.float32)}
    reference = prove.run(ref, feeds)
    result = prove.prove(reference, cand, feeds, reference_model=ref)
    assert not result.passed
    assert "(NonZero 'nz')" in result.inconclusive
    ref.graph.node[1].name = ""
    result = prove.prove(reference, cand, feeds, reference_model=ref)
    assert "(NonZero)" in result.inconclusive
