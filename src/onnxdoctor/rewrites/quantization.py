"""Integer quantized ops TensorRT cannot import — ONNX Runtime's dynamic quantization
(`DynamicQuantizeLinear` + `MatMulInteger`/`ConvInteger`) and the contrib ops ONNX Runtime fuses it
into — rewritten to float ops whose weights are dequantized when the rewrite runs.

Why float and not Q/DQ: dynamic quantization computes the activation scale and zero point at run
time (min/max of each tensor), and TensorRT's QuantizeLinear needs a build-time scale with a zero
point of 0, so no Q/DQ form of the activations exists that TensorRT imports. The weights are
constant: their dequantized values are what the integer kernel multiplies by, so the float op
computes what ONNX Runtime computes, minus the rounding of the activations to 8 bits.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .._proto import bodies, graphs, outer_reads
from ..findings import Applicability
from .base import Outcome, Rewrite, RewriteContext
from .substitutions._build import Builder, ModelInfo, Skip, Substitution

MS = "com.microsoft"

# Proof tolerance of the rewrites that drop the 8-bit rounding of activations. The quantized model
# differs from the float one by up to half a quantization step (range/255) per activation, summed
# over each dot product: an error proportional to the scale of the values, so the absolute
# tolerance is a share of the largest reference output (at least _ATOL).
_ATOL = 2e-2
_RTOL = 2e-2
_SHARE_OF_PEAK = 3e-2


def _tolerance(ctx: RewriteContext) -> tuple[float, float]:
    peak = 0.0
    for arr in (ctx.reference or {}).values():
        a = np.asarray(arr)
        if a.dtype.kind == "f" and a.size:
            finite = a[np.isfinite(a)]
            if finite.size:
                peak = max(peak, float(np.max(np.abs(finite))))
    return max(_ATOL, _SHARE_OF_PEAK * peak), _RTOL


class _WithinTolerance:
    """The quantization rewrites that drop a rounding: unsafe, proven with `_tolerance`."""

    applicability = Applicability.UNSAFE
    atol = _ATOL
    rtol = _RTOL

    def tolerances(self, ctx: RewriteContext) -> tuple[float | None, float | None]:
        return _tolerance(ctx)


_CONV_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


def _dequantized(q: np.ndarray, zero_point: np.ndarray | None, scale: np.ndarray) -> np.ndarray:
    """(q - zero_point) * scale in float32, numpy broadcasting (the caller shapes zp and scale)."""
    centred = q.astype(np.int32) - (0 if zero_point is None else zero_point.astype(np.int32))
    return (centred.astype(np.float32) * scale.astype(np.float32)).astype(np.float32)


def _weight_name(quantized: str) -> str:
    base = quantized.removesuffix("_quantized")
    return f"{base}_dequantized"


class _Graph:
    """Readers of every value of one graph, for matching chains of nodes. A node with control-flow
    bodies reads what its bodies read from this graph (outer-scope references), so a value a body
    reads is never taken for read by one node only, nor removed."""

    def __init__(self, g: onnx.GraphProto):
        self.g = g
        self.readers: dict[str, list[int]] = {}
        self.producer: dict[str, int] = {}
        for i, n in enumerate(g.node):
            outer = [name for body in bodies(n) for name in outer_reads(body)]
            for name in dict.fromkeys([*n.input, *outer]):
                if name:
                    self.readers.setdefault(name, []).append(i)
            for name in n.output:
                if name:
                    self.producer[name] = i
        self.outputs = {o.name for o in g.output}

    def only_reader(self, name: str) -> int | None:
        """The index of the single node reading `name`, when exactly one does and it is not a graph output."""
        r = self.readers.get(name, [])
        if len(r) != 1 or name in self.outputs:
            return None
        return r[0]

    def node(self, index: int | None) -> onnx.NodeProto | None:
        return None if index is None else self.g.node[index]


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _is(node: onnx.NodeProto | None, op_type: str, domain: str = "") -> bool:
    return node is not None and node.op_type == op_type and (node.domain or "") in ((domain,) if domain else ("", "ai.onnx"))


class DynamicQuantizationToFloat(_WithinTolerance, Rewrite):
    """Replace ONNX Runtime's dynamic quantization chains by float `MatMul`/`Conv` with dequantized weights.

    ## What it does
    `onnxruntime.quantization.quantize_dynamic` writes every quantized MatMul/Gemm/Conv as

        xq, xs, xz = DynamicQuantizeLinear(x)
        acc = MatMulInteger(xq, Wq, xz, wz)        # or ConvInteger(xq, Wq, xz, wz)
        y = Mul(Cast<to=FLOAT>(acc), Mul(xs, ws))

    and ONNX Runtime's optimizer may fuse the last three into
    `com.microsoft::MatMulIntegerToFloat(xq, Wq, xs, ws, xz, wz, bias)`. Each such chain becomes
    `y = MatMul(x, W)` (or `Conv(x, W)` with the same attributes, or `MatMul` + `Add(bias)`) where
    `W = (Wq - wz) * ws` is computed now and stored as a FLOAT initializer. A weight scale that does
    not broadcast along the output columns (channels) stays a separate `Mul`. The
    `DynamicQuantizeLinear` node goes when nothing else reads it.

    This is the **float** form, not Q/DQ: the activation scale is computed at run time, and
    TensorRT's QuantizeLinear needs a build-time scale and a zero point of 0, so the activations have
    no Q/DQ form TensorRT imports. To run the layers in INT8 on TensorRT, quantize the float model
    with Q/DQ and calibration data (e.g. NVIDIA ModelOpt).

    ## When it applies
    TRT101 on `DynamicQuantizeLinear`, `MatMulInteger` and `ConvInteger` (no TensorRT release
    imports them), TRT102 on `com.microsoft::MatMulIntegerToFloat`, and TRT113 on the UINT8 values
    `DynamicQuantizeLinear` produces. In the main graph and inside `If`/`Loop`/`Scan` bodies,
    including a chain in a body whose `DynamicQuantizeLinear` is in an enclosing graph (where ONNX
    Runtime's quantizer puts it); that node goes once no graph reads it. Skipped (with the reason)
    for a `MatMulInteger`/`ConvInteger` whose input is not a `DynamicQuantizeLinear` output or whose
    zero point is not that node's, for non-constant weights, scales or zero points, and when the
    integer result is read by anything but one `Cast` to FLOAT followed by the scale `Mul`.

    ## Example
    `xq, xs, xz = DynamicQuantizeLinear(x); s = Mul(xs, ws); a = MatMulInteger(xq, Wq, xz, wz);
    y = Mul(Cast<to=1>(a), s)` with `Wq: int8[128,16]`, `ws = 0.0007`, `wz = 0` becomes
    `y = MatMul(x, W)` with `W: float[128,16] = Wq * 0.0007`.

    ## Safety
    Unsafe (within tolerance): the weights keep exactly their quantized values, but the activations
    are no longer rounded to 8 bits, which changes outputs by up to half a quantization step
    (range/255) per activation, summed over each dot product, so the error grows with the scale of
    the values. Proven in ONNX Runtime against the quantized model with rtol 2e-2 and an atol of 3%
    of the largest reference output value (at least 2e-2). The weights take 4 bytes per value
    instead of 1.

    ## Resolves
    TRT101, TRT102, TRT113
    """

    name = "dynamic-quantization-to-float"
    reads_weights = True  # the fix pipeline gives it the model with its weights
    summary = "replace DynamicQuantizeLinear + MatMulInteger/ConvInteger chains by float MatMul/Conv"
    phase = 30
    resolves = ("TRT101", "TRT102", "TRT113")
    ops: ClassVar[tuple[tuple[str, str], ...]] = (
        ("", "DynamicQuantizeLinear"), ("", "MatMulInteger"), ("", "ConvInteger"), (MS, "MatMulIntegerToFloat"),
    )

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        out = onnx.ModelProto()
        out.CopyFrom(model)
        info = ModelInfo(out)
        changes: list[str] = []
        skipped: list[str] = []
        sources: set[str] = set()  # the DynamicQuantizeLinear outputs a replaced chain read
        # Innermost graphs first: a chain inside an If/Loop/Scan body may read a DynamicQuantizeLinear
        # of an enclosing graph (ONNX Runtime's quantizer hoists it there), which goes once unread.
        for gi, g in reversed(list(enumerate(graphs(out.graph)))):
            self._graph(info, gi, g, ctx, changes, skipped, sources)
        if not changes:
            return Outcome(model, skipped=skipped or ["no DynamicQuantizeLinear, MatMulInteger or ConvInteger node"])
        for g in graphs(out.graph):
            view = _Graph(g)
            unread = [n for n in g.node if _is(n, "DynamicQuantizeLinear") and n.output[0] in sources
                      and not any(view.readers.get(o) or o in view.outputs for o in n.output)]
            for n in unread:
                g.node.remove(n)
        return Outcome(out, changes, skipped)

    @staticmethod
    def _quantizer(info: ModelInfo, gi: int, view: _Graph, name: str) -> onnx.NodeProto | None:
        """The DynamicQuantizeLinear whose quantized output is `name`: in this graph, or in an
        enclosing one when `name` is an outer-scope reference."""
        d = view.node(view.producer.get(name))
        if d is None:
            d = info.outer_producer(gi, name)
        return d if _is(d, "DynamicQuantizeLinear") and d.output[0] == name else None

    def _graph(self, info: ModelInfo, gi: int, g: onnx.GraphProto, ctx, changes: list[str], skipped: list[str],
               sources: set[str]) -> None:
        view = _Graph(g)
        remove: set[int] = set()
        insert: dict[int, list[onnx.NodeProto]] = {}  # new nodes, placed where the chain's last node was
        for ci, c in enumerate(g.node):
            if not (_is(c, "MatMulInteger") or _is(c, "ConvInteger") or _is(c, "MatMulIntegerToFloat", MS)):
                continue
            where = c.name or c.output[0]
            d = self._quantizer(info, gi, view, c.input[0])
            if d is None:
                skipped.append(f"{c.op_type} {where!r}: its input does not come from DynamicQuantizeLinear "
                               "(static integer quantization has no TensorRT form this rewrite knows)")
                continue
            b = Builder(info, gi, c, ctx)
            try:
                chain = self._integer_to_float(b, d, ci) if c.domain == MS else self._integer_chain(view, b, d, ci)
            except Skip as e:
                skipped.append(f"{c.op_type} {where!r}: {e}")
                continue
            sources.add(d.output[0])
            remove.update(chain)
            insert.setdefault(max(chain), []).extend(b.nodes)
            g.initializer.extend(b.inits)
            info.constants.update(b.new_constants)
            ops = ", ".join(dict.fromkeys(n.op_type for n in b.nodes))
            changes.append(f"replaced {c.op_type} {where!r} ({len(chain)} node(s) fed by DynamicQuantizeLinear) by {ops} "
                           "with dequantized FLOAT weights")
        if not remove:
            return
        # What only the replaced chains read (the scale products, a run-time bias quantization,
        # DynamicQuantizeLinear itself) goes too.
        needed = {name for nodes in insert.values() for n in nodes for name in n.input}
        changed = True
        while changed:
            changed = False
            for i, n in enumerate(g.node):
                if i in remove or any(o in view.outputs or o in needed for o in n.output):
                    continue
                read = [r for o in n.output for r in view.readers.get(o, [])]
                if read and all(r in remove for r in read):
                    remove.add(i)
                    changed = True
        new_nodes: list[onnx.NodeProto] = []
        for i, n in enumerate(g.node):
            if i not in remove:
                new_nodes.append(n)
            new_nodes.extend(insert.get(i, []))
        del g.node[:]
        g.node.extend(new_nodes)

    def _integer_chain(self, view: _Graph, b: Builder, d: onnx.NodeProto, ci: int) -> list[int]:
        """Match `Mul(Cast<to=FLOAT>(MatMulInteger|ConvInteger(xq, W, xz, wz) [+ quantized bias]), Mul(xs, ws))`
        and emit the float op; returns the indexes of the nodes replaced."""
        g = view.g
        c = g.node[ci]
        x, q, xs, xz = d.input[0], d.output[0], d.output[1], d.output[2]
        conv = c.op_type == "ConvInteger"
        if c.input[0] != q:
            raise Skip("the quantized activation is not its first input")
        if b.input(2) != xz:
            raise Skip("its input zero point is not DynamicQuantizeLinear's")
        w = b.value(c.input[1])
        if w is None:
            raise Skip("the weight is not a constant")
        wz = b.value(b.input(3)) if b.input(3) else None
        if b.input(3) and wz is None:
            raise Skip("the weight zero point is not a constant")
        replaced = [ci]
        acc = c.output[0]
        bias = None
        at = view.only_reader(acc)
        if _is(view.node(at), "Add"):
            # Older ONNX Runtime quantizers add the bias in INT32, quantized at run time with the
            # same scale: Cast<to=INT32>(Floor(Div(bias, Mul(xs, ws)))), reshaped to the output.
            add = view.node(at)
            bias, bias_scale = self._quantized_bias(view, b, add.input[1] if add.input[0] == acc else add.input[0], xs)
            replaced.append(at)
            acc = add.output[0]
            at = view.only_reader(acc)
        cast = view.node(at)
        if not _is(cast, "Cast") or _attr(cast, "to") != TensorProto.FLOAT:
            raise Skip("the integer result is not read by exactly one Cast to FLOAT")
        replaced.append(at)
        at = view.only_reader(cast.output[0])
        mul = view.node(at)
        if not _is(mul, "Mul"):
            raise Skip("the FLOAT result is not read by exactly one Mul")
        replaced.append(at)
        ws = self._weight_scale(view, b, mul.input[1] if mul.input[0] == cast.output[0] else mul.input[0], xs)
        if ws is None:
            raise Skip("the output scale is not DynamicQuantizeLinear's scale times a constant weight scale")
        if bias is not None and (bias_scale.shape != ws.shape or not np.array_equal(bias_scale, ws)):
            raise Skip("the bias is quantized with another scale than the output")
        y = mul.output[0]
        if conv:
            if wz is not None and wz.ndim == 1 and wz.size > 1:
                wz = wz.reshape((-1,) + (1,) * (w.ndim - 1))
            centred = _dequantized(w, wz, np.float32(1.0))
            rank = w.ndim  # the output's rank
            padded = (1,) * max(0, rank - ws.ndim) + tuple(ws.shape)
            if ws.size == 1 and ws.ndim <= rank:
                weight, rest = centred * np.float32(ws.reshape(-1)[0]), None
            elif len(padded) == rank and padded[1] == w.shape[0] and all(n == 1 for k, n in enumerate(padded) if k != 1):
                weight, rest = centred * ws.reshape((-1,) + (1,) * (rank - 1)).astype(np.float32), None
            else:
                weight, rest = centred, ws
            attrs = {a: b.attr(a) for a in _CONV_ATTRS}
            if isinstance(attrs["auto_pad"], bytes):
                attrs["auto_pad"] = attrs["auto_pad"].decode()
            inputs = [x, b.tensor(weight.astype(np.float32), _weight_name(c.input[1]))]
            channel_bias = bias is not None and rest is None and bias.size == w.shape[0] and (
                bias.ndim == 1 or (bias.ndim == rank and bias.shape[1] == w.shape[0]))
            if channel_bias:
                inputs.append(b.tensor(bias.reshape(-1), f"{b.base}/bias"))
            last = y if (bias is None or channel_bias) and rest is None else None
            out = b.op("Conv", inputs, last, **attrs)
        else:
            centred = _dequantized(w, wz, np.float32(1.0))
            if ws.ndim < 2 or ws.shape[-2] == 1:
                weight, rest = centred * ws.astype(np.float32), None
            else:
                weight, rest = centred, ws
            last = y if bias is None and rest is None else None
            out = b.op("MatMul", [x, b.tensor(weight.astype(np.float32), _weight_name(c.input[1]))], last)
            channel_bias = False
        if rest is not None:
            out = b.mul(out, b.tensor(rest.astype(np.float32), f"{b.base}/weight_scale"), y if bias is None else None)
        if bias is not None and not channel_bias:
            b.add(out, b.tensor(bias, f"{b.base}/bias"), y)
        return replaced

    def _weight_scale(self, view: _Graph, b: Builder, scale: str, xs: str) -> np.ndarray | None:
        """ws when `scale` is `Mul(xs, ws)` with a constant ws."""
        smul = view.node(view.producer.get(scale))
        if _is(smul, "Mul") and xs in smul.input:
            return b.value(smul.input[1] if smul.input[0] == xs else smul.input[0])
        return None

    def _quantized_bias(self, view: _Graph, b: Builder, name: str, xs: str) -> tuple[np.ndarray, np.ndarray]:
        """The FLOAT bias (reshaped as the graph reshapes it) and its weight scale, from
        `[Reshape(]Cast<to=INT32>(Floor|Round(Div(bias, Mul(xs, ws))))[, shape)]`."""
        why = Skip("the integer result is added to something other than a bias quantized at run time")
        node = view.node(view.producer.get(name))
        shape = None
        if _is(node, "Reshape"):
            shape = b.value(node.input[1])
            if shape is None:
                raise why
            node = view.node(view.producer.get(node.input[0]))
        if not _is(node, "Cast") or _attr(node, "to") != TensorProto.INT32:
            raise why
        node = view.node(view.producer.get(node.input[0]))
        if not (_is(node, "Floor") or _is(node, "Round")):
            raise why
        node = view.node(view.producer.get(node.input[0]))
        if not _is(node, "Div"):
            raise why
        bias = b.value(node.input[0])
        ws = self._weight_scale(view, b, node.input[1], xs)
        if bias is None or ws is None:
            raise why
        bias = bias.astype(np.float32)
        if shape is not None:
            dims = [int(k) for k in shape.reshape(-1)]
            dims = [bias.shape[i] if k == 0 and i < bias.ndim else k for i, k in enumerate(dims)]
            try:
                bias = bias.reshape(dims)
            except ValueError:
                raise why from None
        return bias, ws

    def _integer_to_float(self, b: Builder, d: onnx.NodeProto, ci: int) -> list[int]:
        """`MatMulIntegerToFloat(xq, W, xs, ws, xz, wz, bias)` fed by DynamicQuantizeLinear -> MatMul(x, W') (+ bias)."""
        c = b.node
        x, q, xs, xz = d.input[0], d.output[0], d.output[1], d.output[2]
        if c.input[0] != q or b.input(2) != xs or b.input(4) != xz:
            raise Skip("its input, scale and zero point are not all DynamicQuantizeLinear's outputs")
        weight = _constant_weight(b, 1, 3, 5)
        _matmul_bias(b, x, b.tensor(weight, _weight_name(c.input[1])), b.input(6), c.output[0])
        return [ci]


def _constant_weight(b: Builder, w_at: int, scale_at: int, zp_at: int | None) -> np.ndarray:
    """The dequantized FLOAT value of a quantized MatMul weight `[..., K, N]` given by inputs
    (weight, scale, zero point); the scale and zero point are per tensor or per column."""
    w = b.value(b.input(w_at))
    if w is None:
        raise Skip("the quantized weight is not a constant")
    scale = b.value(b.input(scale_at))
    if scale is None:
        raise Skip("the weight scale is not a constant")
    zp = None
    if zp_at is not None and b.input(zp_at):
        zp = b.value(b.input(zp_at))
        if zp is None:
            raise Skip("the weight zero point is not a constant")
    for arr, what in ((scale, "scale"), (zp, "zero point")):
        if arr is not None and arr.size > 1 and arr.ndim >= 2 and arr.shape[-2] != 1:
            raise Skip(f"the weight {what} of shape {list(arr.shape)} is not per tensor or per column")
    return _dequantized(w, zp, scale)


def _matmul_bias(b: Builder, x: str, weight: str, bias: str, y: str) -> None:
    if bias:
        b.add(b.op("MatMul", [x, weight]), bias, y)
    else:
        b.op("MatMul", [x, weight], y)


class _DynamicContrib(_WithinTolerance, Substitution):
    domain = MS
    resolves = ("TRT102",)


class DynamicQuantizeMatmulToMatmul(_DynamicContrib):
    """Replace `com.microsoft::DynamicQuantizeMatMul` by `MatMul` (+ `Add` of the bias) with dequantized weights.

    ## What it does
    ONNX Runtime's optimizer fuses a dynamically quantized MatMul into
    `DynamicQuantizeMatMul(A, B, b_scale, b_zero_point, bias)`: A is FLOAT and quantized to 8 bits
    inside the kernel, B is a constant INT8/UINT8 weight. It becomes `MatMul(A, W)` (+ `Add(bias)`)
    with `W = (B - b_zero_point) * b_scale` computed now and stored as a FLOAT initializer. This is
    the float form; see `dynamic-quantization-to-float` for why there is no Q/DQ form TensorRT
    imports.

    ## When it applies
    TRT102 on `com.microsoft::DynamicQuantizeMatMul`; no TensorRT release imports it. Skipped when
    the weight, its scale or its zero point is not a constant, or the scale is neither per tensor
    nor per column.

    ## Example
    `y = com.microsoft.DynamicQuantizeMatMul(a, Wq, s, z, bias)` becomes
    `y = Add(MatMul(a, W), bias)` with `W = (Wq - z) * s`.

    ## Safety
    Unsafe (within tolerance): A is no longer rounded to 8 bits. Proven in ONNX Runtime like
    `dynamic-quantization-to-float`: rtol 2e-2, atol 3% of the largest reference output value (at
    least 2e-2).

    ## Resolves
    TRT102
    """

    name = "dynamic-quantize-matmul-to-matmul"
    reads_weights = True  # the fix pipeline gives it the model with its weights
    summary = "replace com.microsoft::DynamicQuantizeMatMul by MatMul with dequantized weights"
    op_type = "DynamicQuantizeMatMul"

    def replace(self, b: Builder) -> None:
        weight = _constant_weight(b, 1, 2, 3)
        _matmul_bias(b, b.node.input[0], b.tensor(weight, _weight_name(b.node.input[1])), b.input(4), b.node.output[0])


class DynamicQuantizeLstmToLstm(_DynamicContrib):
    """Replace `com.microsoft::DynamicQuantizeLSTM` by `LSTM` with dequantized weights.

    ## What it does
    `onnxruntime.quantization.quantize_dynamic` turns an `LSTM` into
    `DynamicQuantizeLSTM(X, W, R, B, sequence_lens, initial_h, initial_c, P, W_scale, W_zero_point,
    R_scale, R_zero_point)` with INT8/UINT8 weights stored transposed (`[directions, input, 4*hidden]`).
    It becomes the ONNX `LSTM` with the same attributes and optional inputs, and FLOAT weights
    `W = transpose((Wq - W_zero_point) * W_scale)` (per direction or per direction and gate column)
    computed now. This is the float form; the kernel's per-step quantization of X and H has no
    TensorRT equivalent.

    ## When it applies
    TRT102 on `com.microsoft::DynamicQuantizeLSTM`; no TensorRT release imports it. Skipped when a
    weight, scale or zero point is not a constant.

    ## Example
    `Y, Yh, Yc = com.microsoft.DynamicQuantizeLSTM<hidden_size=12>(x, Wq, Rq, B, , h0, c0, , ws, wz, rs, rz)`
    becomes `Y, Yh, Yc = LSTM<hidden_size=12>(x, W, R, B, , h0, c0)`.

    ## Safety
    Unsafe (within tolerance): the inputs and hidden states are no longer rounded to 8 bits at each
    step. Proven in ONNX Runtime like `dynamic-quantization-to-float`: rtol 2e-2, atol 3% of the
    largest reference output value (at least 2e-2).

    ## Resolves
    TRT102
    """

    name = "dynamic-quantize-lstm-to-lstm"
    reads_weights = True  # the fix pipeline gives it the model with its weights
    summary = "replace com.microsoft::DynamicQuantizeLSTM by LSTM with dequantized weights"
    op_type = "DynamicQuantizeLSTM"

    def replace(self, b: Builder) -> None:
        weights = []
        for w_at, s_at, z_at in ((1, 8, 9), (2, 10, 11)):
            w = b.value(b.input(w_at))
            scale = b.value(b.input(s_at))
            zp = b.value(b.input(z_at)) if b.input(z_at) else None
            if w is None or scale is None or (b.input(z_at) and zp is None):
                raise Skip("a quantized weight, its scale or its zero point is not a constant")
            dirs = w.shape[0]
            shaped = [None if a is None else a.reshape(dirs, 1, -1) for a in (zp, scale)]
            deq = _dequantized(w, shaped[0], shaped[1])
            weights.append(b.tensor(np.ascontiguousarray(deq.transpose(0, 2, 1)), _weight_name(b.input(w_at))))
        inputs = [b.node.input[0], *weights] + [b.input(i) for i in range(3, 8)]
        while inputs and not inputs[-1]:
            inputs.pop()
        attrs = {a.name: helper.get_attribute_value(a) for a in b.node.attribute}
        attrs = {k: (v.decode() if isinstance(v, bytes) else [s.decode() if isinstance(s, bytes) else s for s in v]
                     if isinstance(v, list) else v) for k, v in attrs.items()}
        name = b.info.unique(f"{b.base}/LSTM")
        b.nodes.append(helper.make_node("LSTM", inputs, list(b.node.output), name=name, **attrs))



def _unpack_codes(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """`count` codes of `bits` bits from each row of `packed` (uint8 [..., bytes]), low bits first."""
    per_byte = 8 // bits
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    codes = (packed[..., None] >> shifts) & np.uint8((1 << bits) - 1)
    return codes.reshape(*packed.shape[:-1], -1)[..., :count]


class MatmulNbitsToMatmul(_DynamicContrib):
    """Replace `com.microsoft::MatMulNBits` (block-quantized 2/4/8-bit weights) by `MatMul` with dequantized weights.

    ## What it does
    ONNX Runtime's weight-only quantizer (`MatMulNBitsQuantizer`, and the int4 models of ONNX
    Runtime GenAI) writes `MatMul(A, W)` as `MatMulNBits(A, B, scales, zero_points, g_idx, bias)`:
    `B` holds `N` rows of `K` codes of `bits` bits packed low-first, with one scale (and zero
    point, packed the same way or in A's type; 2^(bits-1) when absent) per `block_size` codes. It
    becomes `MatMul(A, W)` (+ `Add(bias)`) with `W[k, n] = (code - zero_point) * scale` computed
    now and stored in A's element type. This is the float form: the weights take 2 (FLOAT16) or 4
    bytes per value instead of `bits / 8`.

    ## When it applies
    TRT102 on `com.microsoft::MatMulNBits`; no TensorRT release imports it. Skipped for `g_idx`
    (act-order) weights, bit widths other than 2, 4 and 8, and weights, scales or zero points that
    are not constants.

    ## Example
    `y = com.microsoft.MatMulNBits<K=64, N=48, bits=4, block_size=16>(x, Bq, s)` becomes
    `y = MatMul(x, W)` with `W: float[64,48]`.

    ## Safety
    Unsafe (within tolerance): with `accuracy_level` 0 to 3 the kernel dequantizes the same way
    and the results agree to float rounding; with `accuracy_level=4` it also rounds A to 8 bits,
    which the float form does not. Proven in ONNX Runtime like `dynamic-quantization-to-float`.

    ## Resolves
    TRT102
    """

    name = "matmul-nbits-to-matmul"
    summary = "replace com.microsoft::MatMulNBits by MatMul with dequantized weights"
    op_type = "MatMulNBits"

    def replace(self, b: Builder) -> None:
        k, n = int(b.attr("K")), int(b.attr("N"))
        bits, block = int(b.attr("bits", 4)), int(b.attr("block_size"))
        if bits not in (2, 4, 8):
            raise Skip(f"{bits}-bit codes")
        if b.input(4):
            raise Skip("g_idx (act-order) weights")
        packed, scales = b.value(b.input(1)), b.value(b.input(2))
        if packed is None or scales is None:
            raise Skip("the packed weights or the scales are not constants")
        blocks = -(-k // block)
        codes = _unpack_codes(packed.reshape(n, blocks, -1), bits, block).reshape(n, blocks, block).astype(np.float32)
        scales = scales.astype(np.float32).reshape(n, blocks)
        zp_name = b.input(3)
        if zp_name:
            zp = b.value(zp_name)
            if zp is None:
                raise Skip("the zero points are not a constant")
            if zp.dtype == np.uint8:
                zp = _unpack_codes(zp.reshape(n, -1), bits, blocks).astype(np.float32)
            zp = zp.astype(np.float32).reshape(n, blocks)
        else:
            zp = np.full((n, blocks), float(1 << (bits - 1)), np.float32)
        weight = ((codes - zp[..., None]) * scales[..., None]).reshape(n, blocks * block)[:, :k]
        dtype = b.dtype(b.node.input[0]) or TensorProto.FLOAT
        weight = np.ascontiguousarray(weight.T).astype(helper.tensor_dtype_to_np_dtype(dtype))
        _matmul_bias(b, b.node.input[0], b.tensor(weight, _weight_name(b.input(1))), b.input(5), b.node.output[0])

# -- static quantization: QOperator ops and Q/DQ TensorRT cannot import ---------------------------

_QRANGE = {TensorProto.INT8: (-128, 127), TensorProto.UINT8: (0, 255)}
# Ops that move or select quantized codes without computing on them (MaxPool: a maximum, which
# any increasing re-labelling of the codes keeps).
_MOVES = ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "MaxPool", "Slice", "Expand",
          "Gather", "DepthToSpace", "SpaceToDepth", "Tile")


def _per_axis(value: np.ndarray, rank: int, axis: int) -> np.ndarray:
    """A per-tensor (scalar) or per-axis (1-D) quantization parameter shaped to broadcast over a
    rank-`rank` tensor along `axis`."""
    if value.size == 1:
        return value.reshape(())
    shape = [1] * rank
    shape[axis % rank] = -1
    return value.reshape(shape)


class QlinearToQdq(_WithinTolerance, Substitution):
    """Replace `QLinearConv` / `QLinearMatMul` by `DequantizeLinear` -> `Conv`/`MatMul` -> `QuantizeLinear`.

    ## What it does
    ONNX Runtime's static quantization in the QOperator format writes quantized layers as
    `QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B)` and `QLinearMatMul`. Each
    becomes the same layer in the Q/DQ format TensorRT imports: `DequantizeLinear` of the input,
    the float `Conv` or `MatMul`, and `QuantizeLinear` to the output's scale and zero point. A
    constant INT8 weight with zero point 0 stays INT8 behind a `DequantizeLinear` (per output
    channel or column), so TensorRT can run the layer in INT8; other weights are dequantized now
    to FLOAT initializers. The INT32 bias becomes `B * x_scale * w_scale` in FLOAT.

    This is the **Q/DQ** form: the quantization parameters are constants, which TensorRT's Q/DQ
    needs. Activation zero points other than 0 (and UINT8 activations) still need
    `qdq-to-symmetric-int8` before TensorRT imports them.

    ## When it applies
    TRT101 on `QLinearConv` and `QLinearMatMul` (no TensorRT release imports them) and TRT113 on
    the UINT8 tensors they read and write. Skipped when a
    scale, a zero point or the bias is not a constant, or a per-column weight of `QLinearMatMul`
    is not 2-D.

    ## Example
    `y = QLinearConv(xq, xs, xz, wq, ws, wz, ys, yz, b)` becomes
    `y = QuantizeLinear(Conv(DequantizeLinear(xq, xs, xz), DequantizeLinear<axis=0>(wq, ws), B'), ys, yz)`.

    ## Safety
    Unsafe (within tolerance): the integer kernel accumulates exactly and rounds once, the float
    layer accumulates in FLOAT before `QuantizeLinear` rounds, so an output can land one
    quantization step away where a value is within float rounding of a rounding boundary. Proven
    in ONNX Runtime with rtol 2e-2 and an atol of 3% of the largest reference output value (at
    least 2e-2).

    ## Resolves
    TRT101, TRT113
    """

    name = "qlinear-to-qdq"
    summary = "replace QLinearConv/QLinearMatMul by DequantizeLinear + Conv/MatMul + QuantizeLinear"
    op_type = "QLinearConv"
    pattern = "QLinearConv or QLinearMatMul"
    resolves = ("TRT101", "TRT113")
    ops = (("", "QLinearConv"), ("", "QLinearMatMul"))

    def matches(self, node: onnx.NodeProto) -> bool:
        return node.domain in ("", "ai.onnx") and node.op_type in ("QLinearConv", "QLinearMatMul")

    def replace(self, b: Builder) -> None:
        conv = b.node.op_type == "QLinearConv"
        if b.opset < 10:
            raise Skip("QuantizeLinear/DequantizeLinear need opset 10")
        consts = {}
        for i, what in ((1, "input scale"), (4, "weight scale"), (6, "output scale")):
            consts[i] = b.value(b.input(i))
            if consts[i] is None:
                raise Skip(f"the {what} is not a constant")
        for i, what in ((2, "input zero point"), (5, "weight zero point"), (7, "output zero point")):
            if b.input(i) and b.value(b.input(i)) is None:
                raise Skip(f"the {what} is not a constant")
        x = b.op("DequantizeLinear", [b.input(0), b.input(1)] + ([b.input(2)] if b.input(2) else []))
        w_name = b.input(3)
        w = b.value(w_name)
        ws = consts[4].astype(np.float32)
        wz = b.value(b.input(5)) if b.input(5) else None
        axis = 0 if conv else 1
        if w is not None and w.ndim != 2 and not conv and ws.size > 1:
            raise Skip("a per-column weight scale on a weight that is not 2-D")
        int8_symmetric = w is not None and w.dtype == np.int8 and (wz is None or not np.any(wz))
        if w is None or int8_symmetric:
            if ws.size > 1 and b.opset < 13:
                raise Skip("a per-channel weight DequantizeLinear needs opset 13")
            inputs = [w_name, b.input(4)] + ([b.input(5)] if b.input(5) else [])
            wf = b.op("DequantizeLinear", inputs, axis=axis if ws.size > 1 else None)
        else:
            deq = _dequantized(w, None if wz is None else _per_axis(wz, w.ndim, axis), _per_axis(ws, w.ndim, axis))
            wf = b.tensor(deq, _weight_name(w_name))
        if conv:
            attrs = {a: b.attr(a) for a in _CONV_ATTRS}
            if isinstance(attrs["auto_pad"], bytes):
                attrs["auto_pad"] = attrs["auto_pad"].decode()
            inputs = [x, wf]
            if b.input(8):
                bias = b.value(b.input(8))
                if bias is None:
                    raise Skip("the bias is not a constant")
                xs = consts[1].astype(np.float32).reshape(())
                inputs.append(b.tensor((bias.astype(np.float64) * xs * ws.reshape(-1)).astype(np.float32), f"{b.base}/bias"))
            y = b.op("Conv", inputs, **attrs)
        else:
            y = b.op("MatMul", [x, wf])
        b.op("QuantizeLinear", [y, b.input(6)] + ([b.input(7)] if b.input(7) else []), b.node.output[0])



# com.microsoft QOperator ops: (op, {float op, its attributes}, how inputs are laid out).
_QLINEAR_UNARY = {"QLinearSigmoid": "Sigmoid", "QLinearLeakyRelu": "LeakyRelu",
                  "QLinearGlobalAveragePool": "GlobalAveragePool", "QLinearAveragePool": "AveragePool"}
_QLINEAR_BINARY = {"QLinearAdd": "Add", "QLinearMul": "Mul"}
_QLINEAR_CONTRIB = (*_QLINEAR_BINARY, *_QLINEAR_UNARY, "QLinearConcat", "QGemm")


class QlinearContribToQdq(_WithinTolerance, Substitution):
    """Replace ONNX Runtime's QOperator contrib ops (`QLinearAdd`, `QLinearMul`, `QLinearConcat`, `QLinearSigmoid`, `QLinearLeakyRelu`, `QLinearGlobalAveragePool`, `QLinearAveragePool`, `QGemm`) by DequantizeLinear -> float op -> QuantizeLinear.

    ## What it does
    ONNX Runtime's static quantization in the QOperator format writes the layers around the
    convolutions as `com.microsoft` ops on quantized tensors, each with its inputs' and output's
    scale and zero point. Each becomes its Q/DQ form: `DequantizeLinear` of every quantized input,
    the float op (`Add`, `Mul`, `Concat`, `Sigmoid`, `LeakyRelu`, `GlobalAveragePool`,
    `AveragePool`, `Gemm`) with the same attributes, and `QuantizeLinear` to the output's scale and
    zero point. `QGemm`'s INT32 bias is dequantized with `a_scale * b_scale`; without an output
    scale its output stays FLOAT. Like `qlinear-to-qdq`, this is the Q/DQ form; asymmetric or UINT8
    parameters then go through `qdq-to-symmetric-int8`.

    ## When it applies
    TRT102 on those `com.microsoft` ops (no TensorRT release imports them). Skipped for
    channels-last pooling and `QGemm` with a per-column weight scale on a weight that is not 2-D.

    ## Example
    `c = com.microsoft.QLinearAdd(a, as, az, b, bs, bz, cs, cz)` becomes
    `c = QuantizeLinear(Add(DequantizeLinear(a, as, az), DequantizeLinear(b, bs, bz)), cs, cz)`.

    ## Safety
    Unsafe (within tolerance): the kernels round once from their own integer or table arithmetic,
    the Q/DQ form computes in FLOAT and rounds at `QuantizeLinear`, so an element can land one
    step away. Proven in ONNX Runtime like `qlinear-to-qdq`.

    ## Resolves
    TRT102
    """

    name = "qlinear-contrib-to-qdq"
    summary = "replace com.microsoft QLinearAdd/Mul/Concat/Sigmoid/LeakyRelu/(Global)AveragePool and QGemm by Q/DQ + float op"
    domain = MS
    op_type = "QLinearAdd"
    pattern = "com.microsoft QOperator op"
    resolves = ("TRT102",)
    ops = tuple((MS, op) for op in _QLINEAR_CONTRIB)

    def matches(self, node: onnx.NodeProto) -> bool:
        return node.domain == MS and node.op_type in _QLINEAR_CONTRIB

    def _dq(self, b: Builder, x: str, scale: str, zp: str, axis: int | None = None) -> str:
        return b.op("DequantizeLinear", [x, scale] + ([zp] if zp else []), axis=axis)

    def _q(self, b: Builder, y: str, scale: str, zp: str) -> None:
        b.op("QuantizeLinear", [y, scale] + ([zp] if zp else []), b.node.output[0])

    def replace(self, b: Builder) -> None:
        op = b.node.op_type
        attrs = {a.name: helper.get_attribute_value(a) for a in b.node.attribute}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
        if op in _QLINEAR_BINARY:
            a = self._dq(b, b.input(0), b.input(1), b.input(2))
            c = self._dq(b, b.input(3), b.input(4), b.input(5))
            self._q(b, b.op(_QLINEAR_BINARY[op], [a, c]), b.input(6), b.input(7))
        elif op in _QLINEAR_UNARY:
            if attrs.pop("channels_last", 0):
                raise Skip("channels-last pooling")
            x = self._dq(b, b.input(0), b.input(1), b.input(2))
            self._q(b, b.op(_QLINEAR_UNARY[op], [x], **attrs), b.input(3), b.input(4))
        elif op == "QLinearConcat":
            rest = list(b.node.input[2:])
            if len(rest) % 3:
                raise Skip("inputs are not (tensor, scale, zero point) triples")
            parts = [self._dq(b, rest[i], rest[i + 1], rest[i + 2]) for i in range(0, len(rest), 3)]
            self._q(b, b.op("Concat", parts, axis=int(attrs.get("axis", 0))), b.input(0), b.input(1))
        else:  # QGemm
            trans_b = int(attrs.get("transB", 0))
            bscale = b.value(b.input(4))
            if bscale is None:
                raise Skip("the weight scale is not a constant")
            a = self._dq(b, b.input(0), b.input(1), b.input(2))
            w = self._dq(b, b.input(3), b.input(4), b.input(5), axis=(0 if trans_b else 1) if bscale.size > 1 else None)
            inputs = [a, w]
            if b.input(6):
                bias, ascale = b.value(b.input(6)), b.value(b.input(1))
                if bias is None or ascale is None:
                    raise Skip("the bias or the input scale is not a constant")
                inputs.append(b.tensor((bias.astype(np.float64) * ascale.astype(np.float64).reshape(())
                                        * bscale.astype(np.float64).reshape(-1)).astype(np.float32), f"{b.base}/bias"))
            gemm_attrs = {k: attrs[k] for k in ("alpha", "transA", "transB") if k in attrs}
            if b.input(7):
                self._q(b, b.op("Gemm", inputs, **gemm_attrs), b.input(7), b.input(8))
            else:
                b.op("Gemm", inputs, b.node.output[0], **gemm_attrs)

class DequantizeConstantToFloat(Substitution):
    """Replace `DequantizeLinear` of a constant TensorRT cannot dequantize by its FLOAT value.

    ## What it does
    A `DequantizeLinear` whose input, scale and zero point are constants is a constant:
    `(q - zero_point) * scale`; so is a `DequantizeLinear` of a `Gather` from a constant table
    (ONNX Runtime's quantized embeddings), which becomes a `Gather` from the dequantized table
    (per-tensor scale and zero point). When TensorRT cannot import it — INT32 data (an ONNX Runtime QDQ
    bias), UINT8 data, a zero point other than 0, a scale that is not positive, FP8 or INT4 data
    on a release without those types — the rewrite computes it now and stores the FLOAT result as
    an initializer. INT8 (and FP8, INT4 where the release has them) weights with zero point 0 and a
    positive scale are left to TensorRT, which fuses them into quantized layers.

    ## When it applies
    TRT115 (`DequantizeLinear` on INT32), TRT113 (UINT8 `DequantizeLinear` data), TRT125 (a
    non-zero zero point), TRT126 (a scale that is not positive) and TRT111 (FP8/INT4 weights the
    release cannot represent) on a `DequantizeLinear` of constants.

    ## Example
    `b = DequantizeLinear(bq, bs)` with `bq: int32[4]` constant becomes the initializer
    `b: float[4] = bq * bs`.

    ## Safety
    Safe: the value ONNX Runtime computes, in the same FLOAT arithmetic (one rounding per element).

    ## Resolves
    TRT115, TRT113, TRT125, TRT126, TRT111
    """

    name = "dequantize-constant-to-float"
    summary = "replace DequantizeLinear of constants TensorRT cannot import by the FLOAT value"
    op_type = "DequantizeLinear"
    pattern = "DequantizeLinear of constants TensorRT cannot import"
    applicability = Applicability.SAFE
    resolves = ("TRT115", "TRT113", "TRT125", "TRT126", "TRT111")

    def replace(self, b: Builder) -> None:
        q, scale = b.value(b.input(0)), b.value(b.input(1))
        zp = b.value(b.input(2)) if b.input(2) else None
        lookup = None
        if q is None:
            # A table lookup of quantized constants (ONNX Runtime's quantized embeddings):
            # DequantizeLinear(Gather(T, i)) = Gather(DequantizeLinear(T), i) per tensor.
            gather = b.info.producer(b.graph_index, b.input(0))
            if gather is not None and gather.op_type == "Gather" and gather.domain in ("", "ai.onnx"):
                table = b.value(gather.input[0])
                if table is not None and scale is not None and scale.size == 1 and (zp is None or zp.size == 1):
                    lookup, q = gather, table
        if q is None or scale is None or (b.input(2) and zp is None):
            raise Skip("its input, scale or zero point is not a constant (or a per-tensor lookup of constants)")
        elem = b.dtype(lookup.input[0] if lookup is not None else b.input(0))
        type_name = TensorProto.DataType.Name(elem) if elem else ""
        imported = type_name in b.ctx.target.release.types and type_name in ("INT8", "FLOAT8E4M3FN", "INT4", "UINT4", "FLOAT4E2M1")
        symmetric = zp is None or not np.any(np.asarray(zp, dtype=np.float64))
        if imported and symmetric and np.all(scale > 0):
            raise Skip(f"{type_name} data with zero point 0 and a positive scale: TensorRT {b.ctx.target.trt} imports it "
                       "(and fuses it into quantized layers)")
        if b.attr("block_size"):
            raise Skip("blocked quantization")
        axis = int(b.attr("axis", 1))
        rank = max(q.ndim, 1)
        shaped = [None if v is None else (_per_axis(v, rank, axis) if v.size > 1 else v.reshape(())) for v in (zp, scale)]
        value = (q.astype(np.float64) - (0 if shaped[0] is None else shaped[0].astype(np.float64))).astype(np.float32) \
            * shaped[1].astype(np.float32)
        to = b.attr("output_dtype") or TensorProto.FLOAT
        if scale.dtype != np.float32 or to != TensorProto.FLOAT:
            raise Skip("a scale or output type other than FLOAT")
        if lookup is not None:
            axis = next((a.i for a in lookup.attribute if a.name == "axis"), 0)
            table = b.tensor(value.astype(np.float32), _weight_name(lookup.input[0]))
            b.op("Gather", [table, lookup.input[1]], b.node.output[0], axis=axis)
            return
        b.op("Identity", [b.tensor(value.astype(np.float32), f"{b.base}/value")], b.node.output[0])


class QdqToSymmetricInt8(_WithinTolerance, Rewrite):
    """Rewrite activation Q/DQ pairs with a non-zero zero point (or UINT8) as symmetric INT8 around a shift.

    ## What it does
    TensorRT's Q/DQ is symmetric INT8: zero point 0. A `QuantizeLinear` with scale `s` and zero
    point `z` whose readers are all `DequantizeLinear` with the same parameters (directly or through
    ops that only move or select values: Reshape, Flatten, Transpose, MaxPool, Slice...) computes
    `s * (clip(round(x / s) + z, qmin, qmax) - z)`. With `d = z` for INT8 and `d = z - 128` for
    UINT8 (whose values move down by 128 into INT8), that is
    `DequantizeLinear(QuantizeLinear(x + s*d, s, 0), s, 0) - s*d` in INT8: the same step, the same
    saturation, only the grid's offset moved into an `Add` before the `QuantizeLinear` and a `Sub`
    after each `DequantizeLinear`. A UINT8 pair with zero point 128 (d = 0) just becomes INT8.
    A `DequantizeLinear` of a constant with a non-zero zero point is left to
    `dequantize-constant-to-float`.

    ## When it applies
    TRT125 on `QuantizeLinear` / `DequantizeLinear` zero points of activations, TRT113 on their
    UINT8 zero points (before 10.10) and TRT121 on `QuantizeLinear` `output_dtype=UINT8`. Skipped when a scale or zero point is not a constant,
    a `QuantizeLinear` output is read by anything but matching `DequantizeLinear` nodes, or it is a
    graph output.

    ## Example
    `q = QuantizeLinear(x, 0.02, int8 10); y = DequantizeLinear(q, 0.02, int8 10)` becomes
    `q = QuantizeLinear(Add(x, 0.2), 0.02, int8 0); y = Sub(DequantizeLinear(q, 0.02, int8 0), 0.2)`.

    ## Safety
    Unsafe (within tolerance), though equal in exact arithmetic: `x / s + d` and `(x + s*d) / s`
    round differently in FLOAT, and round-half-to-even ties fall on the other side when `d` is
    odd, so an element can move by one step `s`. Proven in ONNX Runtime with rtol 2e-2 and an atol
    of 3% of the largest reference output value (at least 2e-2). TensorRT runs the `Add`/`Sub`
    around the quantized tensors in FLOAT, which can keep it from fusing them into INT8 layers.

    ## Resolves
    TRT125, TRT113, TRT121
    """

    name = "qdq-to-symmetric-int8"
    summary = "rewrite asymmetric or UINT8 activation Q/DQ pairs as symmetric INT8 around a shift"
    phase = 35
    resolves = ("TRT125", "TRT113", "TRT121")

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        out = onnx.ModelProto()
        out.CopyFrom(model)
        info = ModelInfo(out)
        changes: list[str] = []
        skipped: list[str] = []
        for gi, g in enumerate(graphs(out.graph)):
            view = _Graph(g)
            retyped: set[str] = set()
            before: dict[int, list[onnx.NodeProto]] = {}
            after: dict[int, list[onnx.NodeProto]] = {}
            for qi, q in enumerate(g.node):
                if not _is(q, "QuantizeLinear"):
                    continue
                where = q.name or q.output[0]
                try:
                    shifted = self._pair(info, gi, view, qi, before, after, retyped)
                except Skip as e:
                    if str(e):
                        skipped.append(f"QuantizeLinear {where!r}: {e}")
                    continue
                n = len(view.readers.get(q.output[0], []))
                changes.append(f"rewrote QuantizeLinear {where!r} and its {n} DequantizeLinear reader(s) as symmetric INT8"
                               + (" around a shift" if shifted else ""))
            if retyped:
                keep = [vi for vi in g.value_info if vi.name not in retyped]
                del g.value_info[:]
                g.value_info.extend(keep)
            if before or after:
                nodes = []
                for i, n in enumerate(g.node):
                    nodes.extend(before.get(i, []))
                    nodes.append(n)
                    nodes.extend(after.get(i, []))
                del g.node[:]
                g.node.extend(nodes)
        if not changes:
            return Outcome(model, skipped=skipped or ["no asymmetric or UINT8 QuantizeLinear -> DequantizeLinear pair"])
        return Outcome(out, changes, skipped)

    def _pair(self, info: ModelInfo, gi: int, view: _Graph, qi: int, before: dict, after: dict, retyped: set) -> bool:
        """Rewrite one Q -> DQ* group in place (the shift nodes go into `before`/`after` by node
        index); returns whether a shift was needed."""
        g = view.g
        q = g.node[qi]
        scale = info.value(gi, q.input[1]) if len(q.input) > 1 else None
        zp_name = q.input[2] if len(q.input) > 2 else ""
        zp = info.value(gi, zp_name) if zp_name else None
        out_type = _attr(q, "output_dtype", 0)
        dtype = helper.np_dtype_to_tensor_dtype(zp.dtype) if zp is not None else (out_type or TensorProto.UINT8)
        if dtype not in _QRANGE:
            raise Skip("")  # FP8 / INT4 / INT16: not this rewrite's business
        if dtype == TensorProto.INT8 and (zp is None or not np.any(zp)):
            raise Skip("")  # already symmetric INT8
        if scale is None or (zp_name and zp is None):
            raise Skip("its scale or zero point is not a constant")
        if _attr(q, "block_size", 0):
            raise Skip("blocked quantization")
        if q.output[0] in view.outputs:
            raise Skip("its output is a graph output (changing its type changes the model's interface)")
        # The readers: DequantizeLinear nodes, directly or through ops that only move or select
        # values (per-tensor parameters: they commute with any monotonic re-labelling of codes).
        reader_ids: list[int] = []
        carried: list[str] = [q.output[0]]
        frontier = [q.output[0]]
        while frontier:
            name = frontier.pop()
            ids = view.readers.get(name, [])
            if not ids:
                raise Skip(f"{name!r} is read by nothing")
            for ri in ids:
                r = g.node[ri]
                if _is(r, "DequantizeLinear") and r.input[0] == name:
                    reader_ids.append(ri)
                elif any(_is(r, op) for op in _MOVES) and r.input[0] == name and scale.size == 1:
                    if r.output[0] in view.outputs:
                        raise Skip(f"{r.output[0]!r} (after {r.op_type}) is a graph output")
                    carried.append(r.output[0])
                    frontier.append(r.output[0])
                else:
                    raise Skip(f"it is read by {r.op_type}, not only by DequantizeLinear")
        axis = _attr(q, "axis", 1)
        for ri in reader_ids:
            r = g.node[ri]
            rs = info.value(gi, r.input[1]) if len(r.input) > 1 else None
            rz = info.value(gi, r.input[2]) if len(r.input) > 2 and r.input[2] else None
            same_zp = np.array_equal(np.zeros(scale.shape) if rz is None else rz.astype(np.int64),
                                     np.zeros(scale.shape) if zp is None else zp.astype(np.int64))
            if rs is None or not np.array_equal(rs, scale) or not same_zp:
                raise Skip("a DequantizeLinear reader has other parameters")
            if scale.size > 1 and _attr(r, "axis", 1) != axis:
                raise Skip("a DequantizeLinear reader uses another axis")
        z = np.zeros(scale.shape, np.int64) if zp is None else zp.astype(np.int64)
        d = z - (128 if dtype == TensorProto.UINT8 else 0)
        base = q.name or q.output[0]
        z_name = info.unique(f"{base}/symmetric_zero_point")
        g.initializer.append(numpy_helper.from_array(np.zeros(np.shape(scale), np.int8), z_name))
        shifted = bool(np.any(d))
        if shifted:
            rank = len(info.shapes.get(q.input[0]) or []) or 1
            offset = (scale.astype(np.float64) * d).astype(scale.dtype)
            offset = _per_axis(offset, rank, axis) if offset.size > 1 else offset.reshape(())
            c_name = info.unique(f"{base}/shift")
            g.initializer.append(numpy_helper.from_array(np.asarray(offset), c_name))
            moved = info.unique(f"{base}/shifted")
            before[qi] = [helper.make_node("Add", [q.input[0], c_name], [moved], name=info.unique(f"{base}/Add"))]
            q.input[0] = moved
        for node in (q, *(g.node[ri] for ri in reader_ids)):
            while len(node.input) < 3:
                node.input.append("")
            node.input[2] = z_name
        if shifted:
            for ri in reader_ids:
                r = g.node[ri]
                original = r.output[0]
                r.output[0] = info.unique(f"{original}/shifted")
                after[ri] = [helper.make_node("Sub", [r.output[0], c_name], [original], name=info.unique(f"{r.name or original}/Sub"))]
        for a in q.attribute:
            if a.name == "output_dtype":
                a.i = TensorProto.INT8
        retyped.update(carried)
        return shifted

REWRITES = (
    DequantizeConstantToFloat,
    DynamicQuantizationToFloat,
    DynamicQuantizeLstmToLstm,
    DynamicQuantizeMatmulToMatmul,
    MatmulNbitsToMatmul,
    QdqToSymmetricInt8,
    QlinearContribToQdq,
    QlinearToQdq,
)
