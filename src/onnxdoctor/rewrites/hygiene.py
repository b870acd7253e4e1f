"""Hygiene passes: constant folding and dead-code cleanup."""

from __future__ import annotations

import onnx

from ..findings import Applicability
from ._gs import cleaned, export_model, import_graph, node_count
from .base import Outcome, Rewrite, RewriteContext


class FoldConstants(Rewrite):
    """Evaluate subgraphs whose inputs are all constants and replace them by initializers.

    ## What it does
    Runs onnx-graphsurgeon's constant folding (values computed by ONNX Runtime), including shape
    computations on inputs whose shapes are static, then removes the dead nodes. Folded values
    larger than the size cap (64 MiB per tensor) are left unfolded, so folding never explodes a
    model (e.g. an `Expand` of a constant to a huge shape).

    ## When it applies
    Findings GRF401 (constant-foldable subgraph), TRT122 warnings (value constant only after
    propagation: the importer needs an initializer), SHP204 with frozen shapes.

    ## Example
    `Constant(int32 1) -> Cast(to=INT64) -> ReduceSum.axes` becomes an INT64 initializer.

    ## Safety
    Safe: the values are computed by ONNX Runtime from the same graph.

    ## Resolves
    GRF401, TRT122, SHP204
    """

    name = "fold-constants"
    phase = 20
    summary = "evaluate constant subgraphs into initializers"
    applicability = Applicability.SAFE
    resolves = ("GRF401", "TRT122", "SHP204")

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        before = node_count(model)
        g = import_graph(model)
        g.fold_constants(size_threshold=ctx.max_constant_bytes, error_ok=True)
        g.cleanup(remove_unused_graph_inputs=False).toposort()
        out = export_model(g, model)
        after = node_count(out)
        if after >= before:
            return Outcome(model, skipped=["no constant subgraph could be folded"])
        return Outcome(out, [f"folded {before - after} node(s) into constants ({before} -> {after} nodes)"])


class Cleanup(Rewrite):
    """Remove nodes whose results are never used and initializers nothing reads.

    ## What it does
    Removes dead nodes (no path to a graph output) and unused initializers, and sorts the graph
    topologically.

    ## When it applies
    Findings GRF402 (dead node), GRF403 (unused initializer); also run after every other rewrite.

    ## Example
    A debugging `Shape` node left in an export whose output nobody reads.

    ## Safety
    Safe: graph outputs do not depend on what is removed.

    ## Resolves
    GRF402, GRF403
    """

    name = "cleanup"
    phase = 90
    summary = "remove dead nodes and unused initializers"
    applicability = Applicability.SAFE
    resolves = ("GRF402", "GRF403")

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        nodes, inits = node_count(model), len(model.graph.initializer)
        out = cleaned(model)
        dn, di = nodes - node_count(out), inits - len(out.graph.initializer)
        if dn <= 0 and di <= 0:
            return Outcome(model, skipped=["nothing dead or unused"])
        return Outcome(out, [f"removed {dn} dead node(s) and {di} unused initializer(s)"])


REWRITES = (FoldConstants, Cleanup)
