"""Rendering a fix result: text for people, JSON for machines."""

from __future__ import annotations

import json

from .. import __version__
from ..findings import Severity


def to_dict(result, model_path: str, written: list[str], *, diff=None, dry_run: bool = False) -> dict:
    def summary(findings):
        out = {str(s): 0 for s in sorted(Severity, reverse=True)}
        for f in findings:
            out[str(f.severity)] += 1
        return out

    d = {
        "onnxdoctor": __version__,
        "input": model_path,
        "written": written,
        "dry_run": dry_run,
        "target": result.target.to_dict(),
        "iterations": result.iterations,
        "nodes": {"before": len(result.original.graph.node), "after": len(result.model.graph.node)},
        "steps": [s.to_dict() for s in result.steps],
        "before": {"summary": summary(result.before)},
        "after": {"summary": summary(result.after), "findings": [f.to_dict() for f in result.after]},
        "proof": None,
        "tolerance": {"atol": result.tolerance[0], "rtol": result.tolerance[1]},
    }
    if result.proof is not None:
        d["proof"] = {"pass": result.proof.passed, "summary": result.proof.summary(),
                      "outputs": [c.to_dict() for c in result.proof.comparisons]}
    if diff is not None:
        d["diff"] = diff
    return d


def render_fix(result, model_path: str, written: list[str], fmt: str, *, diff=None, explain=False, dry_run=False) -> str:
    if fmt == "json":
        return json.dumps(to_dict(result, model_path, written, diff=diff, dry_run=dry_run), indent=2) + "\n"
    lines = [f"{model_path} (TensorRT {result.target.trt})"]
    for s in result.steps:
        if s.status == "applied":
            proof = f"  [proof: {s.proof.summary()}]" if s.proof else "  [not proven: --no-prove]"
            lines.append(f"  applied      {s.rewrite} ({s.applicability}){proof}")
            limit = len(s.changes) if explain else 5
            lines.extend(f"                 {c}" for c in s.changes[:limit])
            if len(s.changes) > limit:
                lines.append(f"                 ... and {len(s.changes) - limit} more (--explain or --format json lists all)")
        elif s.status == "rolled-back":
            lines.append(f"  rolled back  {s.rewrite}: {s.reason}")
        elif explain:
            lines.append(f"  no change    {s.rewrite}")
        if explain:
            lines.extend(f"                 not applied: {r}" for r in s.skipped)
    if not any(s.status == "applied" for s in result.steps):
        lines.append("  nothing to change")
    b, a = len(result.before), len(result.after)
    be = sum(1 for f in result.before if f.severity == Severity.ERROR)
    ae = sum(1 for f in result.after if f.severity == Severity.ERROR)
    lines.append(f"  findings: {b} -> {a} (errors {be} -> {ae}); nodes: {len(result.original.graph.node)} -> {len(result.model.graph.node)}")
    if result.proof is not None:
        lines.append(f"  proof of the result vs the original: {'pass' if result.proof.passed else 'FAIL'}, {result.proof.summary()}")
    shown = [f for f in result.after if explain or f.severity >= Severity.WARNING]
    for f in shown:
        where = f.location.node or f.location.tensor or "model"
        lines.append(f"  remaining {str(f.severity):<7} {f.code} {where}: {f.message}")
    hidden = len(result.after) - len(shown)
    if hidden:
        lines.append(f"  ({hidden} info finding(s) not shown: --explain lists them, `onnxdoctor check` explains them)")
    if diff is not None:
        for kind in ("removed", "added", "modified"):
            for n in diff[kind]:
                lines.append(f"  {'-' if kind == 'removed' else '+' if kind == 'added' else '~'} {n}")
    if dry_run:
        lines.append("  dry run: nothing written")
    elif written:
        lines.append(f"  wrote {', '.join(written)}")
    return "\n".join(lines) + "\n"
