"""Runs rules over a model for a target and returns findings in a stable order."""

from __future__ import annotations

from typing import Iterable

from . import suppressions
from .checks.mod.unused_suppression import UnusedSuppression
from .findings import Finding
from .model import Model
from .rule import Context, Rule
from .target import Target


def analyze(model: Model, target: Target, rules: Iterable[Rule]) -> list[Finding]:
    ctx = Context(model, target)
    findings: list[Finding] = []
    rules = list(rules)
    for rule in rules:
        findings.extend(rule.check(ctx))
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
    # Stable order: graph order of the node (Rule.finding records it; model-level findings first), then code.
    findings.sort(key=lambda f: (f.order or (-1,), f.code, f.message))
    return findings
