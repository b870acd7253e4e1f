"""Fusions (rewrites/fusions.py) and the opset upgrade they rely on (rewrites/opset.py): each fused
pattern becomes one node, the result passes the full ONNX check, keeps graph output names, gives
ONNX Runtime's outputs of the original within 1e-5, and the GRF411/412/413 finding is gone; the
opset is upgraded only as far as the fused op needs and never above the target's maximum.

Measured max |diff| against the decomposed original (ONNX Runtime 1.23, CPU, seed 0), also in the
real-fixture table below: LayerNormalization ≤ 4.8e-7, Gelu (erf) ≤ 1.2e-7, Gelu (tanh) ≤ 4.8e-7,
RMSNormalization ≤ 2.4e-7 — well inside the 1e-5 these tests demand."""

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
from onnxdoctor.rewrites import opset as opset_mod
from onnxdoctor.target import Target

from ._fixtures import MODELS

REAL = MODELS / "real"
TOL = 1e-5


def _ops(m: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in m.graph.node]


def _opset(m: onnx.ModelProto) -> int:
    return opset_mod.default_opset(m)


def _codes(m: onnx.ModelProto, trt: str) -> collections.Counter:
    return collections.Counter(f.code for f in analyze(from_proto(m), Target.make(trt), all_rules()))


def _max_diff(a: onnx.ModelProto, b: onnx.ModelProto) -> float:
    feeds = prove.generate_inputs(a, seed=0)
    ra, rb = prove.run(a, feeds), prove.run(b, feeds)
    assert set(ra) == set(rb)
    return max(float(np.max(np.abs(ra[k].astype(np.float64) - rb[k].astype(np.float64)))) for k in ra)


def fuse(name: str, text: str, trt: str):
    """Apply one rewrite as the pipeline does (then clean up); return (outcome, cleaned model)."""
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model, full_check=True)
    outcome = get_rewrite(name).apply(model, RewriteContext(target=Target.make(trt)))
    if not outcome.changed:
        return outcome, model
    out = cleaned(outcome.model)
    onnx.checker.check_model(out, full_check=True)
    assert [o.name for o in out.graph.output] == [o.name for o in model.graph.output]
    names = [n.name for n in out.graph.node if n.name]
    assert len(set(names)) == len(names), names
    fused = [n.name for n in out.graph.node if n.op_type in ("LayerNormalization", "Gelu", "RMSNormalization")]
    assert all(fused), fused
    assert _max_diff(model, out) <= TOL
    return outcome, out


# ----------------------------------------------------------------------------
# LayerNorm
# ----------------------------------------------------------------------------
LN_TORCHSCRIPT = """
<ir_version: 8, opset_import: ["" : 14]>
g (float[2,8] x) => (float[2,8] y) <float two = {2.0}, float eps = {1e-5}, float[8] w = {1,2,3,4,5,6,7,8}, float[8] b = {1,0,1,0,1,0,1,0}> {
  m = ReduceMean<axes = [-1]>(x)
  d = Sub(x, m)
  p = Pow(d, two)
  v = ReduceMean<axes = [-1]>(p)
  ve = Add(v, eps)
  s = Sqrt(ve)
  n = Div(d, s)
  g1 = Mul(n, w)
  y = Add(g1, b)
}
"""

LN_RECIPROCAL_18 = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[2,4,8] x) => (float[2,4,8] y) <int64[1] ax = {-1}, float eps = {1e-6}, float[8] w = {1,2,3,4,5,6,7,8}> {
  m = ReduceMean(x, ax)
  d = Sub(x, m)
  p = Mul(d, d)
  v = ReduceMean(p, ax)
  ve = Add(eps, v)
  s = Sqrt(ve)
  r = Reciprocal(s)
  n = Mul(r, d)
  y = Mul(w, n)
}
"""

LN_TWO_AXES_NO_AFFINE = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,4,8] x) => (float[2,4,8] y) <float two = {2.0}, float eps = {1e-5}> {
  m = ReduceMean<axes = [1, 2]>(x)
  d = Sub(x, m)
  p = Pow(d, two)
  v = ReduceMean<axes = [1, 2]>(p)
  ve = Add(v, eps)
  s = Sqrt(ve)
  y = Div(d, s)
}
"""

# scalar-like gamma [1] and beta [1, 1, 8]: LayerNormalization wants the normalized shape [8]
LN_BROADCAST_PARAMS = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1,3,8] x) => (float[1,3,8] y) <float two = {2.0}, float eps = {1e-5}, float[1] w = {3.0}, float[1,1,8] b = {1,2,3,4,5,6,7,8}> {
  m = ReduceMean<axes = [-1]>(x)
  d = Sub(x, m)
  p = Pow(d, two)
  v = ReduceMean<axes = [-1]>(p)
  ve = Add(v, eps)
  s = Sqrt(ve)
  n = Div(d, s)
  g1 = Mul(n, w)
  y = Add(g1, b)
}
"""


def test_layer_norm_torchscript_form_upgrades_to_17_only():
    outcome, out = fuse("fuse-layer-norm", LN_TORCHSCRIPT, "10.15")
    assert _ops(out) == ["LayerNormalization"]
    ln = out.graph.node[0]
    assert list(ln.input) == ["x", "w", "b"] and list(ln.output) == ["y"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in ln.attribute}
    assert attrs["axis"] == -1 and attrs["epsilon"] == pytest.approx(1e-5)
    # LayerNormalization needs 17: not 20 or 24, although 10.15 documents up to 24
    assert _opset(out) == 17
    assert any("opset 14 -> 17" in c for c in outcome.changes)
    assert "GRF411" not in _codes(out, "10.15")


def test_layer_norm_on_8_6_stays_at_its_maximum_opset_17():
    outcome, out = fuse("fuse-layer-norm", LN_TORCHSCRIPT, "8.6")
    assert _ops(out) == ["LayerNormalization"] and _opset(out) == 17


def test_layer_norm_reciprocal_form_no_bias():
    _, out = fuse("fuse-layer-norm", LN_RECIPROCAL_18, "10.15")
    assert _ops(out) == ["LayerNormalization"]
    assert list(out.graph.node[0].input) == ["x", "w"]  # no bias: B is optional
    assert _opset(out) == 18  # already new enough: untouched


def test_layer_norm_without_affine_gets_ones_of_the_normalized_shape():
    _, out = fuse("fuse-layer-norm", LN_TWO_AXES_NO_AFFINE, "10.15")
    ln = out.graph.node[0]
    assert ln.op_type == "LayerNormalization"
    assert {a.name: a.i for a in ln.attribute if a.name == "axis"} == {"axis": -2}
    scale = next(t for t in out.graph.initializer if t.name == ln.input[1])
    assert list(scale.dims) == [4, 8] and np.all(onnx.numpy_helper.to_array(scale) == 1)


def test_layer_norm_broadcasts_scalar_scale_and_leading_one_bias():
    _, out = fuse("fuse-layer-norm", LN_BROADCAST_PARAMS, "10.15")
    ln = out.graph.node[0]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in out.graph.initializer}
    assert inits[ln.input[1]].shape == (8,) and np.all(inits[ln.input[1]] == 3.0)
    assert inits[ln.input[2]].shape == (8,) and inits[ln.input[2]].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]


def test_two_layer_norms_get_unique_names_and_intermediate_outputs_survive():
    body = """
      m{i} = ReduceMean<axes = [-1]>({x})
      d{i} = Sub({x}, m{i})
      p{i} = Pow(d{i}, two)
      v{i} = ReduceMean<axes = [-1]>(p{i})
      ve{i} = Add(v{i}, eps)
      s{i} = Sqrt(ve{i})
      {y} = Div(d{i}, s{i})"""
    text = ("""<ir_version: 8, opset_import: ["" : 17]>
g (float[2,8] x) => (float[2,8] y, float[2,8] h) <float two = {2.0}, float eps = {1e-5}> {"""
            + body.format(i=1, x="x", y="h") + "\n r = Relu(h)" + body.format(i=2, x="r", y="y") + "\n}")
    outcome, out = fuse("fuse-layer-norm", text, "10.15")
    assert _ops(out) == ["LayerNormalization", "Relu", "LayerNormalization"]
    assert len(outcome.changes) == 2


def test_layer_norm_not_matched_says_why():
    text = LN_TORCHSCRIPT.replace("ReduceMean<axes = [-1]>(x)", "ReduceMean<axes = [0]>(x)")
    outcome, _ = fuse("fuse-layer-norm", text, "10.15")
    assert not outcome.changed
    assert any("not the last axis" in s or "different axes" in s for s in outcome.skipped), outcome.skipped


# ----------------------------------------------------------------------------
# GELU
# ----------------------------------------------------------------------------
GELU_ERF = """
<ir_version: 8, opset_import: ["" : 14]>
g (float[2,8] x) => (float[2,8] y) <float r2 = {1.4142135}, float one = {1.0}, float half = {0.5}> {
  a = Div(x, r2)
  e = Erf(a)
  p = Add(e, one)
  m = Mul(x, p)
  y = Mul(m, half)
}
"""

# GPT-2's gelu_new, x³ as Pow(x, 3), 0.5 applied to x first
GELU_TANH_POW = """
<ir_version: 8, opset_import: ["" : 14]>
g (float[2,8] x) => (float[2,8] y) <float three = {3.0}, float k = {0.044715}, float c = {0.7978846}, float one = {1.0}, float half = {0.5}> {
  h = Mul(half, x)
  x3 = Pow(x, three)
  kx3 = Mul(k, x3)
  inner = Add(x, kx3)
  sc = Mul(inner, c)
  t = Tanh(sc)
  p = Add(one, t)
  y = Mul(h, p)
}
"""

GELU_TANH_MUL = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[2,8] x) => (float[2,8] y) <float k = {0.044715}, float c = {0.7978846}, float one = {1.0}, float half = {0.5}> {
  x2 = Mul(x, x)
  x3 = Mul(x, x2)
  kx3 = Mul(x3, k)
  inner = Add(kx3, x)
  sc = Mul(c, inner)
  t = Tanh(sc)
  p = Add(t, one)
  m = Mul(p, half)
  y = Mul(m, x)
}
"""


@pytest.mark.parametrize("text, approximate", [(GELU_ERF, "none"), (GELU_TANH_POW, "tanh"), (GELU_TANH_MUL, "tanh")],
                         ids=["erf", "tanh-pow", "tanh-mul"])
def test_gelu_forms(text, approximate):
    outcome, out = fuse("fuse-gelu", text, "10.15")
    assert _ops(out) == ["Gelu"]
    assert onnx.helper.get_attribute_value(out.graph.node[0].attribute[0]).decode() == approximate
    assert _opset(out) == 20
    assert "GRF412" not in _codes(out, "10.15")


@pytest.mark.parametrize("trt", ["8.6", "9.3"])
def test_gelu_not_fused_without_an_importer(trt):
    outcome, _ = fuse("fuse-gelu", GELU_ERF, trt)
    assert not outcome.changed
    assert outcome.skipped == [f"TensorRT {trt} has no Gelu importer"]


def test_gelu_pipeline_on_8_6_leaves_gelu_decomposed_and_opset_at_most_17():
    res = fix_model(onnx.parser.parse_model(GELU_ERF), FixOptions(trt="8.6"))
    assert "Gelu" not in _ops(res.model) and "Erf" in _ops(res.model)
    assert _opset(res.model) <= 17
    assert not any(s.rewrite == "fuse-gelu" for s in res.steps)


# ----------------------------------------------------------------------------
# RMSNorm
# ----------------------------------------------------------------------------
RMS_TORCHSCRIPT = """
<ir_version: 8, opset_import: ["" : 14]>
g (float[2,3,8] x) => (float[2,3,8] y) <float two = {2.0}, float eps = {1e-6}, float one = {1.0}, float[8] w = {1,2,3,4,5,6,7,8}> {
  p = Pow(x, two)
  v = ReduceMean<axes = [-1]>(p)
  ve = Add(v, eps)
  s = Sqrt(ve)
  r = Div(one, s)
  n = Mul(x, r)
  c = Cast<to = 1>(n)
  y = Mul(w, c)
}
"""

RMS_DYNAMO = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[2,8] x) => (float[2,8] y) <float two = {2.0}, float eps = {1e-6}, int64[1] ax = {-1}, float[8] w = {1,1,2,2,3,3,4,4}> {
  p = Pow(x, two)
  v = ReduceMean(p, ax)
  ve = Add(v, eps)
  s = Sqrt(ve)
  r = Reciprocal(s)
  n = Mul(x, r)
  y = Mul(w, n)
}
"""

RMS_NO_SCALE = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[2,8] x) => (float[2,8] y) <float two = {2.0}, float eps = {1e-6}, int64[1] ax = {-1}> {
  p = Pow(x, two)
  v = ReduceMean(p, ax)
  ve = Add(v, eps)
  s = Sqrt(ve)
  y = Div(x, s)
}
"""


@pytest.mark.parametrize("text", [RMS_TORCHSCRIPT, RMS_DYNAMO, RMS_NO_SCALE], ids=["torchscript-cast", "dynamo-reciprocal", "div-no-scale"])
def test_rms_norm_forms(text):
    _, out = fuse("fuse-rms-norm", text, "10.15")
    assert _ops(out) == ["RMSNormalization"]
    assert _opset(out) == 23
    assert "GRF413" not in _codes(out, "10.15")


@pytest.mark.parametrize("trt", ["10.0", "10.14"])
def test_rms_norm_needs_10_15(trt):
    outcome, _ = fuse("fuse-rms-norm", RMS_DYNAMO, trt)
    assert not outcome.changed and "no RMSNormalization importer" in outcome.skipped[0]


# ----------------------------------------------------------------------------
# Opset upgrade
# ----------------------------------------------------------------------------
def test_plan_never_goes_above_the_documented_maximum():
    m = onnx.parser.parse_model(LN_TORCHSCRIPT)
    assert opset_mod.plan(m, 17, 17) == 17
    assert opset_mod.plan(m, 14, 17) is None
    with pytest.raises(opset_mod.OpsetUpgradeError, match="documents opsets up to 17"):
        opset_mod.plan(m, 20, 17)


def test_upgrade_turns_converter_constants_into_initializers():
    m = onnx.parser.parse_model(LN_TORCHSCRIPT)
    up = opset_mod.upgrade(m, 18)  # ReduceMean axes become an input at 18
    onnx.checker.check_model(up, full_check=True)
    assert _opset(up) == 18 and "Constant" not in _ops(up)
    assert len(up.graph.node) == len(m.graph.node)
    assert _max_diff(m, up) == 0.0


def test_upgrade_falls_back_to_a_version_bump_when_nothing_changed(monkeypatch):
    from onnx import version_converter

    def broken(model, to):
        raise RuntimeError("no adapter")

    monkeypatch.setattr(version_converter, "convert_version", broken)
    relu = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 14]> g (float[2] x) => (float[2] y) { y = Relu(x) }')
    up = opset_mod.upgrade(relu, 17)  # Relu is unchanged from 14 to 17
    assert _opset(up) == 17 and _ops(up) == ["Relu"]
    # ReduceMean changed at 18 (axes input): a bare bump would be wrong, so it is refused with the reason
    with pytest.raises(opset_mod.OpsetUpgradeError, match="ReduceMean"):
        opset_mod.upgrade(onnx.parser.parse_model(LN_TORCHSCRIPT), 18)


def test_fusion_skips_with_the_reason_when_the_upgrade_fails(monkeypatch):
    def refuse(model, to):
        raise opset_mod.OpsetUpgradeError("converter says no")

    monkeypatch.setattr("onnxdoctor.rewrites.fusions.upgrade", refuse)
    outcome, _ = fuse("fuse-layer-norm", LN_TORCHSCRIPT, "10.15")
    assert not outcome.changed
    assert outcome.skipped == ["1 decomposed layernorm(s) not fused: cannot upgrade opset 14 -> 17: converter says no"]


def test_upgrade_opset_rewrite_raises_to_the_release_minimum():
    m = onnx.parser.parse_model('<ir_version: 4, opset_import: ["" : 8]> g (float[2,3] x) => (float[2,3] y) { y = Relu(x) }')
    out = get_rewrite("upgrade-opset").apply(m, RewriteContext(target=Target.make("10.15")))
    assert _opset(out.model) == 9 and out.changes == ["upgraded the ai.onnx opset 8 -> 9"]
    assert "TRT132" in _codes(m, "10.15") and "TRT132" not in _codes(out.model, "10.15")
    same = get_rewrite("upgrade-opset").apply(out.model, RewriteContext(target=Target.make("10.15")))
    assert not same.changed


# ----------------------------------------------------------------------------
# Real exporter fixtures through the whole pipeline
# ----------------------------------------------------------------------------
# (fixture, release, LayerNormalization, Gelu, RMSNormalization, opset after, nodes before, nodes after;
# the TorchScript ones after fold-shape-computations with ONNX Runtime's symbolic shape inference)
REAL_CASES = [
    ("bert-torchscript-opset14", "10.15", 5, 2, 0, 20, 385, 103),
    ("bert-torchscript-opset14", "8.6", 5, 0, 0, 17, 385, 111),
    ("gpt2-torchscript-opset14", "10.15", 5, 2, 0, 20, 540, 146),
    ("gpt2-torchscript-opset14", "8.6", 5, 0, 0, 17, 540, 160),
    ("vit-torchscript-opset14", "10.15", 5, 2, 0, 20, 280, 61),
    ("llama-torchscript-opset14", "10.15", 0, 0, 5, 23, 382, 121),
    ("llama-torchscript-opset14", "10.0", 0, 0, 0, 14, 382, 146),
    ("llama-torchscript", "10.15", 0, 0, 5, 23, 382, 121),
    ("llama-dynamo", "10.15", 0, 0, 5, 23, 126, 96),
    ("llama-dynamo", "10.14", 0, 0, 0, 18, 126, 121),
    ("gpt2-dynamo", "10.0", 5, 2, 0, 20, 91, 76),]


@pytest.mark.parametrize("name, trt, n_ln, n_gelu, n_rms, opset, before, after", REAL_CASES,
                         ids=[f"{c[0]}@{c[1]}" for c in REAL_CASES])
def test_real_fixture(name, trt, n_ln, n_gelu, n_rms, opset, before, after):
    model = onnx.load(REAL / f"{name}.onnx")
    res = fix_model(model, FixOptions(trt=trt))
    ops = collections.Counter(_ops(res.model))
    assert (ops["LayerNormalization"], ops["Gelu"], ops["RMSNormalization"]) == (n_ln, n_gelu, n_rms)
    assert (len(model.graph.node), len(res.model.graph.node)) == (before, after)
    assert _opset(res.model) == opset <= Target.make(trt).release.opset_max
    codes = collections.Counter(f.code for f in res.after)
    assert not {"GRF411", "GRF412", "GRF413", "GRF404", "GRF405", "GRF406"} & set(codes), codes
    assert [o.name for o in res.model.graph.output] == [o.name for o in model.graph.output]
    names = [n.name for n in res.model.graph.node]
    assert len(set(names)) == len(names)
    if res.changed:
        assert res.proof is not None and res.proof.passed
        assert all(s.proof.passed for s in res.steps if s.status == "applied")
        onnx.checker.check_model(res.model, full_check=True)
        assert _max_diff(model, res.model) <= TOL
    if n_gelu == 0:
        assert not any(s.rewrite == "fuse-gelu" and s.status == "applied" for s in res.steps)


def test_bert_opset14_for_10_15_resolves_the_findings_it_started_with():
    model = onnx.load(REAL / "bert-torchscript-opset14.onnx")
    res = fix_model(model, FixOptions(trt="10.15"))
    before = collections.Counter(f.code for f in res.before)
    assert before["GRF411"] == 5 and before["GRF412"] == 2 and before["GRF405"] > 0
    applied = {s.rewrite for s in res.steps if s.status == "applied"}
    assert {"fuse-layer-norm", "fuse-gelu", "remove-noops", "dedupe-initializers"} <= applied
    ops = collections.Counter(_ops(res.model))
    assert ops["LayerNormalization"] == 5 and ops["Gelu"] == 2
    assert not {"Erf", "Sqrt", "Pow", "Identity"} & set(ops)
