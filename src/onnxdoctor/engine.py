"""Runs rules over a model for a target and returns findings in a stable order."""

from __future__ import annotations

from typing import Iterable

from .findings import Finding
from .model import Model
from .rule import Context, Rule
from .target import Target


def analyze(model: Model, target: Target, rules: Iterable[Rule]) -> list[Finding]:
    ctx = Context(model, target)
    findings: list[Finding] = []
    for rule in rules:
        findings.extend(rule.check(ctx))
    if not findings:
        return findings
    # Stable order: model graph order of the location, then code.
    order = _node_order(model)
    findings.sort(key=lambda f: (order.get((f.location.subgraph, f.location.node), (-1,)), f.code, f.message))
    return findings


def _node_order(model: Model) -> dict:
    order = {}
    for gi, g in enumerate(model.graphs):
        for i, node in enumerate(g.nodes):
            name = node.name or f"{node.op_type}#{i}"
            order.setdefault((g.path, name), (gi, i))
    return order
