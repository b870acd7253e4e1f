"""Substitutions for the bit operators no TensorRT release imports (TRT101): `BitwiseNot`,
`BitwiseAnd`, `BitwiseOr`, `BitwiseXor` and `BitShift`, written with INT32 arithmetic (Div, Mod,
Mul, Sub) and FLOAT sums of bits, which every release from 8.6 imports."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ._build import Builder, Skip, Substitution

# Element types computed through INT32: (bits, signed). INT32 itself is computed directly.
_WIDTHS = {
    TensorProto.INT8: (8, True), TensorProto.INT16: (16, True), TensorProto.INT32: (32, True),
    TensorProto.UINT8: (8, False), TensorProto.UINT16: (16, False),
}


def _int32_view(b: Builder, x: str) -> tuple[str, int, bool, int]:
    """`x` as INT32 (cast when narrower), with its bit width, signedness and element type."""
    dtype = b.dtype(x)
    if dtype not in _WIDTHS:
        name = TensorProto.DataType.Name(dtype) if dtype else "unknown"
        raise Skip(f"element type {name}: only 8-, 16- and 32-bit integers are computed in INT32")
    bits, signed = _WIDTHS[dtype]
    return (x if dtype == TensorProto.INT32 else b.cast(x, TensorProto.INT32)), bits, signed, dtype


def _back(b: Builder, y: str, dtype: int, out: str) -> str:
    return b.identity_or(y, out) if dtype == TensorProto.INT32 else b.cast(y, dtype, out)


def _bits(b: Builder, x: str, first: int, count: int) -> str:
    """Bits first..first+count-1 of INT32 `x` (two's complement), as 0/1 INT32 on a new last axis:
    floor(x / 2^k) mod 2, with the floor division written exactly as (x - x mod 2^k) / 2^k."""
    powers = b.const(np.array([1 << k for k in range(first, first + count)], dtype=np.int32), TensorProto.INT32, "powers")
    xu = b.unsqueeze(x, [-1])
    floor = b.op("Div", [b.op("Sub", [xu, b.op("Mod", [xu, powers])]), powers])
    return b.op("Mod", [floor, b.const(2, TensorProto.INT32, "two")])


def _weighted_sum(b: Builder, bits: str, count: int) -> str:
    """Sum of bits[..., k] * 2^k for k < count (count <= 16: exact in FLOAT), as INT32."""
    weights = b.const(np.array([float(1 << k) for k in range(count)], dtype=np.float32), TensorProto.FLOAT, "bit_weights")
    total = b.reduce("ReduceSum", b.mul(b.cast(bits, TensorProto.FLOAT), weights), [-1], keepdims=0)
    return b.cast(total, TensorProto.INT32)


class _Bitwise(Substitution):
    resolves = ("TRT101",)
    combine: str  # how two 0/1 bits combine

    def _pair(self, b: Builder, ba: str, bb: str) -> str:
        both = b.mul(ba, bb)
        if self.combine == "and":
            return both
        either = b.op("Sub", [b.add(ba, bb), both])
        if self.combine == "or":
            return either
        return b.op("Sub", [either, both])  # xor: a + b - 2ab

    def _sign(self, b: Builder, sa: str, sb: str) -> str:
        return b.op({"and": "And", "or": "Or", "xor": "Xor"}[self.combine], [sa, sb])

    def replace(self, b: Builder) -> None:
        a, bits, signed, dtype = _int32_view(b, b.node.input[0])
        c, _, _, other = _int32_view(b, b.node.input[1])
        if other != dtype:
            raise Skip("the two inputs have different element types")
        value_bits = bits - 1 if signed else bits  # the sign bit is handled on its own
        low = min(value_bits, 16)
        parts = [(0, low)] + ([(16, value_bits - 16)] if value_bits > 16 else [])
        total = None
        for first, count in parts:
            s = _weighted_sum(b, self._pair(b, _bits(b, a, first, count), _bits(b, c, first, count)), count)
            if first:
                s = b.mul(s, b.const(1 << first, TensorProto.INT32, "shift"))
            total = s if total is None else b.add(total, s)
        if signed:
            zero = b.const(0, TensorProto.INT32, "zero")
            negative = self._sign(b, b.op("Less", [a, zero]), b.op("Less", [c, zero]))
            total = b.add(total, b.op("Where", [negative, b.const(-(1 << (bits - 1)), TensorProto.INT32, "sign_bit"), zero]))
        _back(b, total, dtype, b.node.output[0])


_DOC = """Replace `Bitwise{Op}` by INT32 arithmetic on the bits.

    ## What it does
    Each input is cast to INT32 (8- and 16-bit types; INT32 as is). Its bits are taken out on a
    new last axis as `floor(x / 2^k) mod 2` (`Sub`, `Mod`, `Div`), combined bit by bit
    ({formula}), weighted by `2^k` and summed in FLOAT in groups of 16 bits (exact), then put
    together in INT32. For signed types the sign bit is `x < 0`, combined with `{bool_op}` and
    worth `-2^(width-1)`. The result is cast back to the input type.

    ## When it applies
    TRT101 on `Bitwise{Op}` (opset 18): no TensorRT release imports it. Skipped for 64-bit and
    other element types.

    ## Example
    `y = Bitwise{Op}(a, b)` with INT32 inputs becomes two groups of `Mod(Div(Sub(a', Mod(a', P)), P), 2)`
    bit extractions, `{formula}`, `ReduceSum` of the weighted bits and the sign term.

    ## Safety
    Safe: integer arithmetic on the same bits (two's complement), sums exact in FLOAT below 2^24.

    ## Resolves
    TRT101
    """


class BitwiseAndToArithmetic(_Bitwise):
    __doc__ = _DOC.format(Op="And", formula="a·b", bool_op="And")
    name = "bitwise-and-to-arithmetic"
    summary = "replace BitwiseAnd by INT32 arithmetic on the bits"
    op_type = "BitwiseAnd"
    combine = "and"


class BitwiseOrToArithmetic(_Bitwise):
    __doc__ = _DOC.format(Op="Or", formula="a + b - a·b", bool_op="Or")
    name = "bitwise-or-to-arithmetic"
    summary = "replace BitwiseOr by INT32 arithmetic on the bits"
    op_type = "BitwiseOr"
    combine = "or"


class BitwiseXorToArithmetic(_Bitwise):
    __doc__ = _DOC.format(Op="Xor", formula="a + b - 2·a·b", bool_op="Xor")
    name = "bitwise-xor-to-arithmetic"
    summary = "replace BitwiseXor by INT32 arithmetic on the bits"
    op_type = "BitwiseXor"
    combine = "xor"


class BitwiseNotToSub(Substitution):
    """Replace `BitwiseNot` by a subtraction.

    ## What it does
    In two's complement `~x = -1 - x` for signed integers and `~x = 2^width - 1 - x` for unsigned
    ones. `BitwiseNot(x)` becomes that `Sub`, computed in INT32 (8- and 16-bit types cast in and
    back).

    ## When it applies
    TRT101 on `BitwiseNot` (opset 18): no TensorRT release imports it. Skipped for 64-bit and
    other element types.

    ## Example
    `y = BitwiseNot(x)` with `x: int32[4]` becomes `y = Sub(-1, x)`.

    ## Safety
    Safe: the same bits.

    ## Resolves
    TRT101
    """

    name = "bitwise-not-to-sub"
    summary = "replace BitwiseNot by -1 - x (2^n - 1 - x unsigned)"
    op_type = "BitwiseNot"

    def replace(self, b: Builder) -> None:
        x, bits, signed, dtype = _int32_view(b, b.node.input[0])
        top = -1 if signed else (1 << bits) - 1
        _back(b, b.op("Sub", [b.const(top, TensorProto.INT32, "all_ones"), x]), dtype, b.node.output[0])


class BitShiftToArithmetic(Substitution):
    """Replace `BitShift` on UINT8/UINT16 by INT32 multiplication, division and modulo.

    ## What it does
    `BitShift<direction="LEFT">(x, s)` is `(x * 2^s) mod 2^width`, `RIGHT` is `floor(x / 2^s)`.
    Both are computed in INT32 with `2^s` looked up in a constant table (`Gather` at `min(s,
    width)`, where a shift by the whole width or more gives 0), and cast back.

    ## When it applies
    TRT101 on `BitShift`: no TensorRT release imports it. BitShift is defined on unsigned types
    only; UINT32 and UINT64 are skipped (TensorRT cannot hold them and INT32 cannot compute them).

    ## Example
    `y = BitShift<direction="LEFT">(x, s)` with `x, s: uint8[4]` becomes
    `y = Cast<to=UINT8>(Mod(Mul(Cast<to=INT32>(x), Gather([1, 2, ..., 128, 0], Min(s, 8))), 256))`.

    ## Safety
    Safe: the same integers.

    ## Resolves
    TRT101
    """

    name = "bit-shift-to-arithmetic"
    summary = "replace BitShift on UINT8/UINT16 by INT32 Mul/Div/Mod"
    op_type = "BitShift"

    def replace(self, b: Builder) -> None:
        dtype = b.dtype(b.node.input[0])
        if dtype not in (TensorProto.UINT8, TensorProto.UINT16):
            raise Skip("only UINT8 and UINT16 shifts are computed in INT32")
        bits = 8 if dtype == TensorProto.UINT8 else 16
        x = b.cast(b.node.input[0], TensorProto.INT32)
        shift = b.cast(b.node.input[1], TensorProto.INT32)
        width = b.const(bits, TensorProto.INT32, "width")
        s = b.op("Where", [b.op("Less", [shift, width]), shift, width])  # Min takes INT32 only from opset 12
        direction = b.attr("direction", b"")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        if direction == "LEFT":
            table = np.array([1 << k for k in range(bits)] + [0], dtype=np.int32)
            factor = b.op("Gather", [b.const(table, TensorProto.INT32, "powers"), s], axis=0)
            y = b.op("Mod", [b.mul(x, factor), b.const(1 << bits, TensorProto.INT32, "modulus")])
        elif direction == "RIGHT":
            table = np.array([1 << k for k in range(bits + 1)], dtype=np.int32)
            y = b.op("Div", [x, b.op("Gather", [b.const(table, TensorProto.INT32, "powers"), s], axis=0)])
        else:
            raise Skip(f"unknown direction {direction!r}")
        b.cast(y, dtype, b.node.output[0])


REWRITES = (
    BitShiftToArithmetic,
    BitwiseAndToArithmetic,
    BitwiseNotToSub,
    BitwiseOrToArithmetic,
    BitwiseXorToArithmetic,
)
