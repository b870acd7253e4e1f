"""Substitutions for standard ONNX ops that some TensorRT releases cannot import (TRT101)."""

from __future__ import annotations

import math

from onnx import TensorProto

from ._build import Builder, Skip, Substitution


class HardmaxToArgmaxOnehot(Substitution):
    """Replace `Hardmax` by `ArgMax` + `OneHot`.

    ## What it does
    `Hardmax(x, axis)` becomes `OneHot(ArgMax(x, axis, keepdims=0), depth=D, values=[0, 1], axis)`
    where D is the (static) size of the axis. Before opset 13 Hardmax works on the input flattened
    to 2D at `axis`, so the rewrite flattens, takes ArgMax/OneHot over the second dimension and
    reshapes back.

    When the axis dimension (before opset 13: the product of the dimensions from `axis` on) is not
    static — OneHot's depth must be a build-time constant — it marks the first maximum instead:
    `eq = Equal(x, ReduceMax(x, axis)); y = Cast(And(eq, Equal(CumSum(Cast(eq), axis), 1)))`.

    ## When it applies
    TRT101 on `Hardmax`: TensorRT 8.6 to 9.1 have no importer (added in 9.2); TRT126 on `Hardmax`
    whose axis dimension is dynamic (the importer needs it static). Skipped before opset 11 when the
    axis dimension is dynamic (`CumSum`).

    ## Example
    `y = Hardmax<axis=1>(x)` with `x: float[2,5]` becomes
    `i = ArgMax<axis=1, keepdims=0>(x); y = OneHot<axis=1>(i, 5, [0., 1.])`.

    ## Safety
    Safe: ArgMax selects the first maximum, as Hardmax does (and so does the CumSum form); the
    result is exactly equal.

    ## Resolves
    TRT101, TRT126
    """

    name = "hardmax-to-argmax-onehot"
    summary = "replace Hardmax by ArgMax + OneHot"
    op_type = "Hardmax"
    resolves = ("TRT101", "TRT126")

    def replace(self, b: Builder) -> None:
        x, y = b.node.input[0], b.node.output[0]
        if b.opset < 9:
            raise Skip("OneHot needs opset 9")
        shape = b.shape(x)
        if shape is None:
            raise Skip("the input's shape is unknown, so the axis dimension (OneHot depth) is not static")
        rank = len(shape)
        dtype = b.float_type(x)
        if b.opset >= 13:
            axis = b.attr("axis", -1)
            depth = shape[axis % rank] if rank else None
            if not depth:
                if b.opset < 11:
                    raise Skip(f"axis {axis} has a dynamic dimension; OneHot needs a constant depth and CumSum opset 11")
                _first_max(b, x, axis % rank, dtype, y)
                return
            idx = b.op("ArgMax", [x], axis=axis, keepdims=0)
            b.op("OneHot", [idx, b.const(depth, TensorProto.INT64, "depth"), b.const([0, 1], dtype, "values")], y, axis=axis)
            return
        axis = b.attr("axis", 1) % max(rank, 1)
        tail = shape[axis:]
        if any(not d for d in tail):
            if b.opset < 11:
                raise Skip(f"dimensions from axis {axis} on are not all static; OneHot needs a constant depth and CumSum opset 11")
            flat = b.op("Flatten", [x], axis=axis)
            hot = _first_max(b, flat, 1, dtype, None)
            b.op("Reshape", [hot, b.op("Shape", [x])], y)
            return
        depth = math.prod(tail)
        flat = b.op("Flatten", [x], axis=axis)
        idx = b.op("ArgMax", [flat], axis=1, keepdims=0)
        hot = b.op("OneHot", [idx, b.const(depth, TensorProto.INT64, "depth"), b.const([0, 1], dtype, "values")], axis=-1)
        b.op("Reshape", [hot, b.op("Shape", [x])], y)


def _first_max(b: Builder, x: str, axis: int, dtype: int, out: str | None) -> str:
    """1 at the first maximum along `axis`, 0 elsewhere (Hardmax), without a static axis size."""
    eq = b.op("Equal", [x, b.reduce("ReduceMax", x, [axis])])
    counts = b.op("CumSum", [b.cast(eq, TensorProto.FLOAT), b.const(axis, TensorProto.INT64, "axis")])
    first = b.op("And", [eq, b.op("Equal", [counts, b.const(1.0, TensorProto.FLOAT, "one")])])
    return b.cast(first, dtype, out)


class CastlikeToCast(Substitution):
    """Replace `CastLike` by `Cast` to the target input's element type.

    ## What it does
    `CastLike(x, like)` becomes `Cast(x, to=<element type of like>)`; `saturate` is kept (opset 19+).

    ## When it applies
    TRT101 on `CastLike`: TensorRT 8.6 and 9.0 have no importer (added in 9.1). Skipped when the
    element type of the second input is unknown.

    ## Example
    `y = CastLike(x, f)` with `f: float16[1]` becomes `y = Cast<to=10>(x)`.

    ## Safety
    Safe: CastLike is defined as Cast to the other input's type.

    ## Resolves
    TRT101
    """

    name = "castlike-to-cast"
    summary = "replace CastLike by Cast to the known target type"
    op_type = "CastLike"

    def replace(self, b: Builder) -> None:
        to = b.dtype(b.input(1))
        if to is None:
            raise Skip("the element type of the 'target_type' input is unknown")
        saturate = b.attr("saturate") if b.opset >= 19 else None
        b.cast(b.node.input[0], to, b.node.output[0], saturate=saturate)


class GeluToErf(Substitution):
    """Replace `Gelu` by its elementwise definition (Erf form, or Tanh form for approximate="tanh").

    ## What it does
    `Gelu(x)` becomes `0.5 * x * (1 + Erf(x / sqrt(2)))`; with `approximate="tanh"` it becomes
    `0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`, the op's own definition.

    ## When it applies
    TRT101 on `Gelu` (opset 20): TensorRT 8.6 to 9.3 have no importer (added in 10.0).

    ## Example
    `y = Gelu(x)` becomes `Mul(Mul(x, 0.5), Add(Erf(Mul(x, 0.70710677)), 1))`.

    ## Safety
    Safe: the ONNX definition of Gelu, evaluated in the input's precision.

    ## Resolves
    TRT101
    """

    name = "gelu-to-erf"
    summary = "replace Gelu by its Erf (or Tanh) elementwise form"
    op_type = "Gelu"

    def replace(self, b: Builder) -> None:
        x, y = b.node.input[0], b.node.output[0]
        dtype = b.float_type(x)
        approximate = b.attr("approximate", b"none")
        approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
        if approximate == "tanh":
            b.gelu_tanh(x, dtype, y)
        elif approximate == "none":
            b.gelu_erf(x, dtype, y)
        else:
            raise Skip(f"unknown approximate={approximate!r}")


class MishToSoftplusTanh(Substitution):
    """Replace `Mish` by `x * Tanh(Softplus(x))`.

    ## What it does
    `Mish(x)` becomes `Mul(x, Tanh(Softplus(x)))`, the op's definition.

    ## When it applies
    TRT101 on `Mish` (opset 18): TensorRT 8.6 to 9.3 have no importer (added in 10.0).

    ## Example
    `y = Mish(x)` becomes `y = Mul(x, Tanh(Softplus(x)))`.

    ## Safety
    Safe: the ONNX definition of Mish.

    ## Resolves
    TRT101
    """

    name = "mish-to-softplus-tanh"
    summary = "replace Mish by x * Tanh(Softplus(x))"
    op_type = "Mish"

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        b.float_type(x)
        b.mul(x, b.op("Tanh", [b.op("Softplus", [x])]), b.node.output[0])


class SwishToSigmoidMul(Substitution):
    """Replace `Swish` by `x * Sigmoid(alpha * x)`.

    ## What it does
    `Swish(x, alpha)` becomes `Mul(x, Sigmoid(Mul(x, alpha)))` (no inner Mul when alpha is 1).

    ## When it applies
    TRT101 on `Swish` (opset 24): every TensorRT release before 11.0 lacks an importer.

    ## Example
    `y = Swish<alpha=1.5>(x)` becomes `y = Mul(x, Sigmoid(Mul(x, 1.5)))`.

    ## Safety
    Safe: the ONNX definition of Swish.

    ## Resolves
    TRT101
    """

    name = "swish-to-sigmoid-mul"
    summary = "replace Swish by x * Sigmoid(alpha * x)"
    op_type = "Swish"

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        dtype = b.float_type(x)
        alpha = float(b.attr("alpha", 1.0))
        z = x if alpha == 1.0 else b.mul(x, b.const(alpha, dtype, "alpha"))
        b.mul(x, b.op("Sigmoid", [z]), b.node.output[0])


def _norm_axes(b: Builder, x: str, axis: int) -> list[int]:
    if axis < 0:
        return list(range(axis, 0))
    rank = b.rank(x)
    if rank is None:
        raise Skip(f"axis={axis} is non-negative and the input's rank is unknown")
    return list(range(axis, rank))


class RmsNormalizationToReductions(Substitution):
    """Replace `RMSNormalization` by `ReduceMean`, `Sqrt`, `Div` and `Mul`.

    ## What it does
    `RMSNormalization(x, scale, axis, epsilon, stash_type)` becomes the op's function body:
    `x / Sqrt(ReduceMean(x * x, axes=[axis..-1]) + epsilon) * scale`, computed in FLOAT when
    `stash_type=1` and the input is not FLOAT (Cast in, Cast back).

    ## When it applies
    TRT101 on `RMSNormalization` (opset 23): TensorRT before 10.15 has no importer. Skipped when
    `axis` is non-negative and the input's rank is unknown.

    ## Example
    `y = RMSNormalization<epsilon=1e-6>(x, w)` becomes
    `y = Mul(Div(x, Sqrt(Add(ReduceMean(Mul(x, x), [-1]), 1e-6))), w)`.

    ## Safety
    Safe: the ONNX function body of RMSNormalization.

    ## Resolves
    TRT101
    """

    name = "rms-normalization-to-reductions"
    summary = "replace RMSNormalization by ReduceMean/Sqrt/Div/Mul"
    op_type = "RMSNormalization"

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        dtype = b.float_type(x)
        axes = _norm_axes(b, x, b.attr("axis", -1))
        stash = b.attr("stash_type", 1) == 1
        b.rms_norm(x, b.input(1), axes, b.attr("epsilon", 1e-5), dtype, stash, b.node.output[0])


class SimplifiedLayerNormalizationToReductions(Substitution):
    """Replace ONNX Runtime's `SimplifiedLayerNormalization` (RMS norm) by reductions.

    ## What it does
    ONNX Runtime's optimizer writes RMS normalization as `SimplifiedLayerNormalization` (registered
    by ORT in the default domain, not an ONNX op). It becomes
    `x / Sqrt(ReduceMean(x * x, axes=[axis..-1]) + epsilon) * scale`, in FLOAT when `stash_type=1`.

    ## When it applies
    TRT101 on `SimplifiedLayerNormalization`: no TensorRT release has an importer. Skipped when the
    `inv_std_var` output is used.

    ## Example
    `y = SimplifiedLayerNormalization<epsilon=1e-6>(x, w)` becomes
    `y = Mul(Div(x, Sqrt(Add(ReduceMean(Mul(x, x), [-1]), 1e-6))), w)`.

    ## Safety
    Safe: the same computation ONNX Runtime's kernel performs.

    ## Resolves
    TRT101
    """

    name = "simplified-layer-norm-to-reductions"
    summary = "replace ORT's SimplifiedLayerNormalization by ReduceMean/Sqrt/Div/Mul"
    op_type = "SimplifiedLayerNormalization"

    def replace(self, b: Builder) -> None:
        if b.output_used(1):
            raise Skip("its inv_std_var output is used")
        x = b.node.input[0]
        dtype = b.float_type(x)
        axes = _norm_axes(b, x, b.attr("axis", -1))
        stash = b.attr("stash_type", 1) == 1
        b.rms_norm(x, b.input(1), axes, b.attr("epsilon", 1e-5), dtype, stash, b.node.output[0])


class CompressToGatherNonzero(Substitution):
    """Replace `Compress` by `NonZero` + `Gather`.

    ## What it does
    `Compress(x, condition, axis)` becomes `Gather(x, Reshape(NonZero(condition), [-1]), axis)`;
    without `axis` the input is first flattened to 1-D (`Reshape(x, [-1])`), as Compress does.

    ## When it applies
    TRT101 on `Compress`: no TensorRT release has an importer.

    ## Example
    `y = Compress<axis=1>(x, c)` becomes `y = Gather<axis=1>(x, Reshape(NonZero(c), [-1]))`.

    ## Safety
    Safe: NonZero lists the selected positions in order, which is what Compress keeps.
    The output length depends on the data (a data-dependent shape, as it was before).

    ## Resolves
    TRT101
    """

    name = "compress-to-gather-nonzero"
    summary = "replace Compress by NonZero + Gather"
    op_type = "Compress"

    def replace(self, b: Builder) -> None:
        x, cond = b.node.input[0], b.node.input[1]
        idx = b.op("Reshape", [b.op("NonZero", [cond]), b.ints([-1], "flat")])
        axis = b.attr("axis")
        if axis is None:
            x = b.op("Reshape", [x, b.ints([-1], "flat")])
            axis = 0
        b.op("Gather", [x, idx], b.node.output[0], axis=axis)


class EinsumLowercaseLabels(Substitution):
    """Rename uppercase Einsum labels to unused lowercase letters.

    ## What it does
    `Einsum(equation="BIj,BjK->BIK")` becomes `Einsum(equation="abj,ajc->abc")`: every
    uppercase label is mapped to a lowercase letter the equation does not use. Labels are names,
    so the computation is unchanged.

    ## When it applies
    TRT126 on `Einsum` with uppercase labels: from TensorRT 9.1 the parser's static checker rejects
    any character other than a-z, ',', '->', '.' and spaces. Skipped when the equation uses more
    than 26 distinct labels. (Reached through TRT126 once the `Einsum.labels` constraint names this
    rewrite as its fix.)

    ## Example
    `y = Einsum<equation="BHQD,BHKD->BHQK">(q, k)` becomes
    `y = Einsum<equation="abcd,abed->abce">(q, k)`.

    ## Safety
    Safe: a consistent renaming of labels.

    ## Resolves
    TRT126
    """

    name = "einsum-lowercase-labels"
    summary = "rename uppercase Einsum labels to unused lowercase letters"
    op_type = "Einsum"
    resolves = ("TRT126",)

    def replace(self, b: Builder) -> None:
        eq = b.attr("equation", b"")
        eq = eq.decode() if isinstance(eq, bytes) else eq
        upper = list(dict.fromkeys(c for c in eq if c.isupper()))  # in order of first use
        if not upper:
            raise Skip("the equation has no uppercase label")
        free = [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in eq]
        if len(upper) > len(free):
            raise Skip("more than 26 distinct labels; no lowercase relabelling exists")
        table = str.maketrans(dict(zip(upper, free)))
        b.op("Einsum", list(b.node.input), b.node.output[0], equation=eq.translate(table))


REWRITES = (
    HardmaxToArgmaxOnehot,
    CastlikeToCast,
    GeluToErf,
    MishToSoftplusTanh,
    SwishToSigmoidMul,
    RmsNormalizationToReductions,
    SimplifiedLayerNormalizationToReductions,
    CompressToGatherNonzero,
    EinsumLowercaseLabels,
)
