"""Runs rules over a model for a target (or for several releases) and returns findings in a stable order."""

from __future__ import annotations

import operator
from typing import Iterable, Sequence

from . import suppressions
from .checks.mod.attribute_type_mismatch import AttributeTypeMismatch
from .checks.mod.unused_suppression import UnusedSuppression
from .findings import Finding
from .model import Model
from .rule import Context, Rule
from .target import Target


def analyze(model: Model, target: Target, rules: Iterable[Rule]) -> list[Finding]:
    rules = list(rules)
    ctx = Context(model, target)
    return _finish(ctx, rules, _run(ctx, rules))


def analyze_releases(model: Model, targets: Sequence[Target], rules: Iterable[Rule]) -> list[list[Finding]]:
    """The findings of `model` for each target (releases of one `--trt all` or `--trt A..B` run),
    as `analyze` gives them for that target alone.

    The model is analysed once: analyses that do not depend on the release (graph indexes, constant
    values, pattern matches, shape classes: `Context.model_memo`) are shared by the releases, and
    rules marked `release_independent` run once, their findings counted for every release."""
    rules = list(rules)
    shared: dict = {}
    once = [r for r in rules if r.release_independent]
    each = [r for r in rules if not r.release_independent]
    common: list[Finding] = _run(Context(model, targets[-1], shared=shared), once) if targets else []
    out = []
    for target in targets:
        ctx = Context(model, target, shared=shared)
        out.append(_finish(ctx, rules, common + _run(ctx, each)))
    return out


def _run(ctx: Context, rules: Iterable[Rule]) -> list[Finding]:
    findings: list[Finding] = []
    for rule in rules:
        findings.extend(rule.check(ctx))
    return findings


def _finish(ctx: Context, rules: list[Rule], findings: list[Finding]) -> list[Finding]:
    model = ctx.model
    # Mismatched attribute types are known once every rule has read what it needs.
    for rule in rules:
        if isinstance(rule, AttributeTypeMismatch):
            findings = findings + rule.report(ctx)
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
    # Stable order: graph order of the node (Rule.finding records it: (graph position, node index);
    # model-level findings have (), which sorts first), then code and message.
    findings.sort(key=_ORDER)
    return findings


_ORDER = operator.attrgetter("order", "code", "message")
