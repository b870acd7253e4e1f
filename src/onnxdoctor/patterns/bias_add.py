"""A constant per-channel bias Add after a Conv/ConvTranspose, or a constant row added to a 2-D
MatMul, that the layer can do itself (GRF417, fold-bias-add)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..model import Graph, Model, NodeRef
from .batch_norm import FLOAT_TYPES, _sole_producer

_LAYERS = frozenset({"Conv", "ConvTranspose", "MatMul"})


class BiasFold(NamedTuple):
    add: NodeRef
    layer: NodeRef  # Conv, ConvTranspose or MatMul
    bias: np.ndarray  # the Add's constant as one value per output channel (column)
    old_bias: str | None  # the layer's own bias input (Conv/ConvTranspose), if any


def bias_candidates(g: Graph) -> list[int]:
    """The standard-domain Adds of `g` that read an output of a standard Conv, ConvTranspose or
    MatMul, in node order: the only Adds bias_fold can fold, found from the layers' side (a model
    has fewer layer outputs than Adds, and most Adds read none)."""
    outs_, consumers, ops, std = g.node_outputs, g.consumers, g.op_types, g.standard
    adds: set[int] = set()
    for op in _LAYERS:
        for k in g.op_positions.get(op, ()):
            for o in outs_[k]:
                for c in consumers.get(o, ()) if o else ():
                    if ops[c] == "Add" and std[c]:
                        adds.add(c)
    return sorted(adds)


def bias_fold(model: Model, add: NodeRef) -> BiasFold | None:
    """The fold GRF417 reports and fold-bias-add makes for `add`, or None."""
    g = add.graph
    ins = g.node_inputs[add.index]
    if add.domain or len(ins) != 2 or not all(ins) or not add.output(0):
        return None
    cv = model.constants(g)
    a, b = ins
    data, const = (a, b) if cv.is_constant(b) else (b, a)
    if not cv.is_constant(const) or cv.is_constant(data):
        return None
    # most Adds of a constant read no Conv/ConvTranspose/MatMul output (a layer output is never a
    # constant: it is the data): decided before the constant's value is read
    hit = g.producers.get(data)
    if hit is None or g.op_types[hit[0]] not in _LAYERS:
        return None
    # the constant first: external (big) biases are never read, so most Adds after a layer end here
    value = cv.value(const)
    if value is None or value.dtype.kind != "f" or not value.any():
        return None  # an all-zero bias is identity-arithmetic's: the Add goes
    if g.elem_type_of(data) not in FLOAT_TYPES:
        return None
    layer = _sole_producer(g, data)
    if layer is None or layer.domain or layer.op_type not in ("Conv", "ConvTranspose", "MatMul"):
        return None
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
