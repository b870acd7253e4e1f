"""Bit operators written as INT32 arithmetic (rewrites/substitutions/bitwise.py) give ONNX Runtime's
results exactly over the whole range of each type: negatives, the sign bit, the extremes, shifts
by the full width and more."""

from __future__ import annotations

import numpy as np
import onnx.parser
import pytest

from onnxdoctor import prove
from onnxdoctor.rewrites import RewriteContext, get_rewrite
from onnxdoctor.target import Target

RNG = np.random.default_rng(3)


def _values(dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    edges = [info.min, info.min + 1, -1, 0, 1, info.max - 1, info.max]
    edges = [v for v in edges if info.min <= v <= info.max]
    rand = RNG.integers(info.min, int(info.max) + 1, 400, dtype=np.int64)
    return np.concatenate([np.array(edges, np.int64), rand]).astype(dtype)


@pytest.mark.parametrize("op,rewrite", [("BitwiseAnd", "bitwise-and-to-arithmetic"), ("BitwiseOr", "bitwise-or-to-arithmetic"),
                                        ("BitwiseXor", "bitwise-xor-to-arithmetic")])
@pytest.mark.parametrize("onnx_type,np_type", [("int32", np.int32), ("int16", np.int16), ("int8", np.int8),
                                               ("uint16", np.uint16), ("uint8", np.uint8)])
def test_binary_bitwise_is_exact(op, rewrite, onnx_type, np_type):
    a = _values(np_type)
    b = np.roll(_values(np_type), 5)
    n = a.size
    model = onnx.parser.parse_model(f'<ir_version: 8, opset_import: ["" : 18]>\n'
                                    f"g ({onnx_type}[{n}] a, {onnx_type}[{n}] b) => ({onnx_type}[{n}] y) {{ y = {op}(a, b) }}")
    result = get_rewrite(rewrite).apply(model, RewriteContext(target=Target.make("8.6")))
    assert result.changed, result.skipped
    onnx.checker.check_model(result.model, full_check=True)
    feeds = {"a": a, "b": b}
    expected = prove.run(model, feeds)["y"]
    np.testing.assert_array_equal(prove.run(result.model, feeds)["y"], expected)
    np.testing.assert_array_equal(expected, {"BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or,
                                             "BitwiseXor": np.bitwise_xor}[op](a, b))


@pytest.mark.parametrize("onnx_type,np_type", [("int32", np.int32), ("int8", np.int8), ("uint8", np.uint8), ("uint16", np.uint16)])
def test_bitwise_not_is_exact(onnx_type, np_type):
    a = _values(np_type)
    model = onnx.parser.parse_model(f'<ir_version: 8, opset_import: ["" : 18]>\n'
                                    f"g ({onnx_type}[{a.size}] a) => ({onnx_type}[{a.size}] y) {{ y = BitwiseNot(a) }}")
    result = get_rewrite("bitwise-not-to-sub").apply(model, RewriteContext(target=Target.make("8.6"))).model
    np.testing.assert_array_equal(prove.run(result, {"a": a})["y"], np.invert(a))


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("onnx_type,np_type,bits", [("uint8", np.uint8, 8), ("uint16", np.uint16, 16)])
def test_bit_shift_is_exact_for_every_shift(direction, onnx_type, np_type, bits):
    x = _values(np_type)
    shifts = np.arange(bits + 3, dtype=np_type)  # past the width too
    xs = np.repeat(x, shifts.size)
    ss = np.tile(shifts, x.size)
    model = onnx.parser.parse_model(f'<ir_version: 8, opset_import: ["" : 11]>\n'
                                    f'g ({onnx_type}[{xs.size}] x, {onnx_type}[{xs.size}] s) => ({onnx_type}[{xs.size}] y) '
                                    f'{{ y = BitShift<direction = "{direction}">(x, s) }}')
    result = get_rewrite("bit-shift-to-arithmetic").apply(model, RewriteContext(target=Target.make("8.6")))
    assert result.changed, result.skipped
    onnx.checker.check_model(result.model, full_check=True)
    feeds = {"x": xs, "s": ss}
    np.testing.assert_array_equal(prove.run(result.model, feeds)["y"], prove.run(model, feeds)["y"])


def test_64_bit_and_32_bit_unsigned_are_left_alone_with_the_reason():
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 18]>\n'
                                    "g (int64[4] a, int64[4] b) => (int64[4] y) { y = BitwiseAnd(a, b) }")
    outcome = get_rewrite("bitwise-and-to-arithmetic").apply(model, RewriteContext(target=Target.make("8.6")))
    assert not outcome.changed and any("INT64" in s for s in outcome.skipped), outcome.skipped
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 11]>\n'
                                    'g (uint32[4] a, uint32[4] s) => (uint32[4] y) { y = BitShift<direction = "LEFT">(a, s) }')
    outcome = get_rewrite("bit-shift-to-arithmetic").apply(model, RewriteContext(target=Target.make("8.6")))
    assert not outcome.changed and any("UINT8 and UINT16" in s for s in outcome.skipped), outcome.skipped
