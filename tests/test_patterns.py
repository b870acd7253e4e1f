"""The LayerNorm / GELU / RMSNorm matchers the GRF rules and the fusion rewrites share: what they match,
what they return, and the reason they give when they do not match."""

from __future__ import annotations

import onnx.parser
import pytest

from onnxdoctor.patterns.decomposed import (
    Match,
    MatchFailure,
    iter_matches,
    match_gelu,
    match_layer_norm,
    match_rms_norm,
)
from onnxdoctor.model import from_proto

LN = """
<ir_version: 8, opset_import: ["" : 14]>
g (float[2,8] x) => (float[2,8] y) <float two = {{2.0}}, float eps = {{1e-5}}, float[8] w = {{1,1,1,1,1,1,1,1}}, float[8] b = {{0,0,0,0,0,0,0,0}}> {{
  m = ReduceMean<axes = [{axes}]>(x)
  d = Sub(x, m)
  p = Pow(d, {exp})
  v = ReduceMean<axes = [{axes}]>(p)
  ve = Add(v, eps)
  s = Sqrt(ve)
  n = Div(d, s)
  g1 = Mul(n, w)
  y = Add(g1, b)
}}
"""


def _model(text: str):
    return from_proto(onnx.parser.parse_model(text))


def _run(matcher, text: str, anchor_op: str):
    model = _model(text)
    g = model.main
    idx = next(i for i, n in enumerate(g.nodes) if n.op_type == anchor_op)
    return matcher(model, g, idx)


def test_layer_norm_match_lists_nodes_tensors_and_constants():
    m = _run(match_layer_norm, LN.format(axes="-1", exp="two"), "Sqrt")
    assert isinstance(m, Match) and m
    assert [n.op_type for n in m.nodes] == ["ReduceMean", "Sub", "Pow", "ReduceMean", "Add", "Sqrt", "Div", "Mul", "Add"]
    assert (m.input, m.output) == ("x", "y")
    assert (m.axis, m.epsilon_name, m.gamma, m.beta) == (-1, "eps", "w", "b")
    assert m.epsilon == pytest.approx(1e-5)
    assert m.form == "Div by Sqrt"
    assert set(m.constants) == {"eps", "w", "b"}


def test_match_is_an_immutable_record():
    """Match and MatchFailure are immutable records (NamedTuples): equal by value, hashable, truthy
    for a match and falsy for a failure."""
    m = _run(match_layer_norm, LN.format(axes="-1", exp="two"), "Sqrt")
    again = Match(**m._asdict())
    assert again == m and hash(again) == hash(m) and repr(again) == repr(m)
    with pytest.raises(AttributeError):
        m.axis = 0  # type: ignore[misc]
    assert m and Match("gelu", (), "x", "y", "Erf", approximate="none")
    failure = MatchFailure("no Sub")
    assert not failure and str(failure) == "no Sub" and failure.node is None


@pytest.mark.parametrize(
    "axes,exp,reason",
    [
        ("0", "two", "ReduceMean axes [0] are not the last axis"),
        ("-1", "three", "Pow 'Pow#2' exponent is 3, not 2"),
    ],
    ids=["axes-not-last", "exponent-3"],
)
def test_layer_norm_failure_reasons(axes, exp, reason):
    text = LN.format(axes=axes, exp=exp).replace("float two = {2.0}", "float two = {2.0}, float three = {3.0}")
    r = _run(match_layer_norm, text, "Sqrt")
    assert isinstance(r, MatchFailure) and not r
    assert reason in r.reason


def test_layer_norm_epsilon_not_constant():
    text = LN.format(axes="-1", exp="two").replace("(float[2,8] x)", "(float[2,8] x, float e2)").replace("Add(v, eps)", "Add(v, e2)")
    r = _run(match_layer_norm, text, "Sqrt")
    assert not r and r.reason == "epsilon is not a constant scalar"


def test_layer_norm_rejects_intermediate_with_outside_reader():
    text = LN.format(axes="-1", exp="two").replace("(float[2,8] y)", "(float[2,8] y, float[2,8] z)").replace(
        "y = Add(g1, b)", "y = Add(g1, b)\n  z = Neg(d)")
    r = _run(match_layer_norm, text, "Sqrt")
    assert not r and "intermediate tensor 'd' is also read outside the pattern" in r.reason


def test_layer_norm_gamma_varying_along_batch_axis_is_refused():
    text = LN.format(axes="-1", exp="two").replace("float[8] w = {1,1,1,1,1,1,1,1}", "float[2,8] w = {1,1,1,1,1,1,1,1,2,2,2,2,2,2,2,2}")
    r = _run(match_layer_norm, text, "Sqrt")
    assert not r and "gamma 'w' of shape [2, 8] varies along a non-normalized axis" in r.reason


def test_layer_norm_on_rms_norm_says_why():
    r = _run(match_layer_norm, RMS_DYNAMO, "Sqrt")
    assert not r and "not x - mean(x)" in r.reason


def test_anchor_must_be_sqrt():
    model = _model(LN.format(axes="-1", exp="two"))
    r = match_layer_norm(model, model.main, 0)
    assert not r and r.reason == "anchor 'ReduceMean#0' is a ReduceMean, not a Sqrt"
    assert r.node is not None and r.node.op_type == "ReduceMean"


RMS_DYNAMO = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[2,8] x) => (float[2,8] y) <float two = {2.0}, float eps = {1e-6}, int64[1] ax = {-1}, float[8] w = {1,1,1,1,1,1,1,1}> {
  p = Pow(x, two)
  v = ReduceMean(p, ax)
  ve = Add(v, eps)
  s = Sqrt(ve)
  r = Reciprocal(s)
  n = Mul(x, r)
  y = Mul(w, n)
}
"""

RMS_TORCHSCRIPT_FP16_CAST = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,8] x) => (float16[2,8] y) <float two = {2.0}, float eps = {1e-6}, float one = {1.0}, float16[8] w = {1,1,1,1,1,1,1,1}> {
  p = Pow(x, two)
  v = ReduceMean<axes = [-1]>(p)
  ve = Add(v, eps)
  s = Sqrt(ve)
  r = Div(one, s)
  n = Mul(x, r)
  c = Cast<to = 10>(n)
  y = Mul(w, c)
}
"""


def test_rms_norm_dynamo_form():
    m = _run(match_rms_norm, RMS_DYNAMO, "Sqrt")
    assert m and [n.op_type for n in m.nodes] == ["Pow", "ReduceMean", "Add", "Sqrt", "Reciprocal", "Mul", "Mul"]
    assert (m.input, m.output, m.gamma, m.axis, m.form) == ("x", "y", "w", -1, "Mul by Reciprocal(Sqrt)")


def test_rms_norm_stops_before_a_precision_changing_cast():
    """A Cast to FLOAT16 between normalization and scale is not a no-op: the match ends before it
    (RMSNormalization without scale, then the Cast and Mul stay), so the fusion stays exact."""
    m = _run(match_rms_norm, RMS_TORCHSCRIPT_FP16_CAST, "Sqrt")
    assert m and m.output == "n" and m.gamma is None
    assert [n.op_type for n in m.nodes] == ["Pow", "ReduceMean", "Add", "Sqrt", "Div", "Mul"]


def test_rms_norm_on_layer_norm_says_why():
    r = _run(match_rms_norm, LN.format(axes="-1", exp="two"), "Sqrt")
    assert not r and r.reason == "the squared tensor is x - mean(x): a LayerNorm, not an RMSNorm"


def test_rms_norm_wrong_numerator():
    text = RMS_DYNAMO.replace("(float[2,8] x)", "(float[2,8] x, float[2,8] z)").replace("n = Mul(x, r)", "n = Mul(z, r)")
    r = _run(match_rms_norm, text, "Sqrt")
    assert not r and "not multiplied with the expected tensor" in r.reason


GELU_ERF = """
<ir_version: 8, opset_import: ["" : 14]>
g (float[2,8] x) => (float[2,8] y) <float r2 = {%s}, float one = {1.0}, float half = {0.5}> {
  a = Div(x, r2)
  e = Erf(a)
  p = Add(e, one)
  m = Mul(x, p)
  y = Mul(m, half)
}
"""

GELU_TANH = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,8] x) => (float[2,8] y) <float half = {0.5}, float three = {%s}, float k = {0.044715}, float c = {0.7978846}, float one = {1.0}> {
  hx = Mul(x, half)
  x3 = Pow(x, three)
  kx3 = Mul(x3, k)
  inner = Add(x, kx3)
  z = Mul(inner, c)
  t = Tanh(z)
  p = Add(t, one)
  y = Mul(hx, p)
}
"""


def test_gelu_erf_match():
    m = _run(match_gelu, GELU_ERF % "1.4142135", "Erf")
    assert m and m.approximate == "none" and (m.input, m.output) == ("x", "y")
    assert [n.op_type for n in m.nodes] == ["Div", "Erf", "Add", "Mul", "Mul"]
    assert {"r2", "one", "half"} <= set(m.constants)


def test_gelu_tanh_match():
    m = _run(match_gelu, GELU_TANH % "3.0", "Tanh")
    assert m and m.approximate == "tanh" and (m.input, m.output) == ("x", "y")
    assert [n.op_type for n in m.nodes] == ["Mul", "Pow", "Mul", "Add", "Mul", "Tanh", "Add", "Mul"]


def test_gelu_failure_reasons():
    r = _run(match_gelu, GELU_ERF % "2.0", "Erf")
    assert not r and r.reason == "Erf input is x Div 2, not √2"
    r = _run(match_gelu, GELU_TANH % "2.0", "Tanh")
    assert not r and "not x³ of the same x" in r.reason
    r = _run(match_gelu, GELU_ERF.replace("y = Mul(m, half)", "y = Mul(m, one)") % "1.4142135", "Erf")
    assert not r and r.reason == "x·(1 + ...) is not multiplied by 0.5"


GELU_ERF_FP16 = """
<ir_version: 8, opset_import: ["" : 14]>
g (float16[2,8] x) => (float16[2,8] y) <float r2f = {1.4142135}, float onef = {1.0}, float halff = {0.5}> {
  r2 = Cast<to = 10>(r2f)
  one = Cast<to = 10>(onef)
  half = Cast<to = 10>(halff)
  a = Div(x, r2)
  e = Erf(a)
  p = Add(e, one)
  m = Mul(x, p)
  y = Mul(m, half)
}
"""


def test_gelu_fp16_constants_match_within_half_precision():
    """√2 rounded to FLOAT16 is 1.4140625 (0.01 % off): still the GELU constant at that precision."""
    m = _run(match_gelu, GELU_ERF_FP16, "Erf")
    assert m and m.approximate == "none"


def test_iter_matches_reports_every_anchor():
    model = _model(LN.format(axes="-1", exp="two"))
    results = list(iter_matches(model, model.main, match_layer_norm))
    assert len(results) == 1 and results[0][0].op_type == "Sqrt" and results[0][1]
