"""BatchNormalization after Conv/ConvTranspose/Gemm/MatMul whose scale and shift fold into the layer's
weights (GRF414, fold-batch-norm)."""

from __future__ import annotations

from typing import NamedTuple

from .._onnx import TensorProto

from .._proto import body_reads, has_body
from ..model import Graph, Model, NodeRef


FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE})


class BatchNormFold(NamedTuple):
    bn: NodeRef
    layer: NodeRef  # Conv, ConvTranspose, Gemm or MatMul
    add: NodeRef | None  # MatMul's bias Add, if any
    weight: str  # the layer's weight input
    bias: str | None  # the layer's bias input (Conv/ConvTranspose B, Gemm C, the Add's constant)
    axis: int  # the weight axis that holds the output channels


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
