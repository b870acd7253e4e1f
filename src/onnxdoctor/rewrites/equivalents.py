"""Exact equivalents for op configurations an importer rejects that the decompositions module does not
cover: EyeLike of a dynamic shape, DeformConv with asymmetric pads, MaxPool with dilations, Pad in
wrap mode before TensorRT 10, MaxPool's Indices output, DFT before TensorRT 11.2, optional outputs
listed but unread (Attention's present_key/value)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import onnx
from onnx import TensorProto

from .._proto import default_opset, graphs
from ..findings import Applicability
from ..rule_fixes import RUNTIME_AXIS_INPUT
from .base import Outcome, Rewrite, RewriteContext
from .substitutions._build import Builder, Skip, Substitution

_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)


def _str(value) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


class _Equivalent(Substitution):
    applicability = Applicability.SAFE


class EyeLikeToRangeEqual(_Equivalent):
    """Replace `EyeLike` of a dynamic shape by a comparison of two `Range`s.

    ## What it does
    `EyeLike<k, dtype>(x)` with `x: [R, C]` becomes
    `Cast(Equal(Unsqueeze(Range(0, R) + k, 1), Unsqueeze(Range(0, C), 0)), dtype)`: ones where the
    column index equals the row index plus `k`, zeros elsewhere, with `R` and `C` read from
    `Shape(x)` at run time.

    ## When it applies
    TRT126 on `EyeLike` whose input has a dynamic dimension (the importer needs static ones).
    Skipped before opset 11 (`Range`) and when the input's rank is not 2.

    ## Example
    `y = EyeLike<k=1>(x)` with `x: float[N, N]` becomes the Range/Equal construction above.

    ## Safety
    Safe: the operator's definition, computed with integers.

    ## Resolves
    TRT126
    """

    name = "eyelike-to-range-equal"
    summary = "replace EyeLike of a dynamic shape by Range + Equal"
    op_type = "EyeLike"
    pattern = "EyeLike of a dynamic shape"
    resolves = ("TRT126",)

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        if b.opset < 11:
            raise Skip("Range needs opset 11")
        shape = b.shape(x)
        if shape is not None and len(shape) != 2:
            raise Skip("EyeLike needs a rank-2 input")
        if shape is not None and all(shape):
            raise Skip("the input's shape is static: TensorRT imports this EyeLike as it is")
        dtype = b.attr("dtype") or b.dtype(x)
        if dtype is None:
            raise Skip("the output element type is unknown")
        k = int(b.attr("k", 0))
        s = b.op("Shape", [x])
        rows = b.op("Gather", [s, b.const(0, TensorProto.INT64, "zero")], axis=0)
        cols = b.op("Gather", [s, b.const(1, TensorProto.INT64, "one")], axis=0)
        zero, one = b.const(0, TensorProto.INT64, "zero"), b.const(1, TensorProto.INT64, "one")
        r = b.op("Range", [zero, rows, one])
        if k:
            r = b.add(r, b.const(k, TensorProto.INT64, "k"))
        c = b.op("Range", [zero, cols, one])
        if b.opset >= 13:
            rr, cc = b.op("Unsqueeze", [r, b.ints([1])]), b.op("Unsqueeze", [c, b.ints([0])])
        else:
            rr, cc = b.op("Unsqueeze", [r], axes=[1]), b.op("Unsqueeze", [c], axes=[0])
        eq = b.op("Equal", [rr, cc])
        b.cast(eq, dtype, b.node.output[0])


class DeformConvExplicitPads(_Equivalent):
    """Move asymmetric `DeformConv` padding into an explicit zero `Pad` of the input.

    ## What it does
    `DeformConv<pads=[b1, b2, e1, e2]>(X, W, offset, ...)` with `b != e` becomes
    `DeformConv<pads=0>(Pad(X, [0, 0, b1, b2, 0, 0, e1, e2]), W, offset, ...)`. DeformConv samples
    outside the input as zero, and the padded input holds zeros where the padding was, at the same
    sampling positions shifted by the leading pads: the output is the same.

    ## When it applies
    TRT126 on `DeformConv` whose pads differ at the beginning and end of a spatial axis (the
    importer needs symmetric pads). Skipped with `auto_pad` other than NOTSET.

    ## Example
    `y = DeformConv<kernel_shape=[3,3], pads=[0,0,1,1]>(x, w, off)` becomes
    `p = Pad(x, [0,0,0,0,0,0,1,1]); y = DeformConv<kernel_shape=[3,3], pads=[0,0,0,0]>(p, w, off)`.

    ## Safety
    Safe: the same samples of the same values.

    ## Resolves
    TRT126
    """

    name = "deform-conv-explicit-pads"
    summary = "move asymmetric DeformConv pads into an explicit Pad of the input"
    op_type = "DeformConv"
    pattern = "DeformConv with asymmetric pads"
    resolves = ("TRT126",)

    def matches(self, node: onnx.NodeProto) -> bool:
        if not super().matches(node):
            return False
        pads = next((list(a.ints) for a in node.attribute if a.name == "pads"), [])
        n = len(pads) // 2
        return bool(pads) and pads[:n] != pads[n:]

    def replace(self, b: Builder) -> None:
        if _str(b.attr("auto_pad", "NOTSET")) not in ("NOTSET", ""):
            raise Skip("auto_pad is set")
        pads = list(b.attr("pads"))
        n = len(pads) // 2
        x = b.node.input[0]
        full = [0, 0] + pads[:n] + [0, 0] + pads[n:]
        padded = b.op("Pad", [x, b.ints(full, "pads")]) if b.opset >= 11 else b.op("Pad", [x], pads=full)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in b.node.attribute if a.name != "pads"}
        b.op("DeformConv", [padded, *b.node.input[1:]], b.node.output[0], pads=[0] * (2 * n), **attrs)


class MaxPoolDilationsToSlices(_Equivalent):
    """Replace a dilated `MaxPool` by the maximum of strided slices of the padded input.

    ## What it does
    A `MaxPool` with kernel `k`, strides `s` and dilations `d` takes, for every output position,
    the maximum over `k1 x k2 x ...` input elements `d` apart. The rewrite pads the input with
    `-inf` (the pads of the node), takes one strided `Slice` per kernel offset — the elements every
    output position sees at that offset — and combines them with one `Max`.

    ## When it applies
    TRT121 on `MaxPool` with dilations other than 1; TRT127 where 9.1 to 9.3 parse it but ignore the
    dilations. Needs static spatial dimensions, a floating-point input, `ceil_mode=0`, `auto_pad`
    NOTSET or VALID, and the `Indices` output unused; at most 64 kernel offsets.

    ## Example
    `y = MaxPool<kernel_shape=[2,2], dilations=[2,2]>(x)` with `x: float[1,1,5,5]` becomes
    `y = Max(Slice(x, [0,0]..), Slice(x, [0,2]..), Slice(x, [2,0]..), Slice(x, [2,2]..))` with 3x3
    outputs.

    ## Safety
    Safe: the maximum of the same elements.

    ## Resolves
    TRT121, TRT127
    """

    name = "max-pool-dilations-to-slices"
    summary = "replace a dilated MaxPool by Max over strided Slices"
    op_type = "MaxPool"
    pattern = "MaxPool with dilations"
    resolves = ("TRT121", "TRT127")

    def matches(self, node: onnx.NodeProto) -> bool:
        if not super().matches(node):
            return False
        dil = next((list(a.ints) for a in node.attribute if a.name == "dilations"), [])
        return any(v != 1 for v in dil)

    def replace(self, b: Builder) -> None:
        if b.output_used(1):
            raise Skip("the Indices output is read (max-pool-indices-by-argmax replaces that node)")
        plan = _pool_plan(b)
        _pool_max(b, plan["slices"], b.node.output[0])


def _pool_plan(b: Builder, fill: float = -np.inf, source: str | None = None) -> dict:
    """The strided slices of a pooling node's input (`source` instead when given) padded with `fill`,
    one per kernel offset in row-major kernel order, with the pooling geometry. Raises Skip for what
    the slices cannot express."""
    x = b.node.input[0]
    if b.attr("ceil_mode", 0):
        raise Skip("ceil_mode=1")
    auto_pad = _str(b.attr("auto_pad", "NOTSET"))
    if auto_pad not in ("NOTSET", "VALID", ""):
        raise Skip(f"auto_pad={auto_pad}")
    dtype = b.float_type(x)
    shape = b.shape(x)
    k = list(b.attr("kernel_shape"))
    n = len(k)
    if shape is None or len(shape) != n + 2 or any(not v for v in shape[2:]):
        raise Skip("the spatial dimensions are not static")
    s = list(b.attr("strides") or [1] * n)
    d = list(b.attr("dilations") or [1] * n)
    pads = [0] * (2 * n) if auto_pad == "VALID" else list(b.attr("pads") or [0] * (2 * n))
    if math.prod(k) > 64:
        raise Skip(f"{math.prod(k)} kernel offsets (at most 64)")
    sizes = [shape[2 + i] + pads[i] + pads[n + i] for i in range(n)]
    outs = [(sizes[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(n)]
    if any(o < 1 for o in outs):
        raise Skip("the pooled output would be empty")
    src = source or x
    if any(pads):
        value = b.const(fill, dtype, "pad_value")
        full = [0, 0] + pads[:n] + [0, 0] + pads[n:]
        src = b.op("Pad", [src, b.ints(full, "pads"), value]) if b.opset >= 11 else b.op("Pad", [src], pads=full, value=float(fill))
    axes = list(range(2, 2 + n))
    slices, offsets = [], list(itertools.product(*(range(v) for v in k)))
    for offs in offsets:
        starts = [offs[i] * d[i] for i in range(n)]
        ends = [starts[i] + (outs[i] - 1) * s[i] + 1 for i in range(n)]
        if b.opset >= 10:
            slices.append(b.op("Slice", [src, b.ints(starts, "starts"), b.ints(ends, "ends"), b.ints(axes, "axes"), b.ints(s, "steps")]))
        else:
            if any(v != 1 for v in s):
                raise Skip("strided Slice needs opset 10")
            slices.append(b.op("Slice", [src], starts=starts, ends=ends, axes=axes))
    return {"slices": slices, "offsets": offsets, "outs": outs, "strides": s, "dilations": d, "pads": pads,
            "shape": shape, "n": n, "kernel": k, "dtype": dtype}


def _pool_max(b: Builder, slices: list[str], out: str) -> str:
    return b.identity_or(slices[0], out) if len(slices) == 1 else b.op("Max", slices, out)


class MaxPoolIndicesByArgmax(_Equivalent):
    """Compute a `MaxPool`'s `Indices` output with `ArgMax` over the strided slices of its input.

    ## What it does
    Takes one strided `Slice` of the (−inf padded) input per kernel offset, as
    `max-pool-dilations-to-slices` does; `Y` is their `Max`. The slices are stacked on a new leading
    axis and `ArgMax` over it gives, for every output position, which kernel offset held the first
    maximum (the offsets are stacked in the order MaxPool scans its window). The flat index MaxPool
    returns — over the whole input tensor, batch and channel included, row-major or (for
    `storage_order=1`) column-major over the spatial axes — is then `(n*C + c) * spatial size +` a
    constant per kernel offset (`Gather`ed by the ArgMax) `+` a constant per output position.

    ## When it applies
    TRT123 on `MaxPool` whose `Indices` output is read (no release imports it). Needs static channel
    and spatial dimensions (the batch may be dynamic), a floating-point input, `ceil_mode=0`,
    `auto_pad` NOTSET or VALID; at most 64 kernel offsets.

    ## Example
    `y, i = MaxPool<kernel_shape=[2,2], strides=[2,2]>(x)` with `x: float[1,1,4,4]` becomes four
    strided slices, `y = Max(...)`, `o = ArgMax<axis=0>(Concat(Unsqueeze(...)))`,
    `i = Gather([0, 1, 4, 5], o) + [[0, 2], [8, 10]]`.

    ## Safety
    Safe: the same maximum and the same (first) position, computed with integers.

    ## Resolves
    TRT123
    """

    name = "max-pool-indices-by-argmax"
    summary = "compute MaxPool's Indices output with ArgMax over strided slices"
    op_type = "MaxPool"
    pattern = "MaxPool whose Indices output is read"
    resolves = ("TRT123",)

    def matches(self, node: onnx.NodeProto) -> bool:
        return super().matches(node) and len(node.output) > 1 and bool(node.output[1])

    def replace(self, b: Builder) -> None:
        if not b.output_used(1):
            raise Skip("the Indices output is not read")
        x = b.node.input[0]
        plan = _pool_plan(b)
        shape, n, outs = plan["shape"], plan["n"], plan["outs"]
        channels, spatial = shape[1], shape[2:]
        if not channels:
            raise Skip("the channel dimension is not static")
        _pool_max(b, plan["slices"], b.node.output[0])
        # Flat spatial index of each input position: row-major, or column-major (storage_order=1).
        order = list(range(n)) if not b.attr("storage_order", 0) else list(reversed(range(n)))
        step = [0] * n
        acc = 1
        for i in reversed(order):
            step[i] = acc
            acc *= spatial[i]
        per_offset = np.array([sum(offs[i] * plan["dilations"][i] * step[i] for i in range(n)) for offs in plan["offsets"]], np.int64)
        grids = np.meshgrid(*(np.arange(o) for o in outs), indexing="ij")
        per_output = sum((grids[i] * plan["strides"][i] - plan["pads"][i]) * step[i] for i in range(n)).astype(np.int64)
        stacked = [b.op("Unsqueeze", [s_, b.ints([0])]) if b.opset >= 13 else b.op("Unsqueeze", [s_], axes=[0]) for s_ in plan["slices"]]
        which = b.op("ArgMax", [b.op("Concat", stacked, axis=0) if len(stacked) > 1 else stacked[0]], axis=0, keepdims=0)
        spatial_index = b.add(b.op("Gather", [b.tensor(per_offset, f"{b.base}/offset_index"), which], axis=0),
                              b.tensor(per_output, f"{b.base}/output_index"))
        # (n*C + c) * spatial size, for a batch read at run time.
        size = int(np.prod(spatial))
        batch = b.op("Gather", [b.op("Shape", [x]), b.const(0, TensorProto.INT64, "zero")], axis=0)
        planes = b.op("Range", [b.const(0, TensorProto.INT64, "zero"), b.mul(batch, b.const(channels, TensorProto.INT64, "channels")),
                                b.const(1, TensorProto.INT64, "one")])
        base = b.op("Reshape", [b.mul(planes, b.const(size, TensorProto.INT64, "plane_size")),
                                b.ints([-1, channels] + [1] * n, "plane_shape")])
        b.add(base, spatial_index, b.node.output[1])


class PadWrapToSlices(_Equivalent):
    """Replace `Pad` in wrap mode by a `Concat` of slices of the input.

    ## What it does
    Along each padded axis, `Pad<mode="wrap">` puts the last `b` elements before the input and the
    first `e` after it. The rewrite writes that as `Concat(Slice(x, L-b, L), x, Slice(x, 0, e))`,
    axis by axis (negative pads become a `Slice` that crops).

    ## When it applies
    TRT121 on `Pad` with `mode="wrap"` (TensorRT imports it from 10.0). Needs constant pads (and
    axes), static padded dimensions and pads no larger than the dimension.

    ## Example
    `y = Pad<mode="wrap">(x, [0, 1, 0, 2])` with `x: float[2,4]` becomes
    `y = Concat<axis=1>(Slice(x, [3], [4], [1]), x, Slice(x, [0], [2], [1]))`.

    ## Safety
    Safe: the same elements in the same places.

    ## Resolves
    TRT121
    """

    name = "pad-wrap-to-slices"
    summary = "replace wrap-mode Pad by a Concat of slices"
    op_type = "Pad"
    pattern = "Pad with mode=wrap"
    resolves = ("TRT121",)

    def matches(self, node: onnx.NodeProto) -> bool:
        return super().matches(node) and any(a.name == "mode" and _str(a.s) == "wrap" for a in node.attribute)

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        pads = b.value(b.input(1))
        if pads is None:
            raise Skip("the pads are not constant")
        shape = b.shape(x)
        if shape is None:
            raise Skip("the input's shape is unknown")
        rank = len(shape)
        axes_in = b.input(3)
        axes = b.value(axes_in) if axes_in else np.arange(rank)
        if axes is None:
            raise Skip("the axes are not constant")
        axes = [int(a) % rank for a in np.asarray(axes).reshape(-1)]
        pads = [int(p) for p in np.asarray(pads).reshape(-1)]
        n = len(axes)
        cur = x
        for i, axis in enumerate(axes):
            lo, hi = pads[i], pads[n + i]
            if not lo and not hi:
                continue
            size = shape[axis]
            if not size:
                raise Skip(f"dimension {axis} is not static")
            if lo > size or hi > size:
                raise Skip(f"pads on axis {axis} exceed its size {size}")
            start, end = max(0, -lo), size - max(0, -hi)
            if start or end != size:
                cur = b.slice(cur, [start], [end], [axis])
            size = end - start
            parts = []
            if lo > 0:
                parts.append(b.slice(cur, [size - lo], [size], [axis]))
            parts.append(cur)
            if hi > 0:
                parts.append(b.slice(cur, [0], [hi], [axis]))
            cur = b.op("Concat", parts, axis=axis) if len(parts) > 1 else cur
        b.op("Identity", [cur], b.node.output[0])


class DftToMatMul(_Equivalent):
    """Replace `DFT` of a static length by two `MatMul`s with constant cosine and sine matrices.

    ## What it does
    With `x` the real part (and `y` the imaginary part, when the input's last dimension is 2) of the
    signal along the DFT axis, and `C[n, k] = cos(2*pi*n*k/L)`, `S[n, k] = sin(2*pi*n*k/L)`, the
    forward DFT is `re = x@C + y@S`, `im = y@C - x@S`; the inverse is `re = (x@C - y@S)/L`,
    `im = (y@C + x@S)/L`. `onesided` keeps the first `L//2 + 1` columns; a `dft_length` other than
    the signal length pads the signal with zeros or truncates it first. The result is stacked back
    as the `[..., 2]` real/imaginary pair.

    ## When it applies
    TRT101 on `DFT` (TensorRT imports it from 11.2). Needs a static signal length and last dimension,
    a constant `dft_length` and `axis`, and at most 16M elements per matrix.

    ## Example
    `y = DFT(x)` with `x: float[1,16,1]` becomes `re = MatMul(x', C)`, `im = Neg(MatMul(x', S))`,
    `y = Concat(Unsqueeze(re), Unsqueeze(im))` with `x' = Squeeze(x, -1)` and 16x16 matrices.

    ## Safety
    Safe: the DFT's definition; the sums are ordered differently from an FFT, which changes the last
    bits of the result (proven within the fix tolerance).

    ## Resolves
    TRT101
    """

    name = "dft-to-matmul"
    summary = "replace DFT of a static length by MatMuls with cosine/sine matrices"
    op_type = "DFT"

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        shape = b.shape(x)
        if shape is None or not shape[-1] or shape[-1] not in (1, 2):
            raise Skip("the input's last (real/imaginary) dimension is not static")
        rank = len(shape)
        dtype = b.float_type(x)
        if b.opset >= 20:
            axis_in = b.input(2)
            axis = b.value(axis_in) if axis_in else np.asarray(-2)
            if axis is None:
                raise Skip("the axis input is not constant")
            axis = int(np.asarray(axis).reshape(-1)[0])
        else:
            axis = int(b.attr("axis", 1))
        axis %= rank
        if axis == rank - 1:
            raise Skip("the DFT axis is the real/imaginary axis")
        n = shape[axis]
        if not n:
            raise Skip("the signal length is not static")
        length_in = b.input(1)
        length = n
        if length_in:
            v = b.value(length_in)
            if v is None:
                raise Skip("dft_length is not constant")
            length = int(np.asarray(v).reshape(-1)[0])
        inverse, onesided = bool(b.attr("inverse", 0)), bool(b.attr("onesided", 0))
        complex_in = shape[-1] == 2
        if onesided and (complex_in or inverse):
            raise Skip("onesided applies to a real forward DFT only")
        m = length // 2 + 1 if onesided else length
        if length * m > 16 * 2**20:
            raise Skip(f"the {length}x{m} matrices are too large")
        np_type = onnx.helper.tensor_dtype_to_np_dtype(dtype)
        k = np.arange(length)
        angle = 2 * np.pi * np.outer(k, k[:m]) / length
        cos = np.cos(angle).astype(np_type)
        sin = np.sin(angle).astype(np_type)
        if inverse:
            cos, sin = cos / length, sin / length
        # Signal axis last: [..., n] for the real (and imaginary) part.
        perm = [i for i in range(rank - 1) if i != axis] + [axis]
        squeeze_axis = b.ints([rank - 1], "complex_axis")

        def part(i: int) -> str:
            p_ = b.op("Slice", [x, b.ints([i], "starts"), b.ints([i + 1], "ends"), squeeze_axis])
            p_ = b.op("Squeeze", [p_, squeeze_axis]) if b.opset >= 13 else b.op("Squeeze", [p_], axes=[rank - 1])
            return b.op("Transpose", [p_], perm=perm) if perm != list(range(rank - 1)) else p_

        re_in = part(0)
        im_in = part(1) if complex_in else None
        if length != n:  # zero-pad or truncate the signal to dft_length
            last = rank - 2
            if length > n:
                pads = [0] * (rank - 1) * 2
                pads[(rank - 1) + last] = length - n
                re_in = b.op("Pad", [re_in, b.ints(pads, "pads")])
                im_in = b.op("Pad", [im_in, b.ints(pads, "pads")]) if im_in else None
            else:
                cut = [b.ints([0], "starts"), b.ints([length], "ends"), b.ints([last], "axes")]
                re_in = b.op("Slice", [re_in, *cut])
                im_in = b.op("Slice", [im_in, *cut]) if im_in else None
        c, s_ = b.tensor(cos, f"{b.base}/cos"), b.tensor(sin, f"{b.base}/sin")
        xc, xs = b.op("MatMul", [re_in, c]), b.op("MatMul", [re_in, s_])
        if im_in:
            yc, ys = b.op("MatMul", [im_in, c]), b.op("MatMul", [im_in, s_])
            re, im = (b.op("Sub", [xc, ys]), b.add(yc, xs)) if inverse else (b.add(xc, ys), b.op("Sub", [yc, xs]))
        else:
            re, im = (xc, xs) if inverse else (xc, b.op("Neg", [xs]))
        inv = [perm.index(i) for i in range(rank - 1)]
        if inv != list(range(rank - 1)):
            re, im = b.op("Transpose", [re], perm=inv), b.op("Transpose", [im], perm=inv)
        last_axis = b.ints([-1], "last")
        parts = [b.op("Unsqueeze", [t, last_axis]) if b.opset >= 13 else b.op("Unsqueeze", [t], axes=[-1]) for t in (re, im)]
        b.op("Concat", parts, b.node.output[0], axis=-1)


REWRITES = (EyeLikeToRangeEqual, DeformConvExplicitPads, MaxPoolDilationsToSlices, MaxPoolIndicesByArgmax, PadWrapToSlices, DftToMatMul)


_RESHAPE_LIKE = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})


class CollapseReshapeChains(_Equivalent):
    """Write a chain of reshapes through a tensor of more than 8 dimensions as one `Reshape`.

    ## What it does
    `Reshape`, `Flatten`, `Squeeze` and `Unsqueeze` only regroup the same elements in the same order,
    so a chain of them equals one `Reshape` of the chain's input to the chain's output shape. Where a
    reshape-like node reads a value of more than 8 dimensions made by another reshape-like node, it
    becomes `Reshape(source, final shape)` (`-1` for at most one dynamic dimension), and the
    intermediate, which TensorRT cannot hold, goes away.

    ## When it applies
    TRT124 on a value of rank > 8 that a reshape-like node makes and only reshape-like nodes read.
    Needs the final shape known up to one dimension, and a source of rank <= 8.

    ## Example
    `r = Reshape(x, [2,1,2,1,2,1,2,1,2]); y = Reshape(r, [2,4,4])` with `x: float[2,4,4]` becomes
    `y = Reshape(x, [2,4,4])`.

    ## Safety
    Safe: the same elements in the same order.

    ## Resolves
    TRT124
    """

    name = "collapse-reshape-chains"
    summary = "write a chain of reshapes through a rank > 8 tensor as one Reshape"
    op_type = "Reshape"
    pattern = "reshape-like node reading a rank > 8 reshape result"
    resolves = ("TRT124",)

    def matches(self, node: onnx.NodeProto) -> bool:
        return node.op_type in _RESHAPE_LIKE and node.domain in ("", "ai.onnx")

    def replace(self, b: Builder) -> None:
        src = b.node.input[0]
        rank = b.rank(src)
        if rank is None or rank <= 8:
            raise Skip("its input has at most 8 dimensions")
        producers = {o: n for g in [self._graph(b)] for n in g.node for o in n.output}
        seen = 0
        while rank is not None and rank > 8:
            p = producers.get(src)
            if p is None or p.op_type not in _RESHAPE_LIKE or p.domain not in ("", "ai.onnx") or seen > 16:
                raise Skip(f"{src!r} ({rank} dimensions) is not made by a reshape-like node of this graph")
            src, seen = p.input[0], seen + 1
            rank = b.rank(src)
        if rank is None:
            raise Skip("the chain's source has an unknown rank")
        out = b.shape(b.node.output[0])
        if out is None or sum(1 for d in out if not d) > 1:
            raise Skip("the chain's output shape is not known up to one dimension")
        b.op("Reshape", [src, b.ints([d if d else -1 for d in out], "shape")], b.node.output[0])

    @staticmethod
    def _graph(b: Builder) -> onnx.GraphProto:
        return b.info._graph_list[b.graph_index]


REWRITES = (*REWRITES, CollapseReshapeChains)


class DeformConvToGridSample(_Equivalent):
    """Replace `DeformConv` by `GridSample` (the deformed sampling) and a 1x1 `Conv` (the weighting).

    ## What it does
    For every kernel position `k` and output position `(i, j)`, DeformConv samples the input
    bilinearly at `(i*stride - pad + k*dilation + offset)` and sums the samples times the weights.
    The rewrite computes all sampling positions at once — constant base positions plus the offsets,
    normalized for `GridSample<align_corners=1>` (bilinear, zeros outside, as DeformConv samples) —
    samples the input once per offset group with the kernel positions stacked along the height,
    multiplies by the mask when there is one, and applies the weights as a grouped 1x1 `Conv` over
    the `C * kH * kW` samples.

    ## When it applies
    TRT101 on `DeformConv` (TensorRT imports it from 10.1). Needs a 2-D DeformConv with static
    channel and spatial dimensions (the batch may be dynamic), input height and width above 1.

    ## Example
    `y = DeformConv<kernel_shape=[3,3]>(x, w, off)` with `x: float[1,2,5,5]` becomes
    `s = GridSample(x, grid(off))` (9 positions stacked), `y = Conv(Reshape(s, [0,18,3,3]), Reshape(w, [2,18,1,1]))`.

    ## Safety
    Safe: the same bilinear samples and weighted sum; the normalized coordinates and the summation
    order change the last bits (proven within the fix tolerance).

    ## Resolves
    TRT101
    """

    name = "deform-conv-to-grid-sample"
    summary = "replace DeformConv by GridSample sampling and a 1x1 Conv"
    op_type = "DeformConv"

    def replace(self, b: Builder) -> None:
        x, w, off = b.node.input[0], b.node.input[1], b.node.input[2]
        bias, mask = b.input(3), b.input(4)
        if b.opset < 16:
            raise Skip("GridSample needs opset 16")
        xs, ws, out = b.shape(x), b.shape(w), b.shape(b.node.output[0])
        if xs is None or len(xs) != 4 or not all(xs[1:]):
            raise Skip("needs a 2-D DeformConv input with static channel and spatial dimensions")
        if ws is None or len(ws) != 4 or not all(ws):
            raise Skip("the weight's shape is not static")
        _, C, H, W = xs
        if H < 2 or W < 2:
            raise Skip("height and width must be above 1 (GridSample's align_corners normalization)")
        dtype = b.float_type(x)
        oc, cpg, kh, kw = ws
        kernel = list(b.attr("kernel_shape") or [kh, kw])
        s_ = list(b.attr("strides") or [1, 1])
        d_ = list(b.attr("dilations") or [1, 1])
        pads = list(b.attr("pads") or [0, 0, 0, 0])
        group, ogroup = int(b.attr("group", 1)), int(b.attr("offset_group", 1))
        K = kernel[0] * kernel[1]
        oh = (H + pads[0] + pads[2] - d_[0] * (kernel[0] - 1) - 1) // s_[0] + 1
        ow = (W + pads[1] + pads[3] - d_[1] * (kernel[1] - 1) - 1) // s_[1] + 1
        if out is not None and len(out) == 4 and out[2:] and all(out[2:]) and list(out[2:]) != [oh, ow]:
            raise Skip("the output size does not match the attributes")
        if C % ogroup or C % group:
            raise Skip("channels are not divisible by the groups")
        np_t = onnx.helper.tensor_dtype_to_np_dtype(dtype)
        ki, kj = np.divmod(np.arange(K), kernel[1])
        ii, jj = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
        base_y = (ii[None] * s_[0] - pads[0] + ki[:, None, None] * d_[0]).astype(np_t)  # [K, oh, ow]
        base_x = (jj[None] * s_[1] - pads[1] + kj[:, None, None] * d_[1]).astype(np_t)
        # normalized coordinate = position * 2/(size-1) - 1, folded into the constants
        sy, sx = np.asarray(2.0 / (H - 1), np_t), np.asarray(2.0 / (W - 1), np_t)
        ny = b.tensor((base_y * sy - 1).astype(np_t), f"{b.base}/grid_y")
        nx = b.tensor((base_x * sx - 1).astype(np_t), f"{b.base}/grid_x")
        cg = C // ogroup
        last = b.ints([-1], "last")
        sampled = []
        for g in range(ogroup):
            o = off if ogroup == 1 else b.slice(off, [g * 2 * K], [(g + 1) * 2 * K], [1])
            o = b.op("Reshape", [o, b.ints([0, K, 2, oh, ow], "offset_shape")])
            dy = b.op("Gather", [o, b.const(0, TensorProto.INT64, "zero")], axis=2)  # [N, K, oh, ow]
            dx = b.op("Gather", [o, b.const(1, TensorProto.INT64, "one")], axis=2)
            gy = b.add(b.mul(dy, b.const(float(sy), dtype, "scale_y")), ny)
            gx = b.add(b.mul(dx, b.const(float(sx), dtype, "scale_x")), nx)
            grid = b.op("Concat", [b.op("Unsqueeze", [gx, last]), b.op("Unsqueeze", [gy, last])], axis=-1)
            grid = b.op("Reshape", [grid, b.ints([0, K * oh, ow, 2], "grid_shape")])
            xg = x if ogroup == 1 else b.slice(x, [g * cg], [(g + 1) * cg], [1])
            smp = b.op("GridSample", [xg, grid], mode="bilinear", padding_mode="zeros", align_corners=1)
            smp = b.op("Reshape", [smp, b.ints([0, cg, K, oh, ow], "sample_shape")])
            if mask:
                m = mask if ogroup == 1 else b.slice(mask, [g * K], [(g + 1) * K], [1])
                smp = b.mul(smp, b.op("Unsqueeze", [m, b.ints([1], "channel_axis")]))
            sampled.append(smp)
        stacked = sampled[0] if len(sampled) == 1 else b.op("Concat", sampled, axis=1)
        cols = b.op("Reshape", [stacked, b.ints([0, C * K, oh, ow], "cols_shape")])
        wv = b.value(w)
        w2 = b.tensor(wv.reshape(oc, cpg * K, 1, 1), f"{b.base}/weight") if wv is not None else \
            b.op("Reshape", [w, b.ints([oc, cpg * K, 1, 1], "weight_shape")])
        ins = [cols, w2] + ([bias] if bias else [])
        b.op("Conv", ins, b.node.output[0], kernel_shape=[1, 1], group=group)


REWRITES = (*REWRITES, DeformConvToGridSample)


class DeformConv3dToGathers(_Equivalent):
    """Replace a 3-D `DeformConv` by trilinear sampling with `GatherElements` and a 1x1x1 `Conv`.

    ## What it does
    DeformConv samples the input at `o * stride - pad + k * dilation + offset` for every output
    position `o` and kernel position `k` (offsets per offset group), interpolating linearly between
    the 8 neighbours and reading zero outside the input. The rewrite computes every sampling
    position at once (constant base positions plus the offsets), splits each into its floor and
    fraction, and for each of the 8 corners gathers the input at the flattened index of the
    (clamped) corner with `GatherElements`, weighted by the product of the fractions and by whether
    the corner lies inside the input. The weighted sum, times the mask when there is one, holds the
    `C * kD * kH * kW` samples per output position; the weights apply as a grouped 1x1x1 `Conv`.

    ## When it applies
    TRT101 on a `DeformConv` with 3 spatial dimensions (no importer before 10.1) and TRT124 on it from
    10.1 (the importer takes 1 or 2): `deform-conv-to-grid-sample` would need a volumetric GridSample,
    which those releases lack. Needs static input, weight and offset shapes and a floating-point input;
    at most 16M gathered elements per corner.

    ## Example
    `y = DeformConv<kernel_shape=[2,2,2]>(x, w, off)` with `x: float[1,1,4,4,4]` becomes 8
    `GatherElements` of `Reshape(x, [1,1,1,64])` at the corners of `Floor(base + off)`, weighted,
    summed, reshaped to `[1,8,3,3,3]` and `y = Conv(cols, Reshape(w, [1,8,1,1,1]))`.

    ## Safety
    Safe: the same trilinear samples and weighted sum; the summation order changes the last bits
    (proven within the fix tolerance; ONNX Runtime runs no 3-D DeformConv, so the original's outputs
    come from onnx.reference with onnxdoctor's N-D DeformConv, see docs/fix.md).

    ## Resolves
    TRT101, TRT124
    """

    name = "deform-conv-3d-to-gathers"
    summary = "replace a 3-D DeformConv by trilinear GatherElements sampling and a 1x1x1 Conv"
    op_type = "DeformConv"
    ops = ()  # TRT101 names it for the 3-D form only (checks/trt/_substitutes.py)
    pattern = "DeformConv with 3 spatial dimensions"
    resolves = ("TRT101", "TRT124")

    def replace(self, b: Builder) -> None:
        x, w, off = b.node.input[0], b.node.input[1], b.node.input[2]
        bias, mask = b.input(3), b.input(4)
        xs, ws, os_ = b.shape(x), b.shape(w), b.shape(off)
        if xs is None or len(xs) != 5:
            raise Skip("not a 3-D DeformConv (deform-conv-to-grid-sample handles 2-D)")
        if not all(xs) or ws is None or not all(ws) or os_ is None or not all(os_):
            raise Skip("the input, weight and offset shapes are not all static")
        if _str(b.attr("auto_pad", "NOTSET")) not in ("NOTSET", ""):
            raise Skip("auto_pad is set")
        dtype = b.float_type(x)
        np_t = onnx.helper.tensor_dtype_to_np_dtype(dtype)
        n, c, *spatial = xs
        oc, cpg, *kernel_w = ws
        kernel = list(b.attr("kernel_shape") or kernel_w)
        strides = list(b.attr("strides") or [1, 1, 1])
        dil = list(b.attr("dilations") or [1, 1, 1])
        pads = list(b.attr("pads") or [0] * 6)
        group, ogroup = int(b.attr("group", 1)), int(b.attr("offset_group", 1))
        out = list(os_[2:])
        kk, oo = math.prod(kernel), math.prod(out)
        if c % ogroup or c % group or os_[1] != ogroup * kk * 3 or os_[0] != n:
            raise Skip("the channels, groups and offset shape do not fit")
        for d in range(3):
            expect = (spatial[d] + pads[d] + pads[d + 3] - dil[d] * (kernel[d] - 1) - 1) // strides[d] + 1
            if out[d] != expect:
                raise Skip("the offset's spatial size does not match the attributes")
        cg = c // ogroup
        if n * c * kk * oo > 16 * 2**20:
            raise Skip("more than 16M gathered elements per corner")
        # base[d]: [K, oD, oH, oW], the position kernel position k of output position o samples, before the offset
        kpos = np.stack(np.meshgrid(*[np.arange(k) * dl for k, dl in zip(kernel, dil)], indexing="ij"), 0).reshape(3, kk)
        opos = np.stack(np.meshgrid(*[np.arange(o) * st - p for o, st, p in zip(out, strides, pads[:3])], indexing="ij"), 0)
        base = kpos.reshape(3, kk, 1, 1, 1) + opos.reshape(3, 1, *out)
        o = b.op("Reshape", [off, b.ints([n, ogroup, kk, 3, *out], "offset_shape")])
        dims = np.asarray(spatial, np.int64)
        corner_terms = []
        pos, lo, frac = [], [], []
        for d in range(3):
            pd = b.add(b.squeeze(b.slice(o, [d], [d + 1], [3]), [3]), b.tensor(base[d].astype(np_t), f"{b.base}/base{d}"))
            f0 = b.op("Floor", [pd])
            pos.append(pd)
            lo.append(b.cast(f0, TensorProto.INT64))
            frac.append(b.op("Sub", [pd, f0]))
        one = b.const(1.0, dtype, "one_f")
        xflat = b.op("Reshape", [x, b.ints([n, ogroup, cg, int(np.prod(spatial))], "flat_shape")])
        strides_flat = [spatial[1] * spatial[2], spatial[2], 1]
        for corner in itertools.product((0, 1), repeat=3):
            index = weight = inside = None
            for d in range(3):
                i = b.add(lo[d], b.const(corner[d], TensorProto.INT64, f"c{corner[d]}")) if corner[d] else lo[d]
                ok = b.op("And", [b.op("GreaterOrEqual", [i, b.const(0, TensorProto.INT64, "zero_i")]),
                                  b.op("Less", [i, b.const(int(dims[d]), TensorProto.INT64, f"size{d}")])])
                inside = ok if inside is None else b.op("And", [inside, ok])
                clipped = b.op("Min", [b.op("Max", [i, b.const(0, TensorProto.INT64, "zero_i")]),
                                       b.const(int(dims[d]) - 1, TensorProto.INT64, f"last{d}")])
                term = b.mul(clipped, b.const(strides_flat[d], TensorProto.INT64, f"stride{d}")) if strides_flat[d] != 1 else clipped
                index = term if index is None else b.add(index, term)
                wd = frac[d] if corner[d] else b.op("Sub", [one, frac[d]])
                weight = wd if weight is None else b.mul(weight, wd)
            weight = b.mul(weight, b.cast(inside, dtype))  # [N, G, K, oD, oH, oW]
            idx = b.op("Reshape", [index, b.ints([n, ogroup, 1, kk * oo], "index_shape")])
            idx = b.op("Expand", [idx, b.ints([n, ogroup, cg, kk * oo], "gather_shape")])
            picked = b.op("GatherElements", [xflat, idx], axis=3)  # [N, G, Cg, K*O]
            wflat = b.op("Reshape", [weight, b.ints([n, ogroup, 1, kk * oo], "index_shape")])
            corner_terms.append(b.mul(picked, wflat))
        sample = corner_terms[0]
        for t in corner_terms[1:]:
            sample = b.add(sample, t)
        if mask:
            m = b.op("Reshape", [mask, b.ints([n, ogroup, 1, kk * oo], "index_shape")])
            sample = b.mul(sample, m)
        cols = b.op("Reshape", [sample, b.ints([n, c * kk, *out], "cols_shape")])
        wv = b.value(w)
        w2 = b.tensor(wv.reshape(oc, cpg * kk, 1, 1, 1), f"{b.base}/weight") if wv is not None else \
            b.op("Reshape", [w, b.ints([oc, cpg * kk, 1, 1, 1], "weight_shape")])
        b.op("Conv", [cols, w2] + ([bias] if bias else []), b.node.output[0], kernel_shape=[1, 1, 1], group=group)


REWRITES = (*REWRITES, DeformConv3dToGathers)


class ScatterNdReductionToDense(_Equivalent):
    """Replace `ScatterND` with a reduction by a dense one-hot computation.

    ## What it does
    Each update row goes to the position its index names; with a reduction, rows that name the same
    position are combined. The rewrite turns the indices into linear positions, compares them with
    every position of `data` (a one-hot mask `[updates, positions]`) and combines densely: `add` is
    `data + MatMul(maskᵀ, updates)`; `mul`, `max` and `min` reduce the updates where the mask is set
    (`ReduceProd`/`ReduceMax`/`ReduceMin` over a `Where`) and combine with `data` only where some
    update landed. An explicit `reduction="none"`, which TensorRT 10.0 to 10.8 reject as an
    attribute, is simply dropped.

    ## When it applies
    TRT121 on `ScatterND` with `reduction` add, mul, max or min (no release imports them; 8.6 and 9.x
    ignore the attribute and scatter plainly), and on an explicit `reduction="none"` before 10.9.
    Needs static shapes of data, indices and updates and a floating-point `data`; at most 16M
    elements in the dense intermediate.

    ## Example
    `y = ScatterND<reduction="add">(data, idx, upd)` with `data: [4,3]`, `idx: [2,1]` becomes
    `y = data + MatMul(Transpose(Cast(Equal(idx, [0,1,2,3]))), upd)`.

    ## Safety
    Safe: max/min/none are exact; add/mul sum or multiply the same values in another order (the last
    bits may differ; proven within the fix tolerance).

    ## Resolves
    TRT121
    """

    name = "scatter-nd-reduction-to-dense"
    summary = "replace ScatterND with a reduction by a dense one-hot computation"
    op_type = "ScatterND"
    pattern = "ScatterND with a reduction attribute"
    resolves = ("TRT121",)

    def matches(self, node: onnx.NodeProto) -> bool:
        return super().matches(node) and any(a.name == "reduction" for a in node.attribute)

    def replace(self, b: Builder) -> None:
        data, idx, upd = b.node.input[:3]
        red = _str(b.attr("reduction", "none"))
        if red == "none":
            b.op("ScatterND", [data, idx, upd], b.node.output[0])
            return
        if red not in ("add", "mul", "max", "min"):
            raise Skip(f"reduction {red!r}")
        dtype = b.float_type(data)
        ds, is_, us = b.shape(data), b.shape(idx), b.shape(upd)
        if any(s_ is None or not all(s_) for s_ in (ds, is_, us)):
            raise Skip("the shapes of data, indices and updates are not all static")
        q = is_[-1]
        rows = int(np.prod(is_[:-1])) if len(is_) > 1 else 1
        positions, size = int(np.prod(ds[:q])), int(np.prod(ds[q:])) if q < len(ds) else 1
        if rows * positions * (size if red != "add" else 1) > 16 * 2**20:
            raise Skip("the dense intermediate would exceed 16M elements")
        strides = [int(np.prod(ds[j + 1:q])) for j in range(q)]
        ix = b.op("Reshape", [idx, b.ints([rows, q], "index_rows")])
        ix = b.op("Mod", [ix, b.tensor(np.asarray(ds[:q], np.int64), f"{b.base}/dims")], fmod=0)  # negative indices
        lin = b.reduce("ReduceSum", b.mul(ix, b.tensor(np.asarray(strides, np.int64), f"{b.base}/strides")), [1], keepdims=0)
        hot = b.op("Equal", [b.op("Unsqueeze", [lin, b.ints([1])]), b.tensor(np.arange(positions, dtype=np.int64)[None], f"{b.base}/positions")])
        u2 = b.op("Reshape", [upd, b.ints([rows, size], "update_rows")])
        d2 = b.op("Reshape", [data, b.ints([positions, size], "data_rows")])
        np_t = onnx.helper.tensor_dtype_to_np_dtype(dtype)
        if red == "add":
            spread = b.op("MatMul", [b.op("Transpose", [b.cast(hot, dtype)], perm=[1, 0]), u2])
            out = b.add(d2, spread)
        else:
            neutral = {"mul": 1.0, "max": -np.inf, "min": np.inf}[red]
            hot3 = b.op("Unsqueeze", [hot, b.ints([2])])
            u3 = b.op("Unsqueeze", [u2, b.ints([1])])
            picked = b.op("Where", [hot3, u3, b.const(np.asarray(neutral, np_t), dtype, "neutral")])
            reduced = b.reduce({"mul": "ReduceProd", "max": "ReduceMax", "min": "ReduceMin"}[red], picked, [0], keepdims=0)
            combined = b.op({"mul": "Mul", "max": "Max", "min": "Min"}[red], [d2, reduced])
            landed = b.reduce("ReduceMax", b.cast(hot, dtype), [0], keepdims=0)
            touched = b.op("Unsqueeze", [b.op("Greater", [landed, b.const(0.0, dtype, "zero_f")]), b.ints([1])])
            out = b.op("Where", [touched, combined, d2])
        b.op("Reshape", [out, b.tensor(np.asarray(ds, np.int64), f"{b.base}/data_shape")], b.node.output[0])


REWRITES = (*REWRITES, ScatterNdReductionToDense)


class AvgLpPoolDilationsToSlices(_Equivalent):
    """Replace a dilated `AveragePool` or `LpPool` by sums of strided slices of the padded input.

    ## What it does
    As for a dilated MaxPool, one strided `Slice` per kernel offset of the zero-padded input holds
    what every output position sees at that offset. `AveragePool` is their `Sum` divided by the
    number of elements each window holds — the kernel size with `count_include_pad=1`, else the
    count of real (non-padding) elements, a constant computed from the geometry. `LpPool` slices
    `|x|^p` instead and takes the `1/p`-th power of the sum.

    ## When it applies
    TRT121 on `AveragePool` or `LpPool` with dilations other than 1; TRT127 where a release parses
    them but ignores the dilations. Needs static spatial dimensions,
    a floating-point input, `ceil_mode=0`, `auto_pad` NOTSET or VALID; at most 64 kernel offsets.

    ## Example
    `y = AveragePool<kernel_shape=[2,2], dilations=[2,2]>(x)` with `x: float[1,1,5,5]` becomes
    `y = Div(Sum(Slice(x, [0,0]..), Slice(x, [0,2]..), Slice(x, [2,0]..), Slice(x, [2,2]..)), 4)`.

    ## Safety
    Safe: the pooling's definition; the sum is formed in another order than ONNX Runtime's loop (the
    last bits may differ; proven within the fix tolerance).

    ## Resolves
    TRT121, TRT127
    """

    name = "avg-lp-pool-dilations-to-slices"
    summary = "replace a dilated AveragePool/LpPool by sums of strided Slices"
    op_type = "AveragePool"
    pattern = "AveragePool or LpPool with dilations"
    resolves = ("TRT121", "TRT127")

    def matches(self, node: onnx.NodeProto) -> bool:
        if node.op_type not in ("AveragePool", "LpPool") or node.domain not in ("", "ai.onnx"):
            return False
        dil = next((list(a.ints) for a in node.attribute if a.name == "dilations"), [])
        return any(v != 1 for v in dil)

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        lp = b.node.op_type == "LpPool"
        dtype = b.float_type(x)
        p = float(b.attr("p", 2)) if lp else None
        source = b.op("Pow", [b.op("Abs", [x]), b.const(p, dtype, "p")]) if lp else None
        plan = _pool_plan(b, 0.0, source)
        slices = plan["slices"]
        total = slices[0] if len(slices) == 1 else b.op("Sum", slices)
        if lp:
            b.op("Pow", [total, b.const(1.0 / p, dtype, "inv_p")], b.node.output[0])
            return
        n, k = plan["n"], plan["kernel"]
        if b.attr("count_include_pad", 0):
            b.op("Div", [total, b.const(float(np.prod(k)), dtype, "window")], b.node.output[0])
            return
        # Real elements per window: the same slices of a padded tensor of ones.
        spatial = plan["shape"][2:]
        pads = plan["pads"]
        ones = np.pad(np.ones(spatial), [(pads[i], pads[n + i]) for i in range(n)])
        count = np.zeros(plan["outs"])
        for offs in plan["offsets"]:
            idx = tuple(slice(offs[i] * plan["dilations"][i], offs[i] * plan["dilations"][i] + (plan["outs"][i] - 1) * plan["strides"][i] + 1,
                              plan["strides"][i]) for i in range(n))
            count += ones[idx]
        np_t = onnx.helper.tensor_dtype_to_np_dtype(dtype)
        b.op("Div", [total, b.tensor(count.astype(np_t), f"{b.base}/window_count")], b.node.output[0])


REWRITES = (*REWRITES, AvgLpPoolDilationsToSlices)


class ResizeKeepAspectRatioToScales(_Equivalent):
    """Replace `Resize` with a keep-aspect-ratio policy by `Resize` with the one scale it uses.

    ## What it does
    With `keep_aspect_ratio_policy` not_larger (not_smaller), Resize takes the smallest (largest) of
    `sizes[i] / input[i]` over the resized axes as the one scale `s` of every axis, and outputs
    `round(s * input[i])`. The rewrite computes `s` (in FLOAT, as ONNX Runtime does) and gives it as
    `scales` with the default stretch policy: the same coordinate mapping, and, where
    `floor(s * input[i])` equals that rounding, the same output size.

    ## When it applies
    TRT121 on `Resize` with keep_aspect_ratio_policy other than stretch (from 10.0), and the 8.6/9.x
    warning that the policy is ignored. Needs constant `sizes`, static resized dimensions and
    `floor(s * input) == round(s * input)` on every resized axis (otherwise the rewrite says so).

    ## Example
    `y = Resize<axes=[2,3], keep_aspect_ratio_policy="not_larger">(x, , , [4, 4])` with
    `x: float[1,3,8,6]` becomes `y = Resize<axes=[2,3]>(x, , [0.5, 0.5])` (output 4x3).

    ## Safety
    Safe: the same output size and sampling positions.

    ## Resolves
    TRT121
    """

    name = "resize-keep-aspect-ratio-to-scales"
    summary = "replace a keep-aspect-ratio Resize by Resize with its one scale"
    op_type = "Resize"
    pattern = "Resize with keep_aspect_ratio_policy other than stretch"
    resolves = ("TRT121",)

    def matches(self, node: onnx.NodeProto) -> bool:
        return super().matches(node) and any(a.name == "keep_aspect_ratio_policy" and _str(a.s) not in ("", "stretch")
                                             for a in node.attribute)

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        policy = _str(b.attr("keep_aspect_ratio_policy"))
        sizes = b.value(b.input(3))
        if sizes is None:
            raise Skip("the sizes are not constant")
        shape = b.shape(x)
        if shape is None:
            raise Skip("the input's shape is unknown")
        rank = len(shape)
        axes = [int(a) % rank for a in (b.attr("axes") or range(rank))]
        sizes = [int(v) for v in np.asarray(sizes).reshape(-1)]
        if len(sizes) != len(axes) or any(not shape[a] for a in axes):
            raise Skip("the resized dimensions are not static")
        ratios = [np.float32(sizes[i]) / np.float32(shape[a]) for i, a in enumerate(axes)]
        s = np.float32(min(ratios) if policy == "not_larger" else max(ratios))
        for a in axes:
            if int(np.floor(s * np.float32(shape[a]))) != int(np.floor(float(s) * shape[a] + 0.5)):
                raise Skip(f"with the scale {float(s):g}, axis {a} rounds to another size than the scale gives")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in b.node.attribute if a.name != "keep_aspect_ratio_policy"}
        scales = b.tensor(np.full(len(axes), s, np.float32), f"{b.base}/scales")
        b.op("Resize", [x, b.input(1), scales], b.node.output[0], **attrs)


REWRITES = (*REWRITES, ResizeKeepAspectRatioToScales)


class DropUnusedOptionalOutputs(Rewrite):
    """Drop the optional outputs of a node that nothing reads.

    ## What it does
    An output the operator's schema marks optional (Attention's `present_key`, `present_value`,
    `qk_matmul_output`; Dropout's `mask`; MaxPool's `Indices`; LayerNormalization's `Mean` and
    `InvStdDev`; ...) that no node, subgraph or graph output reads is unlisted: its name becomes
    empty, and empty names at the end of the output list are removed. The outputs that are read
    keep their names and positions.

    ## When it applies
    TRT126 on an `Attention` node that lists more than one output while only `Y` is read (the
    importer requires exactly one output, even when the others are unused). Nodes of the standard
    domain only (their schema says which outputs are optional).

    ## Example
    `y, nk = Attention(q, k, v)` with `nk` unread becomes `y = Attention(q, k, v)`.

    ## Safety
    Safe: the outputs that are read are computed exactly as before; an optional output that is not
    listed is not computed.

    ## Resolves
    TRT126
    """

    name = "drop-unused-optional-outputs"
    summary = "unlist optional outputs nothing reads (Attention's present_key/value, Dropout's mask)"
    applicability = Applicability.SAFE
    phase = 30
    resolves = ("TRT126",)

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        out = onnx.ModelProto()
        out.CopyFrom(model)
        opset = default_opset(out)
        read: set[str] = set()
        for g in graphs(out.graph):
            read.update(vi.name for vi in g.output)
            for n in g.node:
                read.update(n.input)
        changes: list[str] = []
        for g in graphs(out.graph):
            for n in g.node:
                if n.domain not in ("", "ai.onnx") or len(n.output) < 2:
                    continue
                try:
                    schema = onnx.defs.get_schema(n.op_type, opset, "")
                except onnx.defs.SchemaError:
                    continue
                params = schema.outputs
                dropped = []
                for i, o in enumerate(n.output):
                    optional = i < len(params) and params[i].option == onnx.defs.OpSchema.FormalParameterOption.Optional
                    if o and optional and o not in read:
                        dropped.append(o)
                        n.output[i] = ""
                trailing = len(n.output)
                while trailing > 1 and not n.output[trailing - 1]:
                    trailing -= 1
                if not dropped and trailing == len(n.output):
                    continue
                kept = list(n.output[:trailing])
                del n.output[:]
                n.output.extend(kept)
                where = n.name or kept[0]
                changes.append(f"{n.op_type} {where!r}: unlisted unused optional output(s) "
                               + (", ".join(repr(o) for o in dropped) or "(empty names)"))
        if not changes:
            return Outcome(model, skipped=["no node lists an optional output nothing reads"])
        return Outcome(out, changes)


REWRITES = (*REWRITES, DropUnusedOptionalOutputs)


# ITopKLayer's largest K (rules/trt/constraints.toml TopK.K_max, 10.1 and later).
TOPK_MAX_K = 3840


class TopKInRounds(_Equivalent):
    """Replace a `TopK` whose K exceeds TensorRT's limit by rounds of TopK of at most 3840.

    ## What it does
    `TopK(x, K)` along an axis of static length N, sorted, becomes ceil(K / 3840) rounds. Each
    round takes the TopK (at most 3840) of what is left; the elements it took are then moved out:
    a permutation computed with `ScatterElements` (1 where taken), `CumSum` of the taken and kept
    flags (the new place of every element: kept ones first, in their order), `ScatterElements` of
    the values and of their original indices to those places, and a `Slice` of the kept part. The
    rounds' values and original indices (`GatherElements` of the index map) are concatenated.

    ## When it applies
    TRT125 on `TopK` with a constant K above 3840 (ITopKLayer's limit from 10.1), `sorted=1`, and
    the axis length known. K from a static `Shape` (K = N, a full sort, as detection heads export it)
    counts once folded.

    ## Example
    `v, i = TopK(x, 5000)` with `x: float[1,10000]` becomes a TopK of 3840, a compaction of the
    6160 elements left, a TopK of 1160 of those, and `Concat`s of the values and indices.

    ## Safety
    Safe: TopK orders by value, ties by lower index. Every round takes the next elements of that
    order from the rest, and the compaction keeps the rest in index order, so the concatenation
    is the single TopK's result, values and indices. The flags are summed in FLOAT, exact for
    axis lengths up to 2^24.

    ## Resolves
    TRT125
    """

    name = "topk-in-rounds"
    summary = "split a TopK whose K exceeds 3840 into rounds of at most 3840"
    op_type = "TopK"
    pattern = "TopK with a constant K above 3840"
    resolves = ("TRT125",)

    def replace(self, b: Builder) -> None:
        if b.opset < 10:
            raise Skip("K is an attribute before opset 10")
        x = b.node.input[0]
        kv = b.value(b.input(1))
        if kv is None or kv.size != 1:
            raise Skip("K is not a constant")
        k = int(kv.reshape(-1)[0])
        if k <= TOPK_MAX_K:
            raise Skip(f"K = {k} is within TensorRT's limit of {TOPK_MAX_K}")
        if not b.attr("sorted", 1):
            raise Skip("sorted=0: the order of the results is unspecified, so no decomposition can be proven equal")
        shape = b.shape(x)
        if shape is None:
            raise Skip("the input's rank is unknown")
        axis = int(b.attr("axis", -1)) % len(shape)
        n = shape[axis]
        if not n:
            raise Skip("the length of the TopK axis is not static")
        if n >= 2**24:
            raise Skip("the axis is longer than 2^24 (the flags are summed in FLOAT)")
        largest = int(b.attr("largest", 1))
        f = TensorProto.FLOAT
        bshape = [1] * len(shape)
        bshape[axis] = n
        # The original index of every remaining element (the indices output's type is INT64).
        where = b.op("Expand", [b.tensor(np.arange(n, dtype=np.int64).reshape(bshape), f"{b.base}/positions"),
                                b.op("Shape", [x])])
        rest, left, taken = x, n, 0
        values, indices = [], []
        while taken < k:
            kr = min(TOPK_MAX_K, k - taken)
            v = b.op("TopK", [rest, b.ints([kr], "k")], outputs=2, axis=axis, largest=largest, sorted=1)
            i = b.nodes[-1].output[1]
            values.append(v)
            indices.append(i if taken == 0 else b.op("GatherElements", [where, i], axis=axis))
            taken += kr
            if taken >= k:
                break
            # Move the taken elements out: kept ones to 0..left-kr-1, taken ones after them.
            ones = b.op("ConstantOfShape", [b.op("Shape", [i])], value=onnx.helper.make_tensor("one", f, [1], [1.0]))
            zeros = b.op("ConstantOfShape", [b.op("Shape", [rest])], value=onnx.helper.make_tensor("zero", f, [1], [0.0]))
            hit = b.op("ScatterElements", [zeros, i, ones], axis=axis)
            keep = b.op("Sub", [b.const(1.0, f, "one"), hit])
            axis_c = b.const(axis, TensorProto.INT64, "axis")
            at_keep = b.op("Sub", [b.op("CumSum", [keep, axis_c]), b.const(1.0, f, "one")])
            at_hit = b.add(b.op("CumSum", [hit, axis_c]), b.const(float(left - kr - 1), f, "hit_offset"))
            place = b.cast(b.add(b.mul(keep, at_keep), b.mul(hit, at_hit)), TensorProto.INT64)
            starts, ends, axes = b.ints([0], "starts"), b.ints([left - kr], "ends"), b.ints([axis], "axes")
            rest = b.op("Slice", [b.op("ScatterElements", [rest, place, rest], axis=axis), starts, ends, axes])
            where = b.op("Slice", [b.op("ScatterElements", [where, place, where], axis=axis), starts, ends, axes])
            left -= kr
        b.op("Concat", values, b.node.output[0], axis=axis)
        if len(b.node.output) > 1 and b.node.output[1]:
            b.op("Concat", indices, b.node.output[1], axis=axis)


REWRITES = (*REWRITES, TopKInRounds)


# Largest interpolation matrix resize-antialias-to-matmul creates (elements).
ANTIALIAS_MAX_MATRIX = 16 * 2**20


def _resize_matrix(n_in: int, scale: float | None, size: int | None, attrs: dict) -> np.ndarray:
    """The [out, in] matrix of a Resize along one axis of length `n_in`: ONNX's reference
    implementation resizing the identity (each basis vector's image is one column)."""
    import onnx.reference

    scales = np.array([1.0, scale], np.float32) if scale is not None else None
    sizes = np.array([n_in, size], np.int64) if size is not None else None
    inputs = ["e", "", "scales" if scales is not None else "", "sizes" if sizes is not None else ""]
    while inputs and not inputs[-1]:
        inputs.pop()
    node = onnx.helper.make_node("Resize", inputs, ["y"], **attrs)
    inits = [onnx.numpy_helper.from_array(v, k) for k, v in (("scales", scales), ("sizes", sizes)) if v is not None]
    graph = onnx.helper.make_graph([node], "axis", [onnx.helper.make_tensor_value_info("e", TensorProto.FLOAT, [n_in, n_in])],
                                   [onnx.helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 19)])
    out = onnx.reference.ReferenceEvaluator(model).run(None, {"e": np.eye(n_in, dtype=np.float32)})[0]
    return np.ascontiguousarray(out.T.astype(np.float32))


class ResizeAntialiasToMatMul(_Equivalent):
    """Replace an antialiased `Resize` of the last one or two axes by `MatMul`s with its
    interpolation matrices.

    ## What it does
    A linear or cubic `Resize` with `antialias=1` is linear in its input and separable: along each
    resized axis it multiplies by a constant [out, in] matrix (the antialiasing filter widened by
    1/scale when downsampling). The matrix is computed when fixing, by ONNX's reference
    implementation of the same `Resize` applied to the identity along that axis, and the node
    becomes `MatMul(x, A_w^T)` for the last axis and `MatMul(A_h, ...)` for the one before it.

    ## When it applies
    TRT121 on `Resize` with `antialias=1` (10.0 and later reject it; 8.6 and 9.x ignore it, so the
    engine's output differs). Needs FLOAT data, constant scales or sizes, the input length static
    along the resized axes, every other axis unscaled and the resized ones among the last two,
    the stretch aspect-ratio policy, a coordinate mode other than `tf_crop_and_resize`, and at most
    16M elements per matrix.

    ## Example
    `y = Resize<mode="linear", antialias=1>(x, , [1, 1, 0.5, 0.5])` with `x: float[1,3,8,8]`
    becomes `y = MatMul(A, MatMul(x, A^T))` with `A: float[4,8]` (rows `[0.5, 0.375, 0.125, 0, ...]`,
    `[0, 0.125, 0.375, 0.375, 0.125, 0, ...]`, ...).

    ## Safety
    Safe: the same weighted sums of the same inputs (the operator's definition); only the order of
    the float additions differs (about 1e-7 relative in ONNX Runtime).

    ## Resolves
    TRT121
    """

    name = "resize-antialias-to-matmul"
    summary = "replace an antialiased Resize of the last axes by MatMuls with its interpolation matrices"
    op_type = "Resize"
    pattern = "Resize with antialias=1"
    resolves = ("TRT121",)

    def matches(self, node: onnx.NodeProto) -> bool:
        return super().matches(node) and any(a.name == "antialias" and a.i for a in node.attribute)

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        mode = _str(b.attr("mode")) or "nearest"
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in b.node.attribute}
        if mode not in ("linear", "cubic"):
            raise Skip(f"mode {mode}: antialias is defined for linear and cubic only (ONNX Runtime and ONNX's "
                       "reference implementation refuse the model)")
        if b.dtype(x) != TensorProto.FLOAT:
            raise Skip("the input is not FLOAT")
        if _str(attrs.get("coordinate_transformation_mode")) == "tf_crop_and_resize":
            raise Skip("tf_crop_and_resize reads a region of interest")
        if _str(attrs.get("keep_aspect_ratio_policy")) not in ("", "stretch"):
            raise Skip("keep_aspect_ratio_policy is not stretch")
        shape = b.shape(x)
        if shape is None:
            raise Skip("the input's rank is unknown")
        rank = len(shape)
        axes = [int(a) % rank for a in (attrs.get("axes") or range(rank))]
        scales, sizes = b.value(b.input(2)), b.value(b.input(3))
        if scales is not None and scales.size:
            per_axis = {a: (float(s), None) for a, s in zip(axes, np.asarray(scales, np.float32).reshape(-1))}
        elif sizes is not None and sizes.size:
            per_axis = {a: (None, int(s)) for a, s in zip(axes, np.asarray(sizes).reshape(-1))}
        else:
            raise Skip("the scales or sizes are not constant")
        resized = []
        for a, (scale, size) in sorted(per_axis.items()):
            if (scale is not None and scale == 1.0) or (size is not None and shape[a] and size == shape[a]):
                continue
            if a < rank - 2:
                raise Skip(f"axis {a} is resized (only the last two axes become MatMuls)")
            if not shape[a]:
                raise Skip(f"the length of resized axis {a} is not static")
            resized.append((a, scale, size))
        if not resized:
            raise Skip("no axis is resized")
        keep = {k: v for k, v in attrs.items() if k in ("mode", "coordinate_transformation_mode", "cubic_coeff_a",
                                                          "exclude_outside", "antialias")}
        mats = {}
        for a, scale, size in resized:
            out_len = size if size is not None else int(np.floor(shape[a] * np.float32(scale)))
            if out_len * shape[a] > ANTIALIAS_MAX_MATRIX:
                raise Skip(f"the matrix for axis {a} would have more than {ANTIALIAS_MAX_MATRIX} elements")
            mats[a] = _resize_matrix(shape[a], scale, size, keep)
        y = x
        for a in sorted(mats, reverse=True):
            out = b.node.output[0] if a == min(mats) else None
            if a == rank - 1:
                y = b.op("MatMul", [y, b.tensor(mats[a].T.copy(), f"{b.base}/weights_axis{a}")], out)
            else:
                y = b.op("MatMul", [b.tensor(mats[a], f"{b.base}/weights_axis{a}"), y], out)


REWRITES = (*REWRITES, ResizeAntialiasToMatMul)


class RuntimeAxisToIf(_Equivalent):
    """Replace an op whose single axis comes from a run-time value by `If`s over the axes it can be.

    ## What it does
    `op(x, axis)` where `axis` holds one value computed at run time (a graph input, a value derived
    from a dynamic dimension) becomes a chain of `If`s: `If(axis == 0 or axis == 0 - r)` runs the op
    with the constant axis 0, its else branch `If(axis == 1 or ...)` with axis 1, and so on; the last
    else branch takes the last possible axis. Every branch holds the op with a constant axis, which
    the importer reads at build time; the condition is computed at run time.

    ## When it applies
    TRT122 on the axes/axis input of `CumSum`, `Squeeze`, `Unsqueeze`, `Slice` and the `Reduce*` ops
    when that input holds exactly one value (shape `[1]` or a scalar) and the data's rank is known
    (at most 8). For `Squeeze`, only the axes whose length can be 1 are candidates; for `Unsqueeze`
    the output rank counts. The branches' outputs have the same rank (their sizes may differ), as
    TensorRT's conditional requires.

    ## Example
    `y = CumSum(x, ax)` with `x: float[2,5]` and `ax` a graph input becomes
    `y = If(Or(Equal(ax, 0), Equal(ax, -2))) <then: CumSum(x, [0]), else: CumSum(x, [1])>`.

    ## Safety
    Safe: for every axis the original accepts, the branch that runs computes the op with that axis.
    (An axis outside the valid range, which makes the original fail, selects the last branch.)

    ## Resolves
    TRT122
    """

    name = "runtime-axis-to-if"
    summary = "replace an op with one run-time axis by Ifs over the axes it can be"
    op_type = "op with a run-time axis"
    pattern = "CumSum/Squeeze/Unsqueeze/Slice/Reduce* with one axis computed at run time"
    resolves = ("TRT122",)

    def matches(self, node: onnx.NodeProto) -> bool:
        i = RUNTIME_AXIS_INPUT.get(node.op_type)
        return node.domain in ("", "ai.onnx") and i is not None and len(node.input) > i and bool(node.input[i])

    def replace(self, b: Builder) -> None:
        op = b.node.op_type
        pos = RUNTIME_AXIS_INPUT[op]
        if op.startswith("Reduce") and b.opset < (13 if op == "ReduceSum" else 18):
            raise Skip("axes is an attribute at this opset")
        ax = b.node.input[pos]
        if b.value(ax) is not None:
            raise Skip("the axis is a constant")
        ax_shape = b.shape(ax)
        if ax_shape is None or int(np.prod(ax_shape or [1])) != 1 or any(d is None for d in ax_shape):
            raise Skip("the axes input does not hold exactly one value")
        x = b.node.input[0]
        shape = b.shape(x)
        if shape is None or len(shape) > 8:
            raise Skip("the data's rank is unknown" if shape is None else "the data has more than 8 dimensions")
        rank = len(shape) + (1 if op == "Unsqueeze" else 0)
        candidates = [a for a in range(rank) if op != "Squeeze" or shape[a] in (None, 1)]
        if not candidates:
            raise Skip("no axis of length 1 to squeeze")
        out_type = b.dtype(x) or TensorProto.FLOAT
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in b.node.attribute}
        if b.dtype(ax) not in (None, TensorProto.INT64):
            ax = b.cast(ax, TensorProto.INT64)
        scalar = b.op("Reshape", [ax, b.ints([], "scalar_shape")])

        def branch(axis: int) -> onnx.GraphProto:
            inputs = list(b.node.input)
            inputs[pos] = b.ints([axis] if op != "CumSum" else axis, "axis")
            out = b.info.unique(f"{b.base}/axis{axis}_output")
            node = onnx.helper.make_node(op, inputs, [out], name=b.info.unique(f"{b.base}/axis{axis}"), **attrs)
            return onnx.helper.make_graph([node], b.info.unique(f"{b.base}/axis{axis}_branch"), [],
                                          [onnx.helper.make_tensor_value_info(out, out_type, None)])

        def chain(rest: list[int], out: str | None) -> str:
            if len(rest) == 1:
                raise AssertionError("chain needs two candidates")
            a = rest[0]
            is_a = b.op("Equal", [scalar, b.const(a, TensorProto.INT64, "axis_value")])
            if a - rank != a:
                is_a = b.op("Or", [is_a, b.op("Equal", [scalar, b.const(a - rank, TensorProto.INT64, "axis_value")])])
            other = branch(rest[1]) if len(rest) == 2 else None
            if other is None:
                # The else branch is itself an If over the remaining axes: built into a graph of its own.
                saved, b.nodes = b.nodes, []
                inner_out = b.info.unique(f"{b.base}/else_output")
                chain(rest[1:], inner_out)
                other = onnx.helper.make_graph(b.nodes, b.info.unique(f"{b.base}/else_branch"), [],
                                               [onnx.helper.make_tensor_value_info(inner_out, out_type, None)])
                b.nodes = saved
            return b.op("If", [is_a], out, then_branch=branch(a), else_branch=other)

        if len(candidates) == 1:
            inputs = list(b.node.input)
            inputs[pos] = b.ints([candidates[0]] if op != "CumSum" else candidates[0], "axis")
            b.op(op, inputs, b.node.output[0], **attrs)
            return
        chain(candidates, b.node.output[0])


REWRITES = (*REWRITES, RuntimeAxisToIf)
