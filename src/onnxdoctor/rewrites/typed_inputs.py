"""Exact equivalents for ops whose importer rejects an input type (TRT116): integer MatMul, an
integer exponent of Pow, integer Relu, Abs of an unsigned value."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto

from ..findings import Applicability
from ..rule_fixes import INTEGER_MATMUL_UNROLL_MAX_K
from .substitutions._build import Builder, Skip, Substitution

_INTS = (TensorProto.INT32, TensorProto.INT64)
_UNSIGNED = (TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64)
_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)


class _TypedInput(Substitution):
    applicability = Applicability.SAFE
    resolves = ("TRT116",)


def _type_name(t: int) -> str:
    return TensorProto.DataType.Name(t)


class IntegerMatMulToMulReduceSum(_TypedInput):
    """Replace an integer `MatMul` by `Mul` and `ReduceSum` in the same integer type.

    ## What it does
    `MatMul(a, b)` with `a: [..., M, K]`, `b: [..., K, N]` of INT32/INT64 becomes
    `ReduceSum(Mul(Unsqueeze(a, -1), Unsqueeze(b, -3)), axes=[-2], keepdims=0)`: the products of
    every row of `a` with every column of `b`, summed over `K`, in the integers themselves. On
    releases whose `ReduceSum` is float only (8.6, 9.x) and a static `K` up to 64, the sum is
    unrolled instead: `Mul(Slice(a, column k), Slice(b, row k))` for each k, added up.

    ## When it applies
    TRT116 on an integer `MatMul` (no release's importer multiplies integer matrices). Needs both
    inputs of rank >= 2, the release's `Mul` (and `ReduceSum`, or `Add` and `Slice` for the unrolled
    form with K <= 64) to take the type, and at most 16M elements in the product tensor when its
    size is known.

    ## Example
    `y = MatMul(a, b)` with `a: int32[2,3]`, `b: int32[3,4]` becomes
    `y = ReduceSum<keepdims=0>(Mul(Unsqueeze(a, [2]), Unsqueeze(b, [0])), [1])` (10.0 and later), or
    `y = a[:, 0:1] * b[0:1, :] + a[:, 1:2] * b[1:2, :] + a[:, 2:3] * b[2:3, :]` (8.6, 9.x).

    ## Safety
    Safe: integer products and sums are exact. Where a sum leaves the type's range, the unrolled
    form wraps around as `MatMul` does in ONNX Runtime, but ONNX Runtime's INT32 `ReduceSum`
    saturates instead, so the `ReduceSum` form equals `MatMul` only for results within the range.

    ## Resolves
    TRT116
    """

    name = "integer-matmul-to-mul-reduce-sum"
    summary = "replace integer MatMul by Mul + ReduceSum in the integer type"
    op_type = "MatMul"
    pattern = "integer MatMul"

    def replace(self, b: Builder) -> None:
        a, w = b.node.input[0], b.node.input[1]
        t = b.dtype(a, w)
        if t not in _INTS:
            raise Skip(f"its inputs are {_type_name(t) if t else 'of unknown type'}, not integers")
        name = "INT32" if t == TensorProto.INT32 or b.ctx.target.release.int64 == "cast" else "INT64"
        ops = b.ctx.target.release.ops
        version = b.ctx.target.release.version
        if name not in ops.get("Mul", ()):
            raise Skip(f"TensorRT {version}'s Mul does not take {name}")
        sa, sw = b.shape(a), b.shape(w)
        if sa is None or sw is None or len(sa) < 2 or len(sw) < 2:
            raise Skip("needs both inputs of known rank >= 2")
        if name not in ops.get("ReduceSum", ()):
            k = sa[-1] or sw[-2]
            if name not in ops.get("Add", ()) or name not in ops.get("Slice", ()):
                raise Skip(f"TensorRT {version}'s ReduceSum, Add or Slice does not take {name}")
            if not k or k > INTEGER_MATMUL_UNROLL_MAX_K:
                raise Skip(f"TensorRT {version}'s ReduceSum does not take {name}, and K is "
                           + (f"{k}, above {INTEGER_MATMUL_UNROLL_MAX_K} (the sum is unrolled)" if k else "not static"))
            self._unrolled(b, a, w, k, len(sa), len(sw))
            return
        if all(sa) and all(sw):
            m, k, n = sa[-2], sa[-1], sw[-1]
            batch = int(np.prod(sa[:-2] or [1])) * int(np.prod(sw[:-2] or [1]))
            if m * k * n * batch > 16 * 2**20:
                raise Skip("the product tensor would exceed 16M elements")
        lhs = b.op("Unsqueeze", [a, b.ints([-1])]) if b.opset >= 13 else b.op("Unsqueeze", [a], axes=[len(sa)])
        rhs = b.op("Unsqueeze", [w, b.ints([-3])]) if b.opset >= 13 else b.op("Unsqueeze", [w], axes=[len(sw) - 2])
        b.reduce("ReduceSum", b.mul(lhs, rhs), [-2], keepdims=0, out=b.node.output[0])

    @staticmethod
    def _unrolled(b: Builder, a: str, w: str, k: int, ra: int, rw: int) -> None:
        """sum over j < k of a[..., :, j:j+1] * w[..., j:j+1, :] (broadcast like MatMul's batch axes)."""
        total = None
        for j in range(k):
            col = b.slice(a, [j], [j + 1], [ra - 1])
            row = b.slice(w, [j], [j + 1], [rw - 2])
            term = b.mul(col, row, b.node.output[0] if k == 1 else None)
            total = term if total is None else b.add(total, term, b.node.output[0] if j == k - 1 else None)


class PowExponentToFloat(_TypedInput):
    """Cast an integer exponent of `Pow` to the base's floating-point type.

    ## What it does
    `Pow(x, n)` with a floating-point base and an INT32/INT64 exponent becomes
    `Pow(x, Cast(n, type of x))`.

    ## When it applies
    TRT116 on `Pow` with an integer exponent and a floating-point base (the importers before 10.8
    reject integer operands of elementwise layers). Not for an integer base.

    ## Example
    `y = Pow(a, b)` with `a: float[4]`, `b: int32[4]` becomes `y = Pow(a, Cast<to=FLOAT>(b))`.

    ## Safety
    Safe: the exponent's integer values are exact in the float type (up to 2^24), and Pow of a float
    base is computed in that type either way.

    ## Resolves
    TRT116
    """

    name = "pow-exponent-to-float"
    summary = "cast an integer Pow exponent to the base's float type"
    op_type = "Pow"
    pattern = "Pow with a float base and an integer exponent"

    def replace(self, b: Builder) -> None:
        x, n = b.node.input[0], b.node.input[1]
        bt, et = b.dtype(x), b.dtype(n)
        if bt not in _FLOATS:
            raise Skip("the base is not floating-point")
        if et not in _INTS:
            raise Skip("the exponent is not an integer")
        b.op("Pow", [x, b.cast(n, bt)], b.node.output[0])


class IntReluToMax(_TypedInput):
    """Replace `Relu` of an integer tensor by `Max(x, 0)`.

    ## What it does
    `Relu(x)` with `x` INT32/INT64 becomes `Max(x, 0)`.

    ## When it applies
    TRT116 on `Relu` with an integer input (the activation importers take floats only).

    ## Example
    `y = Relu(a)` with `a: int32[4]` becomes `y = Max(a, 0)`.

    ## Safety
    Safe: the definition of Relu.

    ## Resolves
    TRT116
    """

    name = "int-relu-to-max"
    summary = "replace integer Relu by Max(x, 0)"
    op_type = "Relu"
    pattern = "Relu of an integer tensor"

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        t = b.dtype(x)
        if t not in _INTS:
            raise Skip("its input is not INT32/INT64")
        b.op("Max", [x, b.const(0, t, "zero")], b.node.output[0])


class AbsUnsignedToIdentity(_TypedInput):
    """Replace `Abs` of an unsigned tensor by `Identity`.

    ## What it does
    `Abs(x)` with `x` UINT8/UINT16/UINT32/UINT64 is `x` itself.

    ## When it applies
    TRT116 on `Abs` of a UINT8 input (the importer rejects UINT8 and BOOL).

    ## Example
    `y = Abs(a)` with `a: uint8[4]` becomes `y = Identity(a)`.

    ## Safety
    Safe: an unsigned value is its own absolute value.

    ## Resolves
    TRT116
    """

    name = "abs-unsigned-to-identity"
    summary = "replace Abs of an unsigned tensor by Identity"
    op_type = "Abs"
    pattern = "Abs of an unsigned tensor"

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        if b.dtype(x) not in _UNSIGNED:
            raise Skip("its input is not unsigned")
        b.op("Identity", [x], b.node.output[0])


class ResizeNearestViaFloat(_TypedInput):
    """Run a nearest-neighbour `Resize` of a small integer tensor in FLOAT.

    ## What it does
    `Resize<mode="nearest">(x, ...)` with `x` UINT8/INT8/UINT16/INT16 becomes
    `Cast(Resize(Cast(x, FLOAT), ...), type of x)`: nearest-neighbour resizing only copies values,
    and these types are exact in FLOAT.

    ## When it applies
    TRT116 on `Resize` of a UINT8 input (the importer rejects UINT8 and BOOL), nearest mode only.

    ## Example
    `y = Resize<mode="nearest">(img, , s)` with `img: uint8[1,3,4,4]` becomes
    `y = Cast<to=UINT8>(Resize<mode="nearest">(Cast<to=FLOAT>(img), , s))`.

    ## Safety
    Safe: the same values copied to the same places.

    ## Resolves
    TRT116
    """

    name = "resize-nearest-via-float"
    summary = "run a nearest Resize of a small integer tensor in FLOAT"
    op_type = "Resize"
    pattern = "nearest Resize of a small integer tensor"

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        t = b.dtype(x)
        if t not in (TensorProto.UINT8, TensorProto.INT8, TensorProto.UINT16, TensorProto.INT16):
            raise Skip("its input is not an 8- or 16-bit integer")
        mode = b.attr("mode", "nearest")
        if (mode.decode() if isinstance(mode, bytes) else mode) != "nearest":
            raise Skip("only nearest-neighbour Resize copies values")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in b.node.attribute}
        y = b.op("Resize", [b.cast(x, TensorProto.FLOAT), *b.node.input[1:]], **attrs)
        b.cast(y, t, b.node.output[0])


REWRITES = (IntegerMatMulToMulReduceSum, PowExponentToFloat, IntReluToMax, AbsUnsignedToIdentity, ResizeNearestViaFloat)
