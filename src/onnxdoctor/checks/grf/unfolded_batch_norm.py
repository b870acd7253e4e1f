"""GRF414 unfolded-batch-norm."""

from __future__ import annotations

from typing import NamedTuple

from ..._onnx import TensorProto

from ..._proto import body_reads, has_body
from ...findings import Severity
from ...model import Graph, Model, NodeRef
from ...rule import Context, Rule

FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE})


class BatchNormFold(NamedTuple):
    bn: NodeRef
    layer: NodeRef  # Conv, ConvTranspose, Gemm or MatMul
    add: NodeRef | None  # MatMul's bias Add, if any
    weight: str  # the layer's weight input
    bias: str | None  # the layer's bias input (Conv/ConvTranspose B, Gemm C, the Add's constant)
    axis: int  # the weight axis that holds the output channels


class UnfoldedBatchNorm(Rule):
    """An inference `BatchNormalization` right after a Conv, ConvTranspose, Gemm or MatMul with constant weights.

    ## What it does
    Reports a `BatchNormalization` in inference mode (only its `Y` output used, `spatial` not 0)
    whose input is the only use of the output of a `Conv`, a `ConvTranspose` (group 1), a `Gemm`, or
    a `MatMul` with a 2-D output (optionally followed by an `Add` of a constant bias), when that
    layer's weights, bias and the normalization's scale, bias, mean and variance are all constants.

    ## Why it breaks TensorRT
    The normalization is an affine map per output channel, which the layer's weights and bias can
    absorb: the folded model runs one layer instead of two. TensorRT's builder folds Conv+BN itself
    in many cases, but not Gemm/MatMul+BN, not in strongly typed networks where the folding would
    change precision, and not when a Q/DQ pair or a shuffle sits between them after other rewrites.
    Models exported in eval mode from PyTorch, Paddle or Keras usually keep every BatchNorm.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,3,8,8] x) => (float[1,4,8,8] y) <float[4,3,3,3] w = {...}, float[4] s = {1, 2, 3, 4},
            float[4] b = {0, 0, 0, 0}, float[4] m = {0, 1, 0, 1}, float[4] v = {1, 1, 4, 4}> {
          c = Conv<pads = [1, 1, 1, 1]>(x, w)
          y = BatchNormalization(c, s, b, m, v)
        }

    ## How to fix
    Scale the weights by `scale / sqrt(var + epsilon)` per output channel and set the bias to
    `(bias - mean) * scale / sqrt(var + epsilon) + B`; `onnxdoctor fix` does it (`fold-batch-norm`).

    ## Fix safety
    `fold-batch-norm` is safe: the folded layer computes the same affine map; the values differ only
    by floating-point rounding (well inside the proof's tolerance).

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX `BatchNormalization` (inference: Y = scale * (X - mean) / sqrt(var + epsilon) + B), `Conv`,
    `ConvTranspose` (weight layout [C_in, C_out/group, k...]), `Gemm` specs; onnxslim and
    onnx-simplifier Conv+BN fusion; PyTorch `torch.nn.utils.fusion.fuse_conv_bn_eval`.
    """

    code = "GRF414"
    name = "unfolded-batch-norm"
    severity = Severity.INFO
    summary = "BatchNormalization that the Conv/Gemm/MatMul before it can absorb"
    release_independent = True

    def check(self, ctx: Context):
        for bn in ctx.nodes_of("BatchNormalization"):
            f = batch_norm_fold(ctx.model, bn)
            if f is None:
                continue
            what = f.layer.op_type + ("+Add" if f.add is not None else "")
            yield self.finding(ctx, f"BatchNormalization after {what} {f.layer.name!r} can be folded into its weights",
                               node=bn, tensor=bn.output(0), versions=ctx.kb.versions,
                               hint="onnxdoctor fix folds it")


def batch_norm_fold(model: Model, bn: NodeRef) -> BatchNormFold | None:
    """The fold GRF414 reports and fold-batch-norm makes for BatchNormalization `bn`, or None."""
    g = bn.graph
    ins = g.node_inputs[bn.index]
    if bn.domain or len(ins) != 5 or not all(ins) or bn.attr("spatial", 1) == 0 or bn.attr("training_mode", 0):
        return None
    if any(o and g.is_used(o) for o in g.node_outputs[bn.index][1:]) or not bn.output(0):
        return None
    cv = model.constants(g)
    if not all(cv.is_constant(i) for i in ins[1:]) or g.elem_type_of(ins[0]) not in FLOAT_TYPES:
        return None
    x = ins[0]
    bias_name = None
    prev = _sole_producer(g, x)
    if prev is None:
        return None
    add = None
    if prev.op_type == "Add":
        a, b = prev.input(0), prev.input(1)
        data, bias = (a, b) if cv.is_constant(b) else (b, a)
        if not cv.is_constant(bias) or cv.is_constant(data):
            return None
        mm = _sole_producer(g, data)
        if mm is None or mm.op_type != "MatMul":
            return None
        add, prev, bias_name = prev, mm, bias
    if prev.domain:
        return None
    op = prev.op_type
    pins = g.node_inputs[prev.index]
    if op in ("Conv", "ConvTranspose"):
        if len(pins) < 2 or not cv.is_weights(pins[1]) or (len(pins) > 2 and pins[2] and not cv.is_constant(pins[2])):
            return None
        if op == "ConvTranspose" and prev.attr("group", 1) != 1:
            return None
        return BatchNormFold(bn, prev, None, pins[1], pins[2] if len(pins) > 2 and pins[2] else None,
                             0 if op == "Conv" else 1)
    if op == "Gemm":
        if len(pins) < 2 or not cv.is_weights(pins[1]) or prev.attr("transA", 0) not in (0, 1):
            return None
        if len(pins) > 2 and pins[2] and not cv.is_constant(pins[2]):
            return None
        return BatchNormFold(bn, prev, None, pins[1], pins[2] if len(pins) > 2 and pins[2] else None,
                             0 if prev.attr("transB", 0) else 1)
    if op == "MatMul":
        if len(pins) != 2 or not cv.is_weights(pins[1]) or g.rank_of(pins[1]) != 2 or g.rank_of(pins[0]) != 2:
            return None
        return BatchNormFold(bn, prev, add, pins[1], bias_name if add is not None else None, 1)
    return None


def _sole_producer(g: Graph, t: str) -> NodeRef | None:
    """The producer of `t` when `t` has no other reader (control-flow bodies included) and is not a
    graph output."""
    hit = g.producers.get(t)
    if hit is None or len(g.consumers.get(t, ())) != 1 or t in g.outputs or len(g.node_outputs[hit[0]]) != 1:
        return None
    if g.may_nest and any(has_body(n) and t in body_reads(n) for n in g.nodes):
        return None
    return g.ref(hit[0])
