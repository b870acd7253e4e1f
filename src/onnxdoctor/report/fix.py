"""Rendering a fix result: text for people, JSON for machines."""

from __future__ import annotations

import json

from .. import __version__
from .._proto import node_count
from ..findings import Applicability, Severity
from ..terminal import printable_lines


def _has_subgraphs(model) -> bool:
    return node_count(model) != len(model.graph.node)


def _merged_steps(steps):
    """One entry per (rewrite, status), in order of first appearance: a rewrite applied in several
    iterations of the fixpoint loop (or once per graph it reached) is one line, its changes joined."""
    from dataclasses import replace

    merged: dict[tuple[str, str], list] = {}
    for s in steps:
        key = (s.rewrite, s.status)
        if key not in merged:
            merged[key] = [replace(s, changes=list(s.changes), skipped=list(s.skipped)), 1]
            continue
        m = merged[key][0]
        m.changes.extend(s.changes)
        m.skipped.extend(x for x in s.skipped if x not in m.skipped)
        if s.proof is not None:
            m.proof = s.proof  # the last proof: it covers every earlier pass (proven against the original)
        merged[key][1] += 1
    return [(m, n) for m, n in merged.values()]


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
        # Every node, control-flow bodies included.
        "nodes": {"before": node_count(result.original), "after": node_count(result.stubbed)},
        "steps": [s.to_dict() for s in result.steps],
        "before": {"summary": summary(result.before)},
        "after": {"summary": summary(result.after), "findings": [f.to_dict() for f in result.after]},
        "proof": None,
        "tolerance": {"atol": result.tolerance[0], "rtol": result.tolerance[1]},
        "inputs": result.inputs.to_dict() if getattr(result, "inputs", None) is not None else None,
        # wall time per phase (s) and the number of ONNX Runtime proof runs; each step has its own
        "timings": getattr(result, "timings", None) or {},
    }
    if result.proof is not None:
        d["proof"] = {"pass": result.proof.passed, "inconclusive": result.proof.inconclusive is not None,
                      "summary": result.proof.summary(),
                      "outputs": [c.to_dict() for c in result.proof.comparisons]}
    if diff is not None:
        d["diff"] = diff
    return d


def _verdict(proof) -> str:
    return "pass" if proof.passed else "inconclusive" if proof.inconclusive else "FAIL"


def render_fix(result, model_path: str, written: list[str], fmt: str, *, diff=None, explain=False, dry_run=False) -> str:
    if fmt == "json":
        return json.dumps(to_dict(result, model_path, written, diff=diff, dry_run=dry_run), indent=2) + "\n"
    lines = [f"{model_path} (TensorRT {result.target.trt})"]
    if getattr(result, "inputs", None) is not None:
        lines.append(f"  proofs ran on {result.inputs.describe()}")
    for s, passes in _merged_steps(result.steps):
        if s.status == "applied":
            proof = f"  [proof: {s.proof.summary()}]" if s.proof else "  [not proven: --no-prove]"
            times = f", {passes} passes" if passes > 1 else ""
            lines.append(f"  applied      {s.rewrite} ({s.applicability}{times}){proof}")
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
    lines.append(f"  findings: {b} -> {a} (errors {be} -> {ae}); nodes: {node_count(result.original)} -> {node_count(result.stubbed)}"
                 + (" (subgraphs included)" if _has_subgraphs(result.original) else ""))
    if result.proof is not None:
        lines.append(f"  proof of the result vs the original: {_verdict(result.proof)}, {result.proof.summary()}")
    shown = [f for f in result.after if explain or f.severity >= Severity.WARNING]
    for f in shown:
        where = f.location.node or f.location.tensor or "model"
        lines.append(f"  remaining {str(f.severity):<7} {f.code} {where}: {f.message}")
        if f.fix is None and f.hint and f.severity >= Severity.ERROR:
            # No rewrite: say what the user can do instead (a plugin, an export option).
            lines.append(f"                    {f.hint}")
    # Like ruff's "hidden fixes": what --unsafe-fixes would have tried (it was not given).
    tried = {s.rewrite for s in result.steps}
    unsafe = [f for f in result.after if f.severity >= Severity.WARNING and f.fix is not None
              and f.fix.applicability == Applicability.UNSAFE and f.fix.rewrite not in tried]
    if unsafe:
        names = ", ".join(sorted({f.fix.rewrite for f in unsafe}))
        lines.append(f"  {len(unsafe)} finding(s) left have an unsafe fix ({names}): "
                     "--unsafe-fixes applies it, proven within a looser tolerance")
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
    return printable_lines("\n".join(lines) + "\n")  # model text: no terminal control
