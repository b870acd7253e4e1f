"""small-int-to-int32: UINT8/INT16/UINT16/UINT32 inside the network computed wide with explicit
wrap-around. Applies where TensorRT cannot hold the type, not at the interface or in quantization;
the result is exactly equal in ONNX Runtime (out-of-range values included) and passes the full check."""

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

H = '<ir_version: 8, opset_import: ["" : 17]>\n'
# Floats far outside the narrow ranges, negative ones and fractions: the wrap must match ORT's casts.
X = np.array([-70000.7, -300.2, -1.7, -0.5, 0.5, 255.9, 256.2, 300.7, 40000.4, 70000.3], np.float32)


def _codes(m: onnx.ModelProto, trt: str) -> collections.Counter:
    return collections.Counter(f.code for f in analyze(from_proto(m), Target.make(trt), all_rules()) if str(f.severity) == "error")


def apply(text: str, trt: str = "10.15", feeds=None):
    model = onnx.parser.parse_model(H + text)
    onnx.checker.check_model(model, full_check=True)
    outcome = get_rewrite("small-int-to-int32").apply(model, RewriteContext(target=Target.make(trt)))
    if not outcome.changed:
        return outcome, model, model
    out = cleaned(outcome.model)
    onnx.checker.check_model(out, full_check=True)
    assert [o.name for o in out.graph.output] == [o.name for o in model.graph.output]
    assert [o.type for o in out.graph.output] == [o.type for o in model.graph.output]
    feeds = feeds or {"x": X}
    ref, got = prove.run(model, feeds), prove.run(out, feeds)
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k])
    return outcome, model, out


def _types(m: onnx.ModelProto) -> set[int]:
    inferred = onnx.shape_inference.infer_shapes(m)
    out, stack = set(), [inferred.graph]
    while stack:
        g = stack.pop()
        out.update(vi.type.tensor_type.elem_type for vi in (*g.value_info, *g.output))
        out.update(t.data_type for t in g.initializer)
        stack.extend(a.g for n in g.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH)
    return out


@pytest.mark.parametrize("to,narrow", [(2, "UINT8"), (5, "INT16"), (4, "UINT16")])
def test_cast_and_arithmetic_inside_the_network(to, narrow):
    text = f"""g (float[10] x) => (float[10] y) {{
      u = Cast<to = {to}>(x)
      s = Add(u, u)
      p = Mul(s, u)
      m = {"Max" if narrow == "UINT8" else "Sub"}(p, u)
      n = Sub(u, m)
      y = Cast<to = 1>(n)
    }}"""
    outcome, model, out = apply(text)
    assert outcome.changed and not {2, 4, 5} & _types(out)
    assert _codes(model, "10.15") and not _codes(out, "10.15")
    assert any("wrap-around" in c for c in outcome.changes)


def test_uint32_is_computed_in_int64_where_mod_takes_int64_and_left_alone_on_8_6():
    text = "g (int64[10] x) => (int64[10] y) { u = Cast<to = 12>(x) s = Add(u, u) y = Cast<to = 7>(s) }"
    feeds = {"x": np.array([-5, 0, 1, 2**32 - 1, 2**32, 2**33 + 7, -(2**40), 3, 4, 5], np.int64)}
    outcome, model, out = apply(text, feeds=feeds)
    assert 12 not in _types(out) and not _codes(out, "10.15")
    skipped, _, _ = apply(text, trt="8.6", feeds=feeds)
    assert not skipped.changed and "UINT32 left alone" in skipped.skipped[0]
    # ...and on 8.6 the findings do not name a fix that would not apply.
    assert all(f.fix is None for f in analyze(from_proto(model), Target.make("8.6"), all_rules()) if f.code in ("TRT111", "TRT121"))


def test_uint8_image_input_plus_uint8_initializer():
    text = "g (uint8[4] img) => (float[4] y) <uint8[4] bias = {1, 2, 200, 255}> { s = Add(img, bias) y = Cast<to = 1>(s) }"
    outcome, model, out = apply(text, feeds={"img": np.array([0, 100, 200, 255], np.uint8)})
    assert out.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8  # the interface stays UINT8
    assert next(t for t in out.graph.initializer if t.name == "bias").data_type == onnx.TensorProto.INT32
    assert "TRT113" in _codes(model, "10.15") and not _codes(out, "10.15")


def test_narrow_graph_output_is_computed_wide_and_cast_back():
    text = "g (float[10] x) => (uint8[10] y) { u = Cast<to = 2>(x) y = Add(u, u) }"
    outcome, model, out = apply(text)
    assert outcome.changed and out.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert out.graph.node[-1].op_type == "Cast" and not _codes(out, "10.15")


def test_inside_an_if_branch():
    text = """g (bool c, float[10] x) => (float[10] y) {
      y = If(c) <then_branch = t () => (float[10] a) { z = Cast<to = 5>(x) w = Sub(z, z) v = Add(z, w) a = Cast<to = 1>(v) },
                 else_branch = e () => (float[10] b) { b = Identity(x) }>
    }"""
    for c in (True, False):
        outcome, model, out = apply(text, feeds={"x": X, "c": np.array(c)})
    assert 5 not in _types(out) and not _codes(out, "10.15")


def test_a_reader_it_does_not_know_gets_the_narrow_value_back():
    # BitShift is not computed wide: it reads a Cast back to UINT8 (values in range: exact).
    text = """g (float[10] x) => (float[10] y) <uint8[1] k = {1}> {
      u = Cast<to = 2>(x)
      s = Add(u, u)
      b = BitShift<direction = "RIGHT">(s, k)
      y = Cast<to = 1>(b)
    }"""
    outcome, model, out = apply(text)
    assert any("BitShift" in s and "does not compute it wide" in s for s in outcome.skipped)
    shift = next(n for n in out.graph.node if n.op_type == "BitShift")
    assert shift.input[0] != "s"


def test_not_applied_to_quantization_or_where_nothing_is_narrow():
    qdq = "g (float[2] x) => (float[2] y) <uint8[2] wq = {120, 130}, float s = {0.05}> { w = DequantizeLinear(wq, s) y = Mul(x, w) }"
    model = onnx.parser.parse_model(H + qdq)
    assert all(f.fix is None or f.fix.rewrite != "small-int-to-int32" for f in analyze(from_proto(model), Target.make("10.15"), all_rules()))
    outcome, _, _ = apply("g (float[4] x) => (float[4] y) { y = Relu(x) }")
    assert not outcome.changed and "no UINT8" in outcome.skipped[0]


def test_through_the_pipeline_and_the_proof():
    model = onnx.parser.parse_model(H + "g (float[10] x) => (float[10] y) { u = Cast<to = 4>(x) v = Mul(u, u) y = Cast<to = 1>(v) }")
    res = fix_model(model, FixOptions(trt="10.15"))
    assert "small-int-to-int32" in [s.rewrite for s in res.steps if s.status == "applied"]
    assert res.proof.passed and not [f for f in res.after if str(f.severity) == "error"]
