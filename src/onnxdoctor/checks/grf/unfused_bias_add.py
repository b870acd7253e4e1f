"""GRF417 unfused-bias-add."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...findings import Severity
from ...model import Model, NodeRef
from ...rule import Context, Rule
from .unfolded_batch_norm import FLOAT_TYPES, _sole_producer


class BiasFold(NamedTuple):
    add: NodeRef
    layer: NodeRef  # Conv, ConvTranspose or MatMul
    bias: np.ndarray  # the Add's constant as one value per output channel (column)
    old_bias: str | None  # the layer's own bias input (Conv/ConvTranspose), if any


class UnfusedBiasAdd(Rule):
    """An `Add` of a constant per-channel bias right after a Conv, ConvTranspose or 2-D MatMul.

    ## What it does
    Reports an `Add` of a constant and the output of a `Conv` or `ConvTranspose` (whose bias, if any,
    is a constant) when the constant is the same along every axis but the channel axis (a `[1, C, 1,
    1]` or `[C, 1, 1]` tensor, or a scalar), and an `Add` of a constant row (`[N]`, `[1, N]` or a
    scalar) to a `MatMul` of a 2-D input by a constant 2-D weight. The layer's output must have no
    other reader.

    ## Why it breaks TensorRT
    The layer can add the bias itself: Conv and ConvTranspose have a bias input, and `Gemm` is a
    MatMul with a bias. Exporters from frameworks that keep the bias as a separate op (Paddle's
    `conv2d` + `elementwise_add`, a linear layer's MatMul + Add) leave one extra elementwise layer per
    convolution, and a bias `Add` between a Conv and a BatchNormalization also stops the
    normalization from being folded (`unfolded-batch-norm`).

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,2,4,4] x) => (float[1,2,4,4] y) <float[2,2,1,1] w = {1, 2, 3, 4},
            float[1,2,1,1] b = {0.5, -0.5}> {
          c = Conv(x, w)
          y = Add(c, b)
        }

    ## How to fix
    Add the constant to the layer's bias (Conv, ConvTranspose) or replace MatMul + Add by one `Gemm`;
    `onnxdoctor fix` does it (`fold-bias-add`).

    ## Fix safety
    `fold-bias-add` is safe: the layer adds the same values (a Conv adding its bias to a sum may round
    differently by an ulp).

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX `Conv`, `ConvTranspose` (optional bias B of shape [M]), `Gemm` (Y = alpha * A' * B' + beta * C,
    C broadcast to [M, N]) and `Add` (multidirectional broadcasting) specs; onnxslim's Conv + Add and
    MatMul + Add fusions.
    """

    code = "GRF417"
    name = "unfused-bias-add"
    severity = Severity.INFO
    summary = "constant bias Add after a Conv, ConvTranspose or 2-D MatMul that the layer can do"
    release_independent = True

    def check(self, ctx: Context):
        if not (ctx.nodes_of("Conv") or ctx.nodes_of("ConvTranspose") or ctx.nodes_of("MatMul")):
            return
        for add in ctx.nodes_of("Add"):
            f = bias_fold(ctx.model, add)
            if f is None:
                continue
            what = "its bias" if f.layer.op_type != "MatMul" else "a Gemm"
            yield self.finding(ctx, f"Add of a constant bias after {f.layer.op_type} {f.layer.name!r}: {what} can do it",
                               node=add, tensor=add.output(0), versions=ctx.kb.versions, hint="onnxdoctor fix folds it")


def bias_fold(model: Model, add: NodeRef) -> BiasFold | None:
    """The fold GRF417 reports and fold-bias-add makes for `add`, or None."""
    g = add.graph
    ins = g.node_inputs[add.index]
    if add.domain or len(ins) != 2 or not all(ins) or not add.output(0):
        return None
    cv = model.constants(g)
    a, b = ins
    data, const = (a, b) if cv.is_constant(b) else (b, a)
    if not cv.is_constant(const) or cv.is_constant(data) or g.elem_type_of(data) not in FLOAT_TYPES:
        return None
    layer = _sole_producer(g, data)
    if layer is None or layer.domain or layer.op_type not in ("Conv", "ConvTranspose", "MatMul"):
        return None
    value = cv.value(const)
    if value is None or value.dtype.kind != "f" or not value.any():
        return None  # an all-zero bias is identity-arithmetic's: the Add goes
    lins = g.node_inputs[layer.index]
    if len(lins) < 2 or not lins[1]:
        return None
    wt = g.type_of(lins[1])
    if wt is None or wt.shape is None or not wt.is_static:
        return None
    if layer.op_type == "MatMul":
        if len(wt.shape) != 2 or g.rank_of(lins[0]) != 2 or not cv.is_weights(lins[1]):
            return None
        n = wt.shape[1]
        if value.size not in (1, n) or value.ndim > 2 or (value.ndim == 2 and value.shape[0] != 1):
            return None
        return BiasFold(add, layer, np.broadcast_to(value.reshape(-1), (n,)).copy(), None)
    rank = len(wt.shape)  # a convolution's output has its weight's rank
    channels = wt.shape[0] if layer.op_type == "Conv" else wt.shape[1] * int(layer.attr("group", 1))
    if value.ndim > rank:
        return None
    shape = (1,) * (rank - value.ndim) + tuple(value.shape)
    if any(d != 1 for k, d in enumerate(shape) if k != 1) or shape[1] not in (1, channels):
        return None
    old = lins[2] if len(lins) > 2 and lins[2] else None
    if old is not None and not cv.is_constant(old):
        return None
    return BiasFold(add, layer, np.broadcast_to(value.reshape(-1), (channels,)).copy(), old)
