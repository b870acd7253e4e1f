"""TRT124 unsupported-rank."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context
from ._constraint_rule import ConstraintRule
from ._types import max_rank, sites

MAX_DIMS = 8  # nvinfer1::Dims::MAX_DIMS in every release


class UnsupportedRank(ConstraintRule):
    """A tensor whose rank TensorRT cannot handle, globally or for a particular op.

    ## What it does
    Flags any tensor of rank above 8 (`nvinfer1::Dims::MAX_DIMS`), and evaluates the `rank`
    constraints: e.g. pooling only 2D/3D (input rank 4 or 5), `GridSample` 4D input before 11.2,
    `DeformConv` 1D/2D spatial. Unknown ranks are never reported.

    ## Why it breaks TensorRT
    `Dims` holds at most 8 dimensions; importers assert on the ranks their layers support.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,1,4,4,4,4] x) => (float[1,1,2,2,2,2] y) {
          y = MaxPool<kernel_shape = [2, 2, 2, 2], strides = [2, 2, 2, 2]>(x)
        }

    ## How to fix
    Reshape to a supported rank around the node (e.g. fold extra dims into the batch dim).

    An `Attention` mask of rank above 4 is not valid ONNX either (the specification requires a mask
    broadcastable to the 4-D `(batch, q_num_heads, q_sequence_length, total_sequence_length)`):
    `fix` proves no rewrite of such a model and says so ("the model is invalid ONNX").

    ## Fix safety
    A value of more than 8 dimensions that reshape-like nodes make and read is removed by
    `collapse-reshape-chains` (safe).
    A 3-D `Attention` on 10.14 is replaced by its ONNX function body (`op-to-function-body`,
    exact); a `DeformConv` of 3 spatial dimensions by trilinear `GatherElements` sampling and a
    1x1x1 `Conv` (`deform-conv-3d-to-gathers`, safe); otherwise no automatic fix.

    ## TensorRT versions
    All for the rank-8 limit; per constraint otherwise.

    ## Sources
    `NvInferRuntimeBase.h` (`Dims::MAX_DIMS = 8`); each constraint's `source` field.
    """

    code = "TRT124"
    name = "unsupported-rank"
    severity = Severity.ERROR
    summary = "tensor rank TensorRT cannot handle"
    kinds = frozenset({"rank"})
    hint_text = "reshape to a supported rank around this node"

    def fix_for(self, ctx: Context, v):
        # deform-conv-3d-to-gathers replaces a DeformConv of 3 spatial dimensions only (rank 5)
        if v.constraint.id == "DeformConv.rank" and v.node.graph.rank_of(v.node.node.input[0]) != 5:
            return None
        return super().fix_for(ctx, v)

    def check(self, ctx: Context):
        yield from super().check(ctx)
        if max_rank(ctx) <= MAX_DIMS:
            return
        for site in sites(ctx):
            rank = site.rank
            if rank is not None and rank > MAX_DIMS:
                yield self.finding(
                    ctx,
                    f"{site.role} {site.tensor!r} has rank {rank}; TensorRT tensors have at most {MAX_DIMS} dimensions",
                    node=site.producer,
                    tensor=site.tensor,
                    subgraph=site.graph.path,
                    versions=ctx.kb.versions,
                    hint="reshape to rank <= 8",
                    fix=self.fix_by("collapse-reshape-chains") if _between_reshapes(site) else None,
                )


_RESHAPE_LIKE = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})


def _between_reshapes(site) -> bool:
    """A value only reshape-like nodes make and read: the chain collapses into one Reshape."""
    if site.role != "value" or site.producer is None or site.producer.op_type not in _RESHAPE_LIKE:
        return False
    readers = [site.graph.nodes[i] for i in site.graph.consumers.get(site.tensor, [])]
    return bool(readers) and all(n.op_type in _RESHAPE_LIKE and n.domain in ("", "ai.onnx") for n in readers)
