"""Runs rules over a model for a target and returns findings in a stable order."""

from __future__ import annotations

from typing import Iterable

from . import parallel as par
from . import suppressions
from .checks.mod.unused_suppression import UnusedSuppression
from .findings import Finding
from .model import Model
from .rule import Context, Rule
from .target import Target


# Rules run by the helper process in a parallel check: the graph-hygiene family (pattern matching,
# constant folding analysis) costs about as much as all the others together on big models.
OFFLOADED_FAMILIES = frozenset({"GRF"})


def analyze(model: Model, target: Target, rules: Iterable[Rule], *, parallel: bool = False) -> list[Finding]:
    """Findings of `rules` on `model`. With `parallel`, a big model's GRF rules run in a helper
    process (parallel.py) while this one runs the others; the findings are the same either way."""
    ctx = Context(model, target)
    rules = list(rules)
    findings = _run_rules(ctx, rules, parallel)
    entries = suppressions.entries_of(model.proto)
    if entries:
        findings, unused = suppressions.apply(findings, entries)
        reporter = next((r for r in rules if isinstance(r, UnusedSuppression)), None)
        if reporter is not None:
            # An entry for known rules that did not run (--select/--ignore) is not known to be unused;
            # an entry naming no known rule at all is always reported.
            from .registry import all_rules

            ran = [r.code for r in rules]
            known = [r.code for r in all_rules()]
            unused = [e for e in unused
                      if any(c.startswith(e.code) for c in ran) or not any(c.startswith(e.code) for c in known)]
            findings.extend(reporter.report_unused(ctx, unused))
    if not findings:
        return findings
    # Stable order: model graph order of the location, then code. Findings made by Rule.finding carry
    # their node's position; the name lookup (a walk over every node) is only for others.
    order = _node_order(model) if any(not f.order and f.location.node is not None for f in findings) else {}
    findings.sort(key=lambda f: (f.order or order.get((f.location.subgraph, f.location.node), (-1,)), f.code, f.message))
    return findings


def _run_rules(ctx: Context, rules: list[Rule], parallel: bool) -> list[Finding]:
    findings: list[Finding] = []
    offload = [r for r in rules if r.family in OFFLOADED_FAMILIES]
    if not (parallel and offload and len(offload) < len(rules) and par.worth_it(ctx.model.node_count)):
        for rule in rules:
            findings.extend(rule.check(ctx))
        return findings
    ctx.op_index()  # shared: built once, before the fork
    with par.Helper(lambda: [f for r in offload for f in r.check(ctx)]) as helper:
        for rule in rules:
            if rule not in offload:
                findings.extend(rule.check(ctx))
        try:
            findings.extend(helper.result())
        except par.HelperFailed:
            for rule in offload:  # run them here; a rule's own exception then surfaces with its traceback
                findings.extend(rule.check(ctx))
    return findings


def _node_order(model: Model) -> dict:
    order = {}
    for gi, g in enumerate(model.graphs):
        for i, node in enumerate(g.nodes):
            name = node.name or f"{node.op_type}#{i}"
            order.setdefault((g.path, name), (gi, i))
    return order
