"""TRT141 control-flow-restriction."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context
from ._constraint_rule import ConstraintRule


class ControlFlowRestriction(ConstraintRule):
    """An `If`, `Loop` or `Scan` node that TensorRT's control-flow layers cannot express.

    ## What it does
    Evaluates every constraint on `If`/`Loop`/`Scan` (then/else outputs with different ranks or
    counts, Loop scan outputs without a trip count, unsupported Scan inputs, ...), and checks the
    nesting depth of subgraphs against the parser's limit (24 levels from 10.0).

    ## Why it breaks TensorRT
    `If` becomes an `IIfConditional` whose outputs must have the same rank in both branches;
    `Loop` becomes an `ILoop` whose scan outputs need a known trip count; the parser refuses
    subgraphs nested too deeply.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (bool c, float[2,3] x) => (float[?] y) {
          y = If(c) <then_branch = t () => (float[2,3] a) { a = Identity(x) },
                     else_branch = e () => (float[6] b) { s = Constant<value = int64[1] {6}>() b = Reshape(x, s) }>
        }

    ## How to fix
    Make both branches return the same rank; give Loops a trip count; or, when the condition is
    known at export, export the taken branch only (tracing instead of scripting).

    ## Fix safety
    No automatic fix.

    ## TensorRT versions
    Per constraint, listed in each finding; nesting limit from 10.0.

    ## Sources
    Each constraint's `source` field; `ModelImporter.cpp` @ 10.0-GA (subgraph nesting limit);
    `docs/operators.md` If/Loop/Scan rows.
    """

    code = "TRT141"
    name = "control-flow-restriction"
    severity = Severity.ERROR
    summary = "If/Loop/Scan the importer rejects"
    kinds = frozenset()
    control_flow = True
    hint_text = "restructure the control flow as the message describes"

    def check(self, ctx: Context):
        yield from super().check(ctx)
        limit = ctx.release.max_subgraph_nesting
        if limit is None:
            return
        deepest = max(ctx.model.graphs, key=lambda g: g.depth)
        if deepest.depth > limit:
            yield self.finding(
                ctx,
                f"subgraphs are nested {deepest.depth} levels deep; TensorRT {ctx.release.version} accepts at most {limit}",
                subgraph=deepest.path,
                versions=ctx.kb.versions_where(lambda r: r.max_subgraph_nesting is not None and deepest.depth > r.max_subgraph_nesting),
                hint="flatten nested control flow",
            )
