"""Rewrites for inputs an importer rejects by type (TRT116): applied where the finding names them,
not elsewhere; bit-equal in ONNX Runtime; full check; the finding gone at the release."""

from __future__ import annotations

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
from onnxdoctor.target import Target

H = '<ir_version: 8, opset_import: ["" : 17]>\n'


def _errors(m, trt):
    return [f for f in analyze(from_proto(m), Target.make(trt), all_rules()) if str(f.severity) == "error"]


def repaired(text: str, trt: str, rewrite: str, feeds: dict) -> onnx.ModelProto:
    model = onnx.parser.parse_model(H + text)
    onnx.checker.check_model(model, full_check=True)
    assert any(f.code == "TRT116" and f.fix and f.fix.rewrite == rewrite for f in _errors(model, trt))
    res = fix_model(model, FixOptions(trt=trt))
    assert rewrite in [s.rewrite for s in res.steps if s.status == "applied"], res.steps
    assert not _errors(res.model, trt), [(f.code, f.message) for f in _errors(res.model, trt)]
    onnx.checker.check_model(res.model, full_check=True)
    ref, got = prove.run(model, feeds), prove.run(res.model, feeds)
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k])
    return res.model


@pytest.mark.parametrize("t,np_t", [("int32", np.int32), ("int64", np.int64)])
def test_integer_matmul_becomes_mul_reduce_sum(t, np_t):
    rng = np.random.default_rng(0)
    feeds = {"a": rng.integers(-1000, 1000, (2, 2, 3)).astype(np_t), "b": rng.integers(-1000, 1000, (3, 4)).astype(np_t)}
    out = repaired(f"g ({t}[2,2,3] a, {t}[3,4] b) => ({t}[2,2,4] y) {{ y = MatMul(a, b) }}", "10.15",
                   "integer-matmul-to-mul-reduce-sum", feeds)
    assert "MatMul" not in [n.op_type for n in out.graph.node]


@pytest.mark.parametrize("t,np_t,trt", [("int32", np.int32, "8.6"), ("int64", np.int64, "8.6")])
def test_integer_matmul_is_unrolled_where_reduce_sum_is_float_only(t, np_t, trt):
    # Extremes included: Mul and Add wrap around as MatMul does, in any order (ONNX Runtime).
    rng = np.random.default_rng(1)
    info = np.iinfo(np.int32)
    a = rng.integers(info.min, info.max, (2, 2, 5), dtype=np.int64).astype(np_t)
    a[0, 0, :] = info.max
    b = rng.integers(-1000, 1000, (5, 4)).astype(np_t)
    out = repaired(f"g ({t}[2,2,5] a, {t}[5,4] b) => ({t}[2,2,4] y) {{ y = MatMul(a, b) }}", trt,
                   "integer-matmul-to-mul-reduce-sum", {"a": a, "b": b})
    ops = [n.op_type for n in out.graph.node]
    assert "MatMul" not in ops and "ReduceSum" not in ops and ops.count("Mul") == 5 and ops.count("Add") == 4


def test_integer_matmul_names_no_fix_where_reduce_sum_is_float_only_and_k_is_large_or_unknown():
    for a_shape in ("[2,65]", "[2,K]"):
        model = onnx.parser.parse_model(H + f"g (int32{a_shape} a, int32[{a_shape[3:-1]},4] b) => (int32[2,4] y) {{ y = MatMul(a, b) }}")
        assert [f.fix for f in _errors(model, "8.6") if f.code == "TRT116"] == [None]
        outcome = get_rewrite("integer-matmul-to-mul-reduce-sum").apply(model, RewriteContext(target=Target.make("8.6")))
        assert not outcome.changed and "does not take INT32" in outcome.skipped[0]


def test_integer_exponent_of_a_float_pow_is_cast():
    feeds = {"a": np.array([1.5, -2.0, 0.5, 3.0], np.float32), "b": np.array([2, 3, -1, 0], np.int32)}
    out = repaired("g (float[4] a, int32[4] b) => (float[4] y) { y = Pow(a, b) }", "8.6", "pow-exponent-to-float", feeds)
    assert "Cast" in [n.op_type for n in out.graph.node]


def test_integer_base_of_pow_names_no_fix():
    model = onnx.parser.parse_model(H + "g (int32[4] a, int32[4] b) => (int32[4] y) { y = Pow(a, b) }")
    assert all(f.fix is None for f in _errors(model, "8.6") if f.code == "TRT116")


def test_integer_relu_becomes_max():
    feeds = {"a": np.array([-3, 0, 5, -2147483648], np.int32)}
    out = repaired("g (int32[4] a) => (int32[4] y) { y = Relu(a) }", "10.15", "int-relu-to-max", feeds)
    assert [n.op_type for n in out.graph.node] == ["Max"]


def test_abs_of_uint8_is_identity():
    feeds = {"a": np.array([0, 7, 200, 255], np.uint8)}
    out = repaired("g (uint8[4] a) => (uint8[4] y) { y = Abs(a) }", "10.15", "abs-unsigned-to-identity", feeds)
    assert "Abs" not in [n.op_type for n in out.graph.node]


def test_nearest_resize_of_uint8_runs_in_float():
    feeds = {"img": np.random.default_rng(0).integers(0, 256, (1, 3, 4, 4)).astype(np.uint8)}
    out = repaired("""g (uint8[1,3,4,4] img) => (uint8[1,3,8,8] y) <float[4] s = {1, 1, 2, 2}> {
      y = Resize<mode = "nearest">(img, , s)
    }""", "8.6", "resize-nearest-via-float", feeds)
    assert [n.op_type for n in out.graph.node] == ["Cast", "Resize", "Cast"]


def test_uint8_inputs_into_concat_are_computed_in_int32():
    feeds = {"img": np.full((1, 3, 4, 4), 200, np.uint8), "img2": np.full((1, 3, 4, 4), 7, np.uint8)}
    out = repaired("""g (uint8[1,3,4,4] img, uint8[1,3,4,4] img2) => (uint8[1,6,4,4] y) { y = Concat<axis = 1>(img, img2) }""",
                   "10.15", "small-int-to-int32", feeds)
    assert out.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
