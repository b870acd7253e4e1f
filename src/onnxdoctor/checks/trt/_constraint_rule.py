"""Base for the rules that report violations of `rules/trt/constraints.toml`, split by constraint kind."""

from __future__ import annotations

from typing import ClassVar

from ...findings import Severity
from ...rule import Context, Rule
from ..constraints import constraint_versions, violations

CONTROL_FLOW_OPS = frozenset({"If", "Loop", "Scan"})


class ConstraintRule(Rule):
    kinds: ClassVar[frozenset[str]]
    control_flow: ClassVar[bool] = False
    hint_text: ClassVar[str]

    def fix_for(self, ctx: Context, v):
        """The fix a violation's finding names (the constraint's own by default)."""
        return self.fix_by(v.fix) if v.fix else None

    def check(self, ctx: Context):
        for v in violations(ctx):
            c = v.constraint
            if (c.op in CONTROL_FLOW_OPS) != self.control_flow:
                continue
            if not self.control_flow and c.kind not in self.kinds:
                continue
            msg = f"{c.message} ({v.detail})" if v.detail and v.detail not in c.message else c.message
            yield self.finding(
                ctx,
                msg,
                node=v.node,
                severity=Severity.parse(v.severity or c.severity),
                fix=self.fix_for(ctx, v),
                versions=constraint_versions(ctx, c),
                hint=self.hint_text,
            )
