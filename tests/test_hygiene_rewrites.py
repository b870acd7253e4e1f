"""remove-noops and dedupe-initializers (rewrites/hygiene.py): what is removed or merged, what is
kept and why, graph output names preserved, full ONNX check, ONNX Runtime outputs bit-identical,
and the GRF404/405/406 findings gone."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnx.parser
import pytest

from onnxdoctor import prove
from onnxdoctor.engine import analyze
from onnxdoctor.fix import FixOptions, fix_model
from onnxdoctor.model import from_proto
from onnxdoctor.registry import all_rules
from onnxdoctor.rewrites import RewriteContext, get_rewrite
from onnxdoctor.rewrites._gs import cleaned
from onnxdoctor.target import Target

from ._fixtures import MODELS


def _ops(m: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in m.graph.node]


def _codes(m: onnx.ModelProto, trt: str = "10.15") -> collections.Counter:
    return collections.Counter(f.code for f in analyze(from_proto(m), Target.make(trt), all_rules()))


def rewrite(name: str, text: str):
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model, full_check=True)
    outcome = get_rewrite(name).apply(model, RewriteContext(target=Target.make("10.15")))
    if not outcome.changed:
        return outcome, model, model
    out = cleaned(outcome.model)
    onnx.checker.check_model(out, full_check=True)
    assert [o.name for o in out.graph.output] == [o.name for o in model.graph.output]
    feeds = prove.generate_inputs(model, seed=0)
    ref, got = prove.run(model, feeds), prove.run(out, feeds)
    for k in ref:
        np.testing.assert_array_equal(ref[k], got[k])  # exact: these rewrites move no arithmetic
    return outcome, model, out


H = '<ir_version: 8, opset_import: ["" : 17]>\n'


# ----------------------------------------------------------------------------
# remove-noops
# ----------------------------------------------------------------------------
def test_identity_inside_the_graph_is_bypassed():
    outcome, model, out = rewrite("remove-noops", H + "g (float[4] x) => (float[4] y) { a = Identity(x)\n y = Relu(a) }")
    assert _ops(out) == ["Relu"] and list(out.graph.node[0].input) == ["x"]
    assert "GRF405" in _codes(model) and "GRF405" not in _codes(out)


def test_identity_on_a_graph_output_renames_the_producer():
    outcome, _, out = rewrite("remove-noops", H + "g (float[4] x) => (float[4] y) { r = Relu(x)\n y = Identity(r) }")
    assert _ops(out) == ["Relu"] and list(out.graph.node[0].output) == ["y"]
    assert "now produced by its input's producer" in outcome.changes[0]


def test_chain_of_noops_ending_in_a_graph_output():
    text = H + """g (float[4] x) => (float[4] y, float[4] z) {
      r = Relu(x)
      a = Identity(r)
      b = Cast<to = 1>(a)
      y = Identity(b)
      z = Neg(a)
    }"""
    _, model, out = rewrite("remove-noops", text)
    assert _ops(out) == ["Relu", "Neg"]
    assert list(out.graph.node[0].output) == ["y"] and list(out.graph.node[1].input) == ["y"]
    assert not {"GRF405", "GRF406"} & set(_codes(out))


def test_identity_from_a_graph_input_to_a_graph_output_is_kept():
    outcome, _, _ = rewrite("remove-noops", H + "g (float[4] x) => (float[4] y) { y = Identity(x) }")
    assert not outcome.changed
    assert "is a graph input, initializer or outer-scope value" in outcome.skipped[0]


def test_two_graph_outputs_from_one_value_keep_one_identity():
    outcome, _, out = rewrite("remove-noops", H + "g (float[4] x) => (float[4] y, float[4] z) { r = Relu(x)\n y = Identity(r)\n z = Identity(r) }")
    assert sorted(_ops(out)) == ["Identity", "Relu"]
    assert len(outcome.changes) == 1 and "already renamed" in outcome.skipped[0]


def test_inference_dropout_is_removed_training_dropout_is_not():
    _, _, out = rewrite("remove-noops", H + "g (float[4] x) => (float[4] y) { a = Dropout(x)\n y = Relu(a) }")
    assert _ops(out) == ["Relu"]
    # training_mode = true: random, not a no-op (not run in ORT here: the output is random)
    training = onnx.parser.parse_model(H + """g (float[4] x) => (float[4] y) <float half = {0.5}, bool on = {1}> {
      a = Dropout(x, half, on)
      y = Relu(a)
    }""")
    outcome = get_rewrite("remove-noops").apply(training, RewriteContext(target=Target.make("10.15")))
    assert not outcome.changed and "GRF405" not in _codes(training)


def test_dropout_whose_mask_is_used_is_kept():
    outcome, _, _ = rewrite("remove-noops", H + "g (float[4] x) => (float[4] y, bool[4] m) { a, m = Dropout(x)\n y = Relu(a) }")
    assert not outcome.changed


@pytest.mark.parametrize("via, removed", [(11, True), (10, False)], ids=["float-double-float-exact", "float-half-float-lossy"])
def test_cast_round_trips(via, removed):
    text = H + f"g (float[4] x) => (float[4] y) {{ d = Cast<to = {via}>(x)\n f = Cast<to = 1>(d)\n y = Relu(f) }}"
    outcome, model, out = rewrite("remove-noops", text)
    if removed:
        assert _ops(out) == ["Relu"]  # both Casts: the first one is dead after the second is bypassed
        assert "GRF406" in _codes(model) and "GRF406" not in _codes(out)
    else:
        assert not outcome.changed and _ops(out) == ["Cast", "Cast", "Relu"]


def test_int_cast_round_trip_through_int64():
    outcome, _, out = rewrite("remove-noops", H + "g (int32[4] x) => (int32[4] y) { d = Cast<to = 7>(x)\n f = Cast<to = 6>(d)\n y = Neg(f) }")
    assert _ops(out) == ["Neg"]


def test_noops_inside_an_if_branch():
    text = H + """g (bool c, float[4] x) => (float[4] y) {
      y = If(c) <
        then_branch = t () => (float[4] tout) { a = Relu(x)
          tout = Identity(a) },
        else_branch = e () => (float[4] eout) { b = Identity(x)
          eout = Neg(b) }
      >
    }"""
    outcome, _, out = rewrite("remove-noops", text)
    branches = {a.name: a.g for a in out.graph.node[0].attribute}
    then_b, else_b = branches["then_branch"], branches["else_branch"]
    assert [n.op_type for n in then_b.node] == ["Relu"] and list(then_b.node[0].output) == ["tout"]
    assert [n.op_type for n in else_b.node] == ["Neg"] and list(else_b.node[0].input) == ["x"]
    assert "GRF405" not in _codes(out)


def test_identity_forwarding_an_outer_value_out_of_a_body_is_kept():
    text = H + """g (bool c, float[4] x) => (float[4] y) {
      y = If(c) <
        then_branch = t () => (float[4] tout) { tout = Identity(x) },
        else_branch = e () => (float[4] eout) { eout = Neg(x) }
      >
    }"""
    outcome, _, _ = rewrite("remove-noops", text)
    assert not outcome.changed and "outer-scope" in outcome.skipped[0]


# ----------------------------------------------------------------------------
# dedupe-initializers
# ----------------------------------------------------------------------------
def test_duplicates_are_merged_into_the_first():
    text = H + """g (float[2] x) => (float[2] y) <float[2] a = {1, 2}, float[2] b = {1, 2}, float[2] c = {1, 3}, double[2] d = {1, 2}> {
      s = Add(x, a)
      t = Mul(s, b)
      u = Sub(t, c)
      y = Add(u, Cast<to = 1>(d))
    }"""
    text = text.replace("y = Add(u, Cast<to = 1>(d))", "dd = Cast<to = 1>(d)\n y = Add(u, dd)")
    outcome, model, out = rewrite("dedupe-initializers", text)
    assert sorted(t.name for t in out.graph.initializer) == ["a", "c", "d"]  # other bytes / dtype stay
    mul = next(n for n in out.graph.node if n.op_type == "Mul")
    assert list(mul.input) == ["s", "a"]
    assert outcome.changes == ["initializer 'b' merged into 'a'"]
    assert "GRF404" in _codes(model) and "GRF404" not in _codes(out)


def test_duplicate_read_from_inside_a_branch_is_rewired():
    text = H + """g (bool c, float[2] x) => (float[2] y) <float[2] a = {1, 2}, float[2] b = {1, 2}> {
      y = If(c) <
        then_branch = t () => (float[2] tout) { tout = Add(x, b) },
        else_branch = e () => (float[2] eout) { eout = Sub(x, a) }
      >
    }"""
    outcome, _, out = rewrite("dedupe-initializers", text)
    branches = {a.name: a.g for a in outcome.model.graph.node[0].attribute}
    assert [t.name for t in outcome.model.graph.initializer] == ["a"]
    assert list(branches["then_branch"].node[0].input) == ["x", "a"]
    assert "GRF404" not in _codes(out)


def test_initializer_that_is_also_a_graph_input_is_not_merged():
    m = onnx.parser.parse_model(H + "g (float[2] x) => (float[2] y) <float[2] a = {1, 2}, float[2] b = {1, 2}> { s = Add(x, a)\n y = Mul(s, b) }")
    m.graph.input.append(onnx.helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [2]))  # overridable default
    outcome = get_rewrite("dedupe-initializers").apply(m, RewriteContext(target=Target.make("10.15")))
    assert not outcome.changed and "graph input or output" in outcome.skipped[0]


# ----------------------------------------------------------------------------
# Through the pipeline, on a real export
# ----------------------------------------------------------------------------
def test_bert_torchscript_opset14_has_no_duplicates_or_noops_after_fix():
    model = onnx.load(MODELS / "real" / "bert-torchscript-opset14.onnx")
    res = fix_model(model, FixOptions(trt="10.15"))
    applied = {s.rewrite: s for s in res.steps if s.status == "applied"}
    assert "remove-noops" in applied and "dedupe-initializers" in applied
    after = collections.Counter(f.code for f in res.after)
    assert after["GRF404"] == 0 and after["GRF405"] == 0 and after["GRF406"] == 0
    assert "Identity" not in _ops(res.model)
    assert res.proof is not None and res.proof.passed
    # folding made copies of the same constants (e.g. per-layer shape values); they were merged
    # (37 since fold-shape-computations' symbolic typing folds the per-layer shape chains first)
    assert len(applied["dedupe-initializers"].changes) > 30


def test_llama_noops_removed_exactly_on_a_release_without_rms_norm():
    model = onnx.load(MODELS / "real" / "llama-torchscript.onnx")
    res = fix_model(model, FixOptions(trt="10.0"))
    step = next(s for s in res.steps if s.rewrite == "remove-noops")
    assert step.status == "applied"
    # the 7 `* 1` (the unit RMSNorm weights of a fresh model, the rotary scale) and the Identity/Cast
    # no-ops not already gone with the shape chains fold-shape-computations replaced
    assert sum("removed Mul * 1" in c for c in step.changes) == 7
    assert not {"GRF405", "GRF406", "GRF408"} & {f.code for f in res.after}
    assert (len(model.graph.node), len(res.model.graph.node)) == (382, 146)
    assert sum(n.op_type == "Constant" for n in res.model.graph.node) == 0
    assert res.proof.worst().max_abs_diff == 0.0


# One detector (onnxdoctor.patterns.noops) for GRF405/406/408 and remove-noops: the nodes the rules
# report are exactly the nodes the rewrite removes, including the no-ops that must stay because they
# give a graph output its name (graph input, initializer or outer-scope value behind them).
_AGREE = {
    "identity-inside": "g (float[4] x) => (float[4] y) { a = Identity(x)\n y = Relu(a) }",
    "identity-to-output": "g (float[4] x) => (float[4] y) { r = Relu(x)\n y = Identity(r) }",
    "identity-input-to-output": "g (float[4] x) => (float[4] y) { y = Identity(x) }",
    "identity-initializer-to-output": "g (float[4] x) => (float[4] y, float[4] z) <float[4] w = {1, 2, 3, 4}> "
                                      "{ y = Relu(x)\n z = Identity(w) }",
    "identity-output-to-output": "g (float[4] x) => (float[4] y, float[4] z) { y = Relu(x)\n z = Identity(y) }",
    "same-type-cast-input-to-output": "g (float[4] x) => (float[4] y) { y = Cast<to = 1>(x) }",
    "round-trip-inside": "g (float[4] x) => (float[4] y) { d = Cast<to = 11>(x)\n f = Cast<to = 1>(d)\n y = Relu(f) }",
    "round-trip-input-to-output": "g (float[4] x) => (float[4] y) { d = Cast<to = 11>(x)\n y = Cast<to = 1>(d) }",
    "add-zero-inside": "g (float[4] x) => (float[4] y) <float[4] b = {0, 0, 0, 0}> { a = Add(x, b)\n y = Relu(a) }",
    "add-zero-input-to-output": "g (float[4] x) => (float[4] y) <float[4] b = {0, 0, 0, 0}> { y = Add(x, b) }",
    "mul-one-to-output": "g (float[4] x) => (float[4] y) <float one = {1}> { r = Relu(x)\n y = Mul(r, one) }",
    "dropout-input-to-output": "g (float[4] x) => (float[4] y) { y = Dropout(x) }",
}


@pytest.mark.parametrize("case", sorted(_AGREE))
def test_noop_rules_report_exactly_what_remove_noops_removes(case):
    model = onnx.parser.parse_model(H + _AGREE[case])
    view = from_proto(model)
    names = {n.output[0]: n.name or n.output[0] for n in model.graph.node}
    reported = {f.location.tensor for f in analyze(view, Target.make("10.15"), all_rules())
                if f.code in ("GRF405", "GRF406", "GRF408")}
    outcome = get_rewrite("remove-noops").apply(model, RewriteContext(target=Target.make("10.15")))
    removed = {o for o in names if any(f"{names[o]!r}" in c for c in outcome.changes)}
    assert reported == removed, (outcome.changes, outcome.skipped)
    kept = {o for o in names if any(f"{names[o]!r} kept" in s for s in outcome.skipped)}
    assert not reported & kept
    assert reported or kept  # every case is a no-op, removed (and reported) or kept (and not reported)
