"""Exact decompositions of standard ops in configurations an importer rejects (constraint findings:
TRT121 attribute values, TRT123 optional outputs, TRT126 node configurations): the same
computation written with ops and attributes every release from 8.6 imports."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..findings import Applicability
from .substitutions._build import Builder, Skip, Substitution

_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)


def _str(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _channel(b: Builder, name: str, rank: int, suffix: str) -> str:
    """`name` (a [C] tensor) shaped [C, 1, ..., 1] to broadcast over the channel axis of a rank-`rank` tensor."""
    shape = [-1] + [1] * (rank - 2)
    value = b.value(name)
    if value is not None:
        return b.tensor(value.reshape(shape), f"{b.base}/{suffix}")
    return b.op("Reshape", [name, b.ints(shape, "channel_shape")])


class _Decomposition(Substitution):
    applicability = Applicability.SAFE


class BatchNormTrainingToReductions(_Decomposition):
    """Replace `BatchNormalization` in training mode by the batch statistics it computes.

    ## What it does
    `BatchNormalization<training_mode=1>(X, scale, B, input_mean, input_var)` normalizes with the
    statistics of the batch itself. It becomes `mean = ReduceMean(X, [0, 2, ...])`,
    `var = ReduceMean((X - mean)^2, [0, 2, ...])`, `Y = (X - mean) / Sqrt(var + epsilon) * scale + B`;
    the `running_mean` / `running_var` outputs, when something reads them, become
    `input_mean * momentum + mean * (1 - momentum)` (and the same for the variance), as the
    operator defines them.

    If the model was exported in training mode by mistake (`model.train()` at export), this keeps
    what the graph computes; re-export with `model.eval()` to get inference-mode normalization
    with the running statistics instead.

    ## When it applies
    TRT121 on `BatchNormalization` with `training_mode=1` (no release imports it) and TRT123 on its
    `running_mean` / `running_var` outputs. Skipped when the input's rank is unknown or the
    statistics inputs have another element type than X.

    ## Example
    `Y, rm, rv = BatchNormalization<training_mode=1>(X, s, b, m, v)` with only `Y` read becomes
    `mu = ReduceMean(X, [0,2,3]); d = Sub(X, mu); Y = Add(Mul(Div(d, Sqrt(Add(ReduceMean(Mul(d, d), [0,2,3]), 1e-5))), s'), b')`.

    ## Safety
    Safe: the operator's definition (biased batch variance, as ONNX Runtime computes it).

    ## Resolves
    TRT121, TRT123
    """

    name = "batch-norm-training-to-reductions"
    summary = "replace training-mode BatchNormalization by its batch-statistics computation"
    op_type = "BatchNormalization"
    pattern = "BatchNormalization with training_mode=1"
    resolves = ("TRT121", "TRT123")

    def matches(self, node: onnx.NodeProto) -> bool:
        return super().matches(node) and any(a.name == "training_mode" and a.i == 1 for a in node.attribute)

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        dtype = b.float_type(x)
        if any(b.dtype(i) not in (None, dtype) for i in b.node.input[1:]):
            raise Skip("the scale, bias or statistics have another element type than the input")
        rank = b.rank(x)
        if rank is None or rank < 2:
            raise Skip("the input's rank is unknown")
        axes = [0] + list(range(2, rank))
        eps = float(b.attr("epsilon", 1e-5))
        momentum = float(b.attr("momentum", 0.9))
        mean = b.reduce("ReduceMean", x, axes)
        d = b.op("Sub", [x, mean])
        var = b.reduce("ReduceMean", b.mul(d, d), axes)
        norm = b.op("Div", [d, b.op("Sqrt", [b.add(var, b.const(eps, dtype, "epsilon"))])])
        scaled = b.mul(norm, _channel(b, b.node.input[1], rank, "scale"))
        b.add(scaled, _channel(b, b.node.input[2], rank, "bias"), b.node.output[0])
        for k, stat in ((1, mean), (2, var)):
            if b.output_used(k):
                current = b.op("Reshape", [stat, b.ints([-1], "flat")])
                kept = b.mul(b.node.input[2 + k], b.const(momentum, dtype, "momentum"))
                b.add(kept, b.mul(current, b.const(1.0 - momentum, dtype, "one_minus_momentum")), b.node.output[k])


def _norm_axes(b: Builder, x: str, axis: int) -> list[int]:
    if axis < 0:
        return list(range(axis, 0))
    rank = b.rank(x)
    if rank is None:
        raise Skip(f"axis={axis} is non-negative and the input's rank is unknown")
    return list(range(axis, rank))


class LayerNormStatsToReductions(_Decomposition):
    """Compute the `Mean` and `InvStdDev` outputs of `LayerNormalization` with reductions.

    ## What it does
    TensorRT's LayerNormalization returns only `Y`. When `Mean` or `InvStdDev` is read, the node
    keeps computing `Y` and the statistics are computed beside it, in the stash type (FLOAT by
    default): `Mean = ReduceMean(X, [axis..-1])`, `InvStdDev = Reciprocal(Sqrt(ReduceMean((X -
    Mean)^2, [axis..-1]) + epsilon))`, the operator's own definition.

    ## When it applies
    TRT123 on `LayerNormalization` outputs 1 and 2 (no release imports them). Skipped when `axis`
    is non-negative and the input's rank is unknown.

    ## Example
    `y, mu, r = LayerNormalization(x, g, b)` becomes `y = LayerNormalization(x, g, b);
    mu = ReduceMean(x, [-1]); d = Sub(x, mu); r = Reciprocal(Sqrt(Add(ReduceMean(Mul(d, d), [-1]), 1e-5)))`.

    ## Safety
    Safe: the statistics the operator defines, computed in the same precision.

    ## Resolves
    TRT123
    """

    name = "layer-norm-stats-to-reductions"
    summary = "compute LayerNormalization's Mean/InvStdDev outputs with reductions"
    op_type = "LayerNormalization"
    pattern = "LayerNormalization with a Mean or InvStdDev output"
    resolves = ("TRT123",)

    def matches(self, node: onnx.NodeProto) -> bool:
        return super().matches(node) and len(node.output) > 1 and any(node.output[1:])

    def replace(self, b: Builder) -> None:
        if not (b.output_used(1) or b.output_used(2)):
            raise Skip("neither Mean nor InvStdDev is read")
        x = b.node.input[0]
        dtype = b.float_type(x)
        axis = int(b.attr("axis", -1))
        axes = _norm_axes(b, x, axis)
        eps = float(b.attr("epsilon", 1e-5))
        stash = int(b.attr("stash_type", 1))
        compute = stash if stash in _FLOATS else dtype
        attrs = {a.name: helper.get_attribute_value(a) for a in b.node.attribute}
        b.nodes.append(helper.make_node("LayerNormalization", list(b.node.input), [b.node.output[0]],
                                        name=b.info.unique(f"{b.base}/LayerNormalization"), **attrs))
        xs = b.cast(x, compute) if compute != dtype else x
        mean = b.reduce("ReduceMean", xs, axes, out=b.node.output[1] if b.output_used(1) else None)
        if b.output_used(2):
            d = b.op("Sub", [xs, mean])
            var = b.reduce("ReduceMean", b.mul(d, d), axes)
            b.op("Reciprocal", [b.op("Sqrt", [b.add(var, b.const(eps, compute, "epsilon"))])], b.node.output[2])


class GroupNormalizationToReductions(_Decomposition):
    """Replace `GroupNormalization` (opset 21, per-channel scale and bias) by reshapes and reductions.

    ## What it does
    `GroupNormalization<num_groups=G>(X, scale, bias)` becomes the operator's function body:
    X (`[N, C, ...]`) reshaped to `[N, G, -1]`, normalized over the last axis with
    `(x - mean) / Sqrt(var + epsilon)` (in FLOAT when `stash_type=1`), reshaped back, then
    multiplied by `scale` and shifted by `bias` per channel.

    ## When it applies
    TRT126 on `GroupNormalization` at opset 21 and later, which TensorRT before 10.9 rejects (its
    importer implements the opset-18 per-group scale and bias). Skipped when the input's rank is
    unknown.

    ## Example
    `y = GroupNormalization<num_groups=2>(x, s, b)` with `x: float[2,4,3,3]` becomes
    `g = Reshape(x, [0, 2, -1]); m = ReduceMean(g, [2]); d = Sub(g, m);
    n = Div(d, Sqrt(Add(ReduceMean(Mul(d, d), [2]), 1e-5)));
    y = Add(Mul(Reshape(n, Shape(x)), s'), b')`.

    ## Safety
    Safe: the ONNX function body of GroupNormalization-21.

    ## Resolves
    TRT126
    """

    name = "group-norm-to-reductions"
    summary = "replace GroupNormalization-21 by Reshape + ReduceMean normalization"
    op_type = "GroupNormalization"
    resolves = ("TRT126",)

    def replace(self, b: Builder) -> None:
        if b.opset < 21:
            raise Skip("before opset 21 the importer handles GroupNormalization")
        x = b.node.input[0]
        dtype = b.float_type(x)
        rank = b.rank(x)
        if rank is None or rank < 3:
            raise Skip("the input's rank is unknown")
        groups = int(b.attr("num_groups"))
        eps = float(b.attr("epsilon", 1e-5))
        compute = TensorProto.FLOAT if int(b.attr("stash_type", 1)) == 1 else dtype
        xs = b.cast(x, compute) if compute != dtype else x
        grouped = b.op("Reshape", [xs, b.ints([0, groups, -1], "group_shape")])
        mean = b.reduce("ReduceMean", grouped, [2])
        d = b.op("Sub", [grouped, mean])
        var = b.reduce("ReduceMean", b.mul(d, d), [2])
        norm = b.op("Div", [d, b.op("Sqrt", [b.add(var, b.const(eps, compute, "epsilon"))])])
        norm = b.op("Reshape", [norm, b.op("Shape", [x])])
        if compute != dtype:
            norm = b.cast(norm, dtype)
        scaled = b.mul(norm, _channel(b, b.node.input[1], rank, "scale"))
        b.add(scaled, _channel(b, b.node.input[2], rank, "bias"), b.node.output[0])


class InstanceNormToReductions(_Decomposition):
    """Replace `InstanceNormalization` by reductions over the spatial axes.

    ## What it does
    `InstanceNormalization(x, scale, B)` with `x: [N, C, D1, ...]` becomes the operator's
    definition: `mean = ReduceMean(x, [2..])`, `d = x - mean`,
    `y = d / Sqrt(ReduceMean(d * d, [2..]) + epsilon) * scale[c] + B[c]` (scale and B shaped
    `[C, 1, ...]`).

    ## When it applies
    8.6 and 9.x import InstanceNormalization through a plugin that needs `scale` and `B` as
    initializers and the input 3-D to 5-D: TRT122 on a `scale` or `B` computed at run time, TRT124
    on a 6-D or larger input. Needs the input's rank known; a node with constant scale and B and a
    3-D to 5-D input, which every importer takes, is left as it is.

    ## Example
    `y = InstanceNormalization(x, sc, b)` with `x: float[1,2,4,4]` and `sc` a graph input becomes
    `m = ReduceMean(x, [2, 3]); d = Sub(x, m); y = Add(Mul(Div(d, Sqrt(Add(ReduceMean(Mul(d, d), [2, 3]), 1e-5))),
    Reshape(sc, [-1, 1, 1])), b')`.

    ## Safety
    Safe: the statistics and affine map the operator defines, in the input's type (only the order
    of float additions can differ).

    ## Resolves
    TRT122, TRT124
    """

    name = "instance-norm-to-reductions"
    summary = "replace InstanceNormalization by ReduceMean normalization over the spatial axes"
    op_type = "InstanceNormalization"
    resolves = ("TRT122", "TRT124")

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        rank = b.rank(x)
        if rank is None or rank < 3:
            raise Skip("the input's rank is unknown or below 3")
        if rank <= 5 and b.value(b.node.input[1]) is not None and b.value(b.node.input[2]) is not None:
            raise Skip("scale and B are constants and the input 3-D to 5-D: every importer takes it as it is")
        eps = float(b.attr("epsilon", 1e-5))
        dtype = b.float_type(x)
        axes = list(range(2, rank))
        d = b.op("Sub", [x, b.reduce("ReduceMean", x, axes)])
        var = b.reduce("ReduceMean", b.mul(d, d), axes)
        norm = b.op("Div", [d, b.op("Sqrt", [b.add(var, b.const(eps, dtype, "epsilon"))])])
        scaled = b.mul(norm, _channel(b, b.node.input[1], rank, "scale"))
        b.add(scaled, _channel(b, b.node.input[2], rank, "bias"), b.node.output[0])


class ResizeEquivalentCoordinateMode(_Decomposition):
    """Rewrite a Resize coordinate mode TensorRT rejects to the supported mode it equals here.

    ## What it does
    - `tf_crop_and_resize` with a `roi` covering the whole input (`[0, ..., 1, ...]`) maps output
      coordinates exactly as `align_corners` does (`x_in = x_out * (in - 1) / (out - 1)`); the roi
      input is dropped.
    - `half_pixel_symmetric` (opset 19) equals `half_pixel` when every output size is exactly
      `input size * scale` (always with the `sizes` input; with `scales` when the products are
      whole numbers): its adjustment term is then 1 and its offset 0.
    - `tf_half_pixel_for_nn` with `nearest_mode="floor"` (which TensorRT rejects: it takes
      `round_prefer_floor` only) picks `floor((x + 0.5) / scale)`, the same input pixel as
      `half_pixel` with `nearest_mode="round_prefer_ceil"`: `round_prefer_ceil(v - 0.5) = floor(v)`.

    ## When it applies
    TRT121 on `Resize` `coordinate_transformation_mode`, TRT126 on `tf_half_pixel_for_nn` with
    `nearest_mode="floor"`. Skipped when the roi, scales or sizes are
    not constants, the input's shape is not static, the roi does not cover the whole input, a
    resized axis has one output element (where the two formulas differ), or the scaled size of
    an axis is fractional.

    ## Example
    `y = Resize<mode="linear", coordinate_transformation_mode="tf_crop_and_resize">(x, [0,0,0,0,1,1,1,1], [1,1,2,2])`
    becomes `y = Resize<mode="linear", coordinate_transformation_mode="align_corners">(x, , [1,1,2,2])`.

    ## Safety
    Safe: the two coordinate formulas are the same function under these conditions.

    ## Resolves
    TRT121
    """

    name = "resize-equivalent-coordinate-mode"
    summary = "rewrite tf_crop_and_resize / half_pixel_symmetric / floor tf_half_pixel_for_nn Resize to the equivalent supported mode"
    op_type = "Resize"
    pattern = "tf_crop_and_resize, half_pixel_symmetric or floor tf_half_pixel_for_nn Resize"
    resolves = ("TRT121", "TRT126")

    def matches(self, node: onnx.NodeProto) -> bool:
        if not super().matches(node):
            return False
        attrs = {a.name: a for a in node.attribute}
        mode = attrs["coordinate_transformation_mode"].s if "coordinate_transformation_mode" in attrs else b""
        return mode in (b"tf_crop_and_resize", b"half_pixel_symmetric") or (
            mode == b"tf_half_pixel_for_nn" and "nearest_mode" in attrs and attrs["nearest_mode"].s == b"floor")

    def replace(self, b: Builder) -> None:
        if b.opset < 11:
            raise Skip("Resize before opset 11 has no coordinate_transformation_mode")
        mode = _str(b.attr("coordinate_transformation_mode"))
        if mode == "tf_half_pixel_for_nn":
            # floor((x + 0.5) / s) == round_prefer_ceil((x + 0.5) / s - 0.5): half_pixel coordinates.
            attrs = {a.name: helper.get_attribute_value(a) for a in b.node.attribute}
            attrs.update(coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil")
            b.nodes.append(helper.make_node("Resize", list(b.node.input), list(b.node.output),
                                            name=b.info.unique(f"{b.base}/Resize"), **attrs))
            return
        x = b.node.input[0]
        shape = b.shape(x)
        if shape is None or any(not d for d in shape):
            raise Skip("the input's shape is not static")
        roi, scales_name, sizes_name = b.input(1), b.input(2), b.input(3)
        scales = b.value(scales_name) if scales_name else None
        sizes = b.value(sizes_name) if sizes_name else None
        axes = b.attr("axes")
        if (scales_name and scales is None) or (sizes_name and sizes is None):
            raise Skip("the scales or sizes are not constants")
        if _str(b.attr("keep_aspect_ratio_policy", "stretch")) != "stretch":
            raise Skip("keep_aspect_ratio_policy is not stretch")
        if scales is not None and scales.size == 0:
            scales = None
        if sizes is not None and sizes.size == 0:
            sizes = None
        if scales is None and sizes is None:
            raise Skip("neither scales nor sizes is given")
        rank = len(shape)
        axes = [a % rank for a in axes] if axes else list(range(rank))
        in_dims = [shape[a] for a in axes]
        if sizes is not None:
            out_dims = [int(v) for v in sizes]
            exact = True
        else:
            products = [d * float(s) for d, s in zip(in_dims, scales)]
            out_dims = [int(math.floor(p)) for p in products]
            exact = all(float(o) == p for o, p in zip(out_dims, products))
        attrs = {a.name: helper.get_attribute_value(a) for a in b.node.attribute}
        inputs = list(b.node.input)
        if mode == "half_pixel_symmetric":
            if not exact:
                raise Skip("an output size is not exactly input size * scale, so half_pixel_symmetric shifts the grid")
            attrs["coordinate_transformation_mode"] = "half_pixel"
        else:
            value = b.value(roi) if roi else None
            if value is None:
                raise Skip("the roi is not a constant")
            value = value.astype(np.float64).reshape(-1)
            if value.size != 2 * len(axes) or not (np.all(value[: len(axes)] == 0) and np.all(value[len(axes):] == 1)):
                raise Skip(f"the roi {value.tolist()} does not cover the whole input")
            if any(o == 1 and i != 1 for i, o in zip(in_dims, out_dims)):
                raise Skip("an axis is resized to one element, where tf_crop_and_resize samples the centre")
            attrs["coordinate_transformation_mode"] = "align_corners"
            attrs.pop("extrapolation_value", None)
            if b.opset >= 13:  # roi is an optional input from opset 13; align_corners ignores it
                inputs[1] = ""
        b.nodes.append(helper.make_node("Resize", inputs, list(b.node.output), name=b.info.unique(f"{b.base}/Resize"), **attrs))


class LpPoolToPowAveragePool(_Decomposition):
    """Replace `LpPool` with `p` other than 1 or 2 by `Pow`, `AveragePool` and `Pow`.

    ## What it does
    `LpPool<p>(x)` is `(sum over each window of |x|^p)^(1/p)`. It becomes
    `Pow(Mul(AveragePool<count_include_pad=1>(Pow(Abs(x), p)), window size), 1/p)` with the same
    kernel, strides and pads (padding adds zeros to the sum, which `count_include_pad=1` keeps).

    ## When it applies
    TRT121 on `LpPool` `p` (TensorRT imports p=1 and p=2 only). Skipped with `ceil_mode=1` or
    dilations other than 1.

    ## Example
    `y = LpPool<kernel_shape=[2,2], strides=[2,2], p=3>(x)` becomes
    `y = Pow(Mul(AveragePool<kernel_shape=[2,2], strides=[2,2], count_include_pad=1>(Pow(Abs(x), 3)), 4), 0.3333)`.

    ## Safety
    Safe: the definition of LpPool; the window mean times the window size is the window sum up to
    float rounding.

    ## Resolves
    TRT121
    """

    name = "lp-pool-to-pow-average-pool"
    summary = "replace LpPool with p other than 1 or 2 by Pow + AveragePool"
    op_type = "LpPool"
    pattern = "LpPool with p other than 1 or 2"
    resolves = ("TRT121",)

    def matches(self, node: onnx.NodeProto) -> bool:
        return super().matches(node) and any(a.name == "p" and a.i not in (1, 2) for a in node.attribute)

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        dtype = b.float_type(x)
        if int(b.attr("ceil_mode", 0)):
            raise Skip("ceil_mode=1: windows past the edge would be averaged over fewer elements")
        if any(d != 1 for d in (b.attr("dilations") or [])):
            raise Skip("dilations other than 1")
        p = float(b.attr("p", 2))
        kernel = list(b.attr("kernel_shape"))
        attrs = {k: b.attr(k) for k in ("kernel_shape", "strides", "pads")}
        auto_pad = b.attr("auto_pad")
        if auto_pad is not None:
            attrs["auto_pad"] = _str(auto_pad)
        powered = b.op("Pow", [b.op("Abs", [x]), b.const(p, dtype, "p")])
        mean = b.op("AveragePool", [powered], count_include_pad=1, **attrs)
        total = b.mul(mean, b.const(float(math.prod(kernel)), dtype, "window_size"))
        b.op("Pow", [total, b.const(1.0 / p, dtype, "inv_p")], b.node.output[0])


class EinsumExplicitForm(_Decomposition):
    """Rewrite an Einsum with an ellipsis, a diagonal or broadcasting into the plain form every release imports.

    ## What it does
    - An ellipsis (`...`) becomes fresh lowercase labels, as many as the dimensions it stands for
      in each operand (right-aligned, as Einsum broadcasts them); an implicit output (no `->`) is
      written out (ellipsis labels, then the labels used once, in order).
    - A label repeated within one operand (a diagonal, `ii->i`) is taken out before the Einsum:
      the two axes are moved last, merged with `Reshape` and the diagonal picked with `Gather`
      (indices `k * (n + 1)`), leaving the label once.
    - A label of size 1 in one operand and N in another (broadcasting) is expanded to N with
      `Expand` first.

    ## When it applies
    TRT126 on `Einsum`: TensorRT 8.6 rejects ellipses, releases before 10.12 reject diagonals and
    broadcasting. Skipped when an operand's rank (for an ellipsis) or a diagonal's size is unknown,
    or a label appears three times in one operand.

    ## Example
    `y = Einsum<equation="...ij,...jk->...ik">(a, b)` with 3-D operands becomes
    `y = Einsum<equation="aij,ajk->aik">(a, b)`; `y = Einsum<equation="ii->i">(x)` with
    `x: float[3,3]` becomes `y = Einsum<equation="i->i">(Gather<axis=-1>(Reshape(x, [9]), [0, 4, 8]))`.

    ## Safety
    Safe: relabelling, copying the diagonal out and expanding size-1 dimensions do not change
    any value.

    ## Resolves
    TRT126
    """

    name = "einsum-explicit-form"
    summary = "rewrite Einsum ellipses, diagonals and broadcasting into plain Einsum + Gather/Expand"
    op_type = "Einsum"
    resolves = ("TRT126",)

    def replace(self, b: Builder) -> None:
        eq = _str(b.attr("equation", "")).replace(" ", "")
        lhs, arrow, rhs = eq.partition("->")
        terms = lhs.split(",")
        inputs = list(b.node.input)
        if len(terms) != len(inputs):
            raise Skip("the equation does not have one term per input")
        used = set(eq)
        fresh = [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in used]
        changed = False
        # 1. The ellipsis, as explicit labels.
        if "..." in eq:
            ranks = [b.rank(x) for x in inputs]
            if any(r is None for r, t in zip(ranks, terms) if "..." in t):
                raise Skip("an operand with an ellipsis has an unknown rank")
            counts = [r - len(t.replace("...", "")) if "..." in t else 0 for r, t in zip(ranks, terms)]
            width = max(counts)
            if width > len(fresh):
                raise Skip("not enough unused lowercase letters for the ellipsis")
            ell = "".join(fresh[:width])
            fresh = fresh[width:]
            terms = [t.replace("...", ell[width - k:]) for t, k in zip(terms, counts)]
            if arrow:
                rhs = rhs.replace("...", ell)
            changed = True
        if not arrow:
            letters = "".join(terms)
            ell = ell if "..." in eq else ""
            rhs = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ell))
            changed = True
        # 2. Diagonals, taken out with Gather.
        for k, term in enumerate(terms):
            while len(set(term)) != len(term):
                repeated = next(c for c in term if term.count(c) > 1)
                if term.count(repeated) > 2:
                    raise Skip(f"label {repeated!r} appears more than twice in one operand")
                p, q = [i for i, c in enumerate(term) if c == repeated]
                shape = b.shape(inputs[k])
                n = shape[p] if shape is not None and len(shape) == len(term) else None
                if not n or shape[q] != n:
                    raise Skip(f"the size of the diagonal of label {repeated!r} is unknown")
                rank = len(term)
                perm = [i for i in range(rank) if i not in (p, q)] + [p, q]
                moved = b.op("Transpose", [inputs[k]], perm=perm)
                merged = b.op("Reshape", [moved, b.ints([0] * (rank - 2) + [n * n], "diagonal_shape")])
                inputs[k] = b.op("Gather", [merged, b.ints([i * (n + 1) for i in range(n)], "diagonal")], axis=-1)
                rest = [term[i] for i in range(rank) if i not in (p, q)]
                term = "".join(rest) + repeated
                terms[k] = term
                sizes = list(shape)
                b.info.shapes[inputs[k]] = [sizes[i] for i in range(rank) if i not in (p, q)] + [n]
                changed = True
        # 3. Size-1 labels expanded to the size they broadcast to.
        sizes: dict[str, set[int]] = {}
        for term, x in zip(terms, inputs):
            shape = b.shape(x)
            if shape is not None and len(shape) == len(term):
                for c, d in zip(term, shape):
                    if d:
                        sizes.setdefault(c, set()).add(d)
        for c, found in sizes.items():
            big = found - {1}
            if 1 not in found or not big:
                continue
            if len(big) > 1:
                raise Skip(f"label {c!r} has sizes {sorted(found)}")
            n = big.pop()
            for k, (term, x) in enumerate(zip(terms, inputs)):
                shape = b.shape(x)
                if c in term and shape is not None and shape[term.index(c)] == 1:
                    target = [1] * len(term)
                    target[term.index(c)] = n
                    inputs[k] = b.op("Expand", [x, b.ints(target, "broadcast_shape")])
                    b.info.shapes[inputs[k]] = [n if i == term.index(c) else d for i, d in enumerate(shape)]
                    changed = True
        if not changed:
            raise Skip("the equation has no ellipsis, diagonal or broadcasting")
        b.op("Einsum", inputs, b.node.output[0], equation=",".join(terms) + "->" + rhs)


# Activations whose ONNX Runtime kernels read activation_alpha / activation_beta (in the order of
# the activations list), for splitting the lists of a bidirectional RNN by direction.
_ALPHA = {"affine", "leakyrelu", "thresholdedrelu", "scaledtanh", "hardsigmoid", "elu"}
_BETA = {"affine", "scaledtanh", "hardsigmoid"}
_ACTIVATIONS_PER_DIRECTION = {"RNN": 1, "GRU": 2, "LSTM": 3}
# Inputs with a num_directions axis (axis 0; initial states: axis 1 with layout=1), per op.
_DIRECTIONAL_INPUTS = {"RNN": (1, 2, 3, 5), "GRU": (1, 2, 3, 5), "LSTM": (1, 2, 3, 5, 6, 7)}


class _SplitBidirectional(_Decomposition):
    """Shared by the RNN, GRU and LSTM splits."""

    resolves = ("TRT126",)

    @property
    def pattern(self) -> str:
        return f"bidirectional {self.op_type}"

    def matches(self, node: onnx.NodeProto) -> bool:
        return super().matches(node) and any(a.name == "direction" and a.s == b"bidirectional" for a in node.attribute)

    def replace(self, b: Builder) -> None:
        op = self.op_type
        n = _ACTIVATIONS_PER_DIRECTION[op]
        acts = [_str(a) for a in (b.attr("activations") or [])]
        if len(acts) != 2 * n:
            raise Skip("the activations are the defaults, the same in both directions")
        if [a.lower() for a in acts[:n]] == [a.lower() for a in acts[n:]] and not (b.attr("activation_alpha") or b.attr("activation_beta")):
            raise Skip("both directions use the same activations")
        alphas = list(b.attr("activation_alpha") or [])
        betas = list(b.attr("activation_beta") or [])
        lowered = [a.lower() for a in acts]
        unknown = [a for a in acts if a.lower() not in _ALPHA | {"relu", "tanh", "sigmoid", "softsign", "softplus"}]
        if unknown:
            raise Skip(f"activation {unknown[0]!r} is not one this rewrite knows")
        fa = sum(1 for a in lowered[:n] if a in _ALPHA)
        fb = sum(1 for a in lowered[:n] if a in _BETA)
        layout = int(b.attr("layout", 0))
        common = {a.name: helper.get_attribute_value(a) for a in b.node.attribute
                  if a.name not in ("direction", "activations", "activation_alpha", "activation_beta")}
        common = {k: _str(v) for k, v in common.items()}
        outs = list(b.node.output) + [""] * (3 - len(b.node.output))
        results: list[list[str]] = [[], []]
        for d, direction in enumerate(("forward", "reverse")):
            inputs = list(b.node.input)
            for i in _DIRECTIONAL_INPUTS[op]:
                if i < len(inputs) and inputs[i]:
                    axis = 1 if (layout and i in (5, 6)) else 0
                    inputs[i] = self._direction(b, inputs[i], d, axis)
            attrs = dict(common, direction=direction, activations=acts[d * n:(d + 1) * n])
            a_part = alphas[:fa] if d == 0 else alphas[fa:]
            b_part = betas[:fb] if d == 0 else betas[fb:]
            if a_part:
                attrs["activation_alpha"] = a_part
            if b_part:
                attrs["activation_beta"] = b_part
            count = 3 if op == "LSTM" else 2
            used = [b.output_used(k) for k in range(count)]
            names = [b.info.unique(f"{b.base}/{direction}_output_{k}") if used[k] else "" for k in range(count)]
            while names and not names[-1]:
                names.pop()
            b.nodes.append(helper.make_node(op, inputs, names, name=b.info.unique(f"{b.base}/{op}_{direction}"), **attrs))
            results[d] = names + [""] * (count - len(names))
        # Y: [seq, dirs, batch, hidden] (layout 1: [batch, seq, dirs, hidden]); Y_h, Y_c:
        # [dirs, batch, hidden] (layout 1: [batch, dirs, hidden]).
        for k, out in enumerate(outs[: 3 if op == "LSTM" else 2]):
            if out and b.output_used(k):
                axis = (2 if layout else 1) if k == 0 else (1 if layout else 0)
                b.op("Concat", [results[0][k], results[1][k]], out, axis=axis)

    def _direction(self, b: Builder, name: str, d: int, axis: int) -> str:
        value = b.value(name)
        if value is not None:
            return b.tensor(np.take(value, [d], axis=axis), f"{b.base}/{'forward' if d == 0 else 'reverse'}_{name}")
        if b.opset < 10:
            raise Skip("a per-direction input is computed at run time and Slice needs opset 10 to take it apart")
        return b.slice(name, [d], [d + 1], [axis])


class RnnBidirectionalSplit(_SplitBidirectional):
    """Split a bidirectional `RNN` whose directions use different activations into two RNNs.

    ## What it does
    TensorRT's importer uses one set of activations for both directions. A bidirectional `RNN`
    with different forward and reverse activations becomes a `forward` and a `reverse` RNN, each
    with its own activations (and their alpha/beta values), weights, biases and initial state taken
    from the direction's slice, and their outputs joined with `Concat` on the direction axis.

    ## When it applies
    TRT126 on `RNN` with `direction="bidirectional"` and activations that differ per direction.

    ## Example
    `Y = RNN<direction="bidirectional", activations=["Tanh","Relu"]>(X, W, R)` becomes
    `Yf = RNN<direction="forward", activations=["Tanh"]>(X, W[0:1], R[0:1]);
    Yr = RNN<direction="reverse", activations=["Relu"]>(X, W[1:2], R[1:2]); Y = Concat<axis=1>(Yf, Yr)`.

    ## Safety
    Safe: a bidirectional RNN is defined as the two directions computed independently.

    ## Resolves
    TRT126
    """

    name = "rnn-bidirectional-split"
    summary = "split a bidirectional RNN with per-direction activations into two RNNs"
    op_type = "RNN"


class GruBidirectionalSplit(_SplitBidirectional):
    """Split a bidirectional `GRU` whose directions use different activations into two GRUs.

    ## What it does
    As `rnn-bidirectional-split`, for `GRU`: a `forward` and a `reverse` GRU with their own
    activations, weights, biases and initial state, outputs joined with `Concat` on the direction
    axis. `linear_before_reset` and the other attributes are kept.

    ## When it applies
    TRT126 on `GRU` with `direction="bidirectional"` and activations that differ per direction.

    ## Example
    `Y = GRU<direction="bidirectional", activations=["Sigmoid","Tanh","Sigmoid","Relu"]>(X, W, R)`
    becomes two GRUs (`["Sigmoid","Tanh"]` forward, `["Sigmoid","Relu"]` reverse) and a `Concat`.

    ## Safety
    Safe: a bidirectional GRU is defined as the two directions computed independently.

    ## Resolves
    TRT126
    """

    name = "gru-bidirectional-split"
    summary = "split a bidirectional GRU with per-direction activations into two GRUs"
    op_type = "GRU"


class LstmBidirectionalSplit(_SplitBidirectional):
    """Split a bidirectional `LSTM` whose directions use different activations into two LSTMs.

    ## What it does
    As `rnn-bidirectional-split`, for `LSTM`: a `forward` and a `reverse` LSTM with their own
    activations, weights, biases, initial states and peepholes, outputs (`Y`, `Y_h`, `Y_c`) joined
    with `Concat` on the direction axis.

    ## When it applies
    TRT126 on `LSTM` with `direction="bidirectional"` and activations that differ per direction.

    ## Example
    `Y = LSTM<direction="bidirectional", activations=["Sigmoid","Tanh","Tanh","Sigmoid","Relu","Relu"]>(X, W, R)`
    becomes two LSTMs and a `Concat`.

    ## Safety
    Safe: a bidirectional LSTM is defined as the two directions computed independently.

    ## Resolves
    TRT126
    """

    name = "lstm-bidirectional-split"
    summary = "split a bidirectional LSTM with per-direction activations into two LSTMs"
    op_type = "LSTM"


REWRITES = (
    BatchNormTrainingToReductions,
    EinsumExplicitForm,
    GroupNormalizationToReductions,
    GruBidirectionalSplit,
    InstanceNormToReductions,
    LayerNormStatsToReductions,
    LpPoolToPowAveragePool,
    LstmBidirectionalSplit,
    ResizeEquivalentCoordinateMode,
    RnnBidirectionalSplit,
)
