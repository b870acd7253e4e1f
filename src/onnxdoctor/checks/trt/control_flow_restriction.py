"""TRT141 control-flow-restriction."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context
from .._ifcond import condition_kind, decided_by_enclosing
from ..constraints import constraint_versions, violations
from ._constraint_rule import CONTROL_FLOW_OPS, ConstraintRule


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

        An `If` whose condition is an initializer or a `Constant` is not reported for its branch
    ranks: the parser then imports only the branch that runs.

    ## How to fix
    Make both branches return the same rank; give Loops a trip count; or, when the condition is
    known at export, export the taken branch only (tracing instead of scripting). When the condition
    is constant once folded (`Shape(x)[0] == 1` on a static or `--shape`-frozen shape, as exported
    RNN/VAD models have), `onnxdoctor fix` replaces the `If` by the branch that runs
    (`inline-constant-if`).

    ## Fix safety
    `inline-constant-if` is safe: the condition has one value on every run. Other control-flow
    restrictions have no automatic fix. Nesting deeper than the parser accepts is cured when the
    nested `If`s test the same condition as an enclosing `If` (known inside its branches:
    `inline-constant-if` keeps the branch that value selects); otherwise there is no automatic fix.

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
        for v in violations(ctx):
            c = v.constraint
            if c.op not in CONTROL_FLOW_OPS:
                continue
            msg = f"{c.message} ({v.detail})" if v.detail and v.detail not in c.message else c.message
            fix, hint = (self.fix_by(v.fix) if v.fix else None), self.hint_text
            if c.op == "If":
                kind = condition_kind(ctx.model, v.node)
                if kind == "weights" and c.id == "If.branch_ranks":
                    continue  # the parser imports only the branch the constant selects
                if kind is not None:
                    fix, hint = self.fix_by("inline-constant-if"), "the condition is constant: onnxdoctor fix keeps only the branch that runs"
                    msg += "; the condition is a build-time constant" + (" once folded" if kind == "folded" else "")
            yield self.finding(ctx, msg, node=v.node, severity=Severity.parse(v.severity or c.severity), fix=fix,
                               versions=constraint_versions(ctx, c), hint=hint)
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
                # inline-constant-if helps where conditions are constant (those Ifs have their own
                # findings) or decided by an enclosing If on the same condition (it removes levels).
                fix=self.fix_by("inline-constant-if") if decided_by_enclosing(ctx.model) else None,
            )
