"""The proofs' fallback runtime (onnxdoctor.refeval): onnx.reference for valid models ONNX Runtime
refuses, never for invalid ones, never hiding a rewrite that changes the outputs; and its N-D
DeformConv, checked against onnx's own 2-D implementation and ONNX Runtime."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnx.helper as oh
import onnx.parser
import pytest

import onnxdoctor.rewrites as rewrites_pkg
from onnxdoctor import prove, refeval
from onnxdoctor.errors import OnnxDoctorError
from onnxdoctor.fix import FixOptions, fix_model
from onnxdoctor.report.fix import render_fix
from onnxdoctor.rewrites.substitutions.standard import HardmaxToArgmaxOnehot

# Hardmax on DOUBLE: valid ONNX (T includes double), which ONNX Runtime's CPU provider does not implement.
DOUBLE_HARDMAX = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2,5] x) => (float[2,5] y) {
  d = Cast<to = 11>(x)
  h = Hardmax<axis = 1>(d)
  y = Cast<to = 1>(h)
}
"""


def _hardmax(x: np.ndarray) -> np.ndarray:
    return np.eye(x.shape[1], dtype=np.float32)[np.argmax(x, axis=1)]


def test_onnx_runtime_refuses_the_double_hardmax_model_which_is_valid_onnx():
    m = onnx.parser.parse_model(DOUBLE_HARDMAX)
    with pytest.raises(Exception, match="Hardmax"):
        prove.session(m)
    assert refeval.invalid_onnx(m) is None


def test_a_model_onnx_runtime_refuses_is_fixed_and_proven_in_onnx_reference():
    m = onnx.parser.parse_model(DOUBLE_HARDMAX)
    res = fix_model(m, FixOptions(trt="8.6"))
    assert res.inputs.runtime == "onnx.reference"
    assert "Hardmax" in res.inputs.runtime_note
    assert "reference: onnx.reference (ONNX Runtime cannot load it" in res.inputs.describe()
    step = next(s for s in res.steps if s.rewrite == "hardmax-to-argmax-onehot")
    assert step.status == "applied" and step.proof.passed
    assert res.proof is not None and res.proof.passed
    assert not [f for f in res.after if str(f.severity) == "error"], [(f.code, f.message) for f in res.after]
    onnx.checker.check_model(res.model, full_check=True)
    assert "Hardmax" not in {n.op_type for n in res.model.graph.node}
    # the reference itself is Hardmax's definition (computed here with numpy, independently)
    x = res.inputs.feeds["x"]
    np.testing.assert_array_equal(next(iter({k: v for k, v in res.inputs.outputs.items()}.values())), _hardmax(x))
    # the report says which runtime produced the reference
    text = render_fix(res, "m.onnx", [], "text")
    assert "reference: onnx.reference (ONNX Runtime cannot load it: Could not find an implementation for Hardmax" in text
    d = json.loads(render_fix(res, "m.onnx", [], "json"))
    assert d["inputs"]["reference_runtime"] == "onnx.reference"
    assert "Hardmax" in d["inputs"]["reference_runtime_note"]


class WrongHardmax(HardmaxToArgmaxOnehot):
    """hardmax-to-argmax-onehot, but one-hot of the ArgMin: a rewrite that changes the outputs."""

    def apply(self, model, ctx):
        out = super().apply(model, ctx)
        for n in out.model.graph.node:
            if n.op_type == "ArgMax":
                n.op_type = "ArgMin"
        return out


def test_a_wrong_rewrite_is_still_rolled_back_under_the_fallback(monkeypatch):
    table = tuple(WrongHardmax() if r.name == "hardmax-to-argmax-onehot" else r for r in rewrites_pkg.all_rewrites())
    monkeypatch.setattr(rewrites_pkg, "all_rewrites", lambda: table)
    res = fix_model(onnx.parser.parse_model(DOUBLE_HARDMAX), FixOptions(trt="8.6"))
    assert res.inputs.runtime == "onnx.reference"
    step = next(s for s in res.steps if s.rewrite == "hardmax-to-argmax-onehot")
    assert step.status == "rolled-back", res.steps
    assert step.reason.startswith("outputs differ") and not step.proof.passed
    assert "run in onnx.reference" in step.reason  # the candidate ran there too (ORT lacks double OneHot)
    assert "Hardmax" in {n.op_type for n in res.model.graph.node}


def test_the_reference_comes_from_onnx_reference_also_with_data(tmp_path):
    m = onnx.parser.parse_model(DOUBLE_HARDMAX)
    x = np.random.default_rng(3).standard_normal((2, 5)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    res = fix_model(m, FixOptions(trt="8.6", data=str(tmp_path / "in.npz")))
    assert res.inputs.runtime == "onnx.reference" and res.proof.passed
    # the result (a DOUBLE OneHot, which ONNX Runtime does not implement either) computes Hardmax
    np.testing.assert_array_equal(refeval.Session(res.model, "double OneHot").run(None, {"x": x})[0], _hardmax(x))


# INT32 Hardmax: Hardmax's T is float16/float/double/bfloat16, so the model is invalid ONNX (onnx.checker
# and ONNX Runtime refuse it); onnx.reference would run it, which is exactly what must not happen.
INT32_HARDMAX = """
<ir_version: 8, opset_import: ["" : 13]>
g (int32[2,5] x) => (int32[2,5] y) { y = Hardmax<axis = 1>(x) }
"""


def test_an_invalid_model_is_not_run_in_the_fallback():
    m = onnx.parser.parse_model(INT32_HARDMAX)
    problem = refeval.invalid_onnx(m)
    assert problem is not None and "Hardmax" in problem and "tensor(int32)" in problem
    with pytest.raises(OnnxDoctorError, match=r"the model is invalid ONNX \(onnx.checker: .*Hardmax.*no rewrite can be proven"):
        fix_model(m, FixOptions(trt="8.6"))


@pytest.mark.parametrize("text,reason", [
    # Attention's attn_mask must be broadcastable to the 4-D (batch, heads, q_len, total_len)
    ("""<ir_version: 10, opset_import: ["" : 23]>
        g (float[1,2,4,8] q, float[1,2,6,8] k, float[1,2,6,8] v, bool[1,1,1,4,6] mask) => (float[1,2,4,8] y) {
          y = Attention(q, k, v, mask)
        }""", "attn_mask has rank 5"),
    # Mod: "If the input type is floating point, then fmod attribute must be set to 1"
    ("""<ir_version: 8, opset_import: ["" : 13]> g (float[4] a, float[4] b) => (float[4] y) { y = Mod(a, b) }""",
     "fmod=0"),
    # 3-D Q/K/V need q_num_heads (onnx's shape inference enforces it)
    ("""<ir_version: 10, opset_import: ["" : 23]>
        g (float[1,4,16] q, float[1,6,16] k, float[1,6,16] v) => (float[1,4,16] y) { y = Attention(q, k, v) }""",
     "q_num_heads"),
    ("""<ir_version: 8, opset_import: ["" : 99]> g (float[4] a) => (float[4] y) { y = Relu(a) }""", "opset 99"),
])
def test_invalid_onnx_names_the_constraint(text, reason):
    assert reason in (refeval.invalid_onnx(onnx.parser.parse_model(text)) or "")


def test_valid_models_are_valid():
    for text in (DOUBLE_HARDMAX,
                 """<ir_version: 8, opset_import: ["" : 13]> g (float[4] a, float[4] b) => (float[4] y) { y = Mod<fmod = 1>(a, b) }""",
                 """<ir_version: 8, opset_import: ["" : 13]> g (int32[4] a, int32[4] b) => (int32[4] y) { y = Mod(a, b) }"""):
        assert refeval.invalid_onnx(onnx.parser.parse_model(text)) is None


def test_the_fallback_refuses_big_models():
    nodes = [oh.make_node("Identity", [f"t{i}"], [f"t{i + 1}"]) for i in range(refeval.MAX_NODES + 1)]
    g = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("t0", onnx.TensorProto.FLOAT, [2])],
                      [oh.make_tensor_value_info(f"t{len(nodes)}", onnx.TensorProto.FLOAT, [2])])
    with pytest.raises(refeval.Refused, match="too big"):
        refeval.session(oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)]), "refused")
    w = onnx.numpy_helper.from_array(np.zeros(refeval.MAX_ELEMENTS + 1, np.float32), "w")
    g = oh.make_graph([oh.make_node("Add", ["x", "w"], ["y"])], "g",
                      [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [refeval.MAX_ELEMENTS + 1])],
                      [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [refeval.MAX_ELEMENTS + 1])], [w])
    with pytest.raises(refeval.Refused, match="weight elements"):
        refeval.session(oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)]), "refused")


def test_an_output_of_another_shape_than_declared_fails_the_run():
    # onnx.reference computes Attention with a rank-5 mask by numpy broadcasting (a 5-D result), not
    # the declared 4-D output: the session checks the declared shapes (besides invalid_onnx refusing it)
    m = onnx.parser.parse_model("""<ir_version: 10, opset_import: ["" : 23]>
        g (float[1,2,4,8] q, float[1,2,6,8] k, float[1,2,6,8] v, bool[1,1,1,4,6] mask) => (float[1,2,4,8] y) {
          y = Attention(q, k, v, mask)
        }""")
    rng = np.random.default_rng(0)
    feeds = {"q": rng.standard_normal((1, 2, 4, 8)).astype(np.float32), "k": rng.standard_normal((1, 2, 6, 8)).astype(np.float32),
             "v": rng.standard_normal((1, 2, 6, 8)).astype(np.float32), "mask": np.ones((1, 1, 1, 4, 6), bool)}
    with pytest.raises(Exception, match="(?i)shape|rank"):
        refeval.Session(m, "refused").run(None, feeds)


# ---------------------------------------------------------------- DeformConv for any rank

def _deform_model(x_shape, w_shape, off_shape, y_dims, with_bias_mask: bool, **attrs) -> onnx.ModelProto:
    ins = ["X", "W", "off"] + (["B", "M"] if with_bias_mask else [])
    node = oh.make_node("DeformConv", ins, ["Y"], **attrs)
    shapes = {"X": x_shape, "W": w_shape, "off": off_shape, "B": [w_shape[0]],
              "M": [off_shape[0], off_shape[1] // (len(x_shape) - 2), *off_shape[2:]]}
    g = oh.make_graph([node], "g", [oh.make_tensor_value_info(n, onnx.TensorProto.FLOAT, shapes[n]) for n in ins],
                      [oh.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, y_dims)])
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 19)])


@pytest.mark.parametrize("group,offset_group", [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_deform_conv_2d_matches_onnx_reference_and_onnx_runtime(group, offset_group):
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(group * 10 + offset_group)
    kernel, strides, dilations, pads = [2, 3], [1, 2], [2, 1], [1, 0, 0, 1]
    oh_, ow_ = (7 + 1 - 3) // 1 + 1, (8 + 1 - 3) // 2 + 1
    m = _deform_model([2, 4, 7, 8], [4, 4 // group, *kernel], [2, offset_group * 6 * 2, oh_, ow_], [2, 4, oh_, ow_], True,
                      kernel_shape=kernel, strides=strides, dilations=dilations, pads=pads, group=group,
                      offset_group=offset_group)
    feeds = {"X": rng.standard_normal((2, 4, 7, 8)), "W": rng.standard_normal((4, 4 // group, *kernel)),
             "off": rng.standard_normal((2, offset_group * 12, oh_, ow_)) * 1.5, "B": rng.standard_normal(4),
             "M": rng.random((2, offset_group * 6, oh_, ow_))}
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    ours = ReferenceEvaluator(m, new_ops=[refeval.DeformConv]).run(None, feeds)[0]
    theirs = ReferenceEvaluator(m).run(None, feeds)[0]
    ort = prove.run(m, feeds)["Y"]
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    np.testing.assert_allclose(ours, ort, atol=1e-5)


def _conv3d(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    m = oh.make_model(oh.make_graph([oh.make_node("Conv", ["X", "W"], ["Y"])], "g",
                                    [oh.make_tensor_value_info("X", onnx.TensorProto.FLOAT, list(x.shape)),
                                     oh.make_tensor_value_info("W", onnx.TensorProto.FLOAT, list(w.shape))],
                                    [oh.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)]),
                      opset_imports=[oh.make_opsetid("", 13)])
    return prove.run(m, {"X": x, "W": w})["Y"]


def test_deform_conv_3d_with_integer_offsets_is_a_shifted_conv():
    # zero offsets: a 3-D Conv (ONNX Runtime's); offset +1 along depth everywhere: the Conv of the input
    # shifted by one plane, the plane beyond the end reading zeros
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 2, 4, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 2, 2, 2)).astype(np.float32)
    out = [3, 4, 4]
    sess_model = _deform_model([1, 2, 4, 5, 5], [3, 2, 2, 2, 2], [1, 8 * 3, *out], [1, 3, *out], False, kernel_shape=[2, 2, 2])
    sess = refeval.Session(sess_model, "3-D DeformConv")
    zero = np.zeros((1, 24, *out), np.float32)
    np.testing.assert_allclose(sess.run(None, {"X": x, "W": w, "off": zero})[0], _conv3d(x, w), atol=1e-5)
    shift = zero.reshape(1, 1, 8, 3, *out).copy()
    shift[:, :, :, 0] = 1.0  # the depth component of every kernel position's offset
    shifted = np.concatenate([x[:, :, 1:], np.zeros_like(x[:, :, :1])], axis=2)
    np.testing.assert_allclose(sess.run(None, {"X": x, "W": w, "off": shift.reshape(1, 24, *out)})[0],
                               _conv3d(shifted, w), atol=1e-5)
    # half a plane: the mean of the two
    half = shift * 0.5
    np.testing.assert_allclose(sess.run(None, {"X": x, "W": w, "off": half.reshape(1, 24, *out)})[0],
                               (_conv3d(x, w) + _conv3d(shifted, w)) / 2, atol=1e-5)
