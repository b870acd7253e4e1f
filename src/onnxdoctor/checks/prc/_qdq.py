"""Shared helpers of the PRC rules: walking through data-movement ops, Q/DQ lookups."""

from __future__ import annotations

from ..._onnx import NodeProto

from ...model import Graph

DQ_OPS = frozenset({"DequantizeLinear"})
# Ops that only move or regroup elements: a quantized tensor may pass through them between Q and DQ
# (TensorRT propagates Q/DQ across them), and a weight may reach its consumer through them.
DATA_MOVEMENT = frozenset(
    {"Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Concat", "Slice", "Split", "Gather",
     "Expand", "Tile"}
)
MAX_HOPS = 8


def is_std(node: NodeProto) -> bool:
    return node.domain in ("", "ai.onnx")


def source_through_movement(g: Graph, tensor: str) -> NodeProto | None:
    """The first producer of `tensor` that is not a data-movement op (following input 0), or None
    when the chain reaches a graph input or initializer, or is too long."""
    for _ in range(MAX_HOPS):
        node = g.producer(tensor)
        if node is None:
            return None
        if node.op_type in DATA_MOVEMENT and is_std(node) and node.input:
            tensor = node.input[0]
            continue
        return node
    return None


def comes_from_dq(g: Graph, tensor: str) -> bool:
    node = source_through_movement(g, tensor)
    return node is not None and node.op_type in DQ_OPS and is_std(node)


def any_qdq(ctx) -> bool:
    """Whether any graph holds a Q or DQ node (memoized per run)."""

    def compute() -> bool:
        # endswith: also TensorRT's own TRT_INT4QuantizeLinear / TRT_FP8DequantizeLinear-style custom ops
        return any(op.endswith(("QuantizeLinear", "DequantizeLinear")) for _, op in ctx.op_index())

    return ctx.model_memo("prc:any_qdq", compute)
