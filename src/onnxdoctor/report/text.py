"""Human-readable report, grouped by model (rich)."""

from __future__ import annotations

import io

from rich.console import Console
from rich.markup import escape

from ..findings import Report, Severity

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def render(report: Report, *, color: bool = False) -> str:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, no_color=not color, width=10_000, highlight=False, soft_wrap=True)
    trt = report.target.trt
    for m in report.models:
        if m.error:
            console.print(f"[bold red]error[/]: {escape(m.error)}")
            continue
        if not m.findings:
            console.print(f"[bold]{escape(m.path)}[/]: [green]no problems for TensorRT {trt}[/]")
            continue
        console.print(f"[bold]{escape(m.path)}[/]")
        for f in m.findings:
            loc = f.location
            where = ""
            if loc.node is not None:
                where = f"{loc.node} ({loc.op_type})"
            elif loc.tensor is not None:
                where = f"tensor {loc.tensor}"
            if loc.subgraph:
                where = "/".join(loc.subgraph) + ("/" + where if where else "")
            where = where or "model"
            sev = str(f.severity)
            console.print(
                f"  [{_STYLE[f.severity]}]{sev:<7}[/] [bold]{f.code}[/] {escape(where)}: {escape(f.message)}"
                f" [dim]\\[{f.rule}][/]"
            )
            if f.hint:
                console.print(f"          [dim]hint: {escape(f.hint)}[/]")
            if f.fix:
                console.print(f"          [dim]fix: {f.fix.rewrite} ({f.fix.applicability})[/]")
    s = report.summary()
    n = len(report.models)
    console.print(
        f"TensorRT {trt}: {s['error']} error(s), {s['warning']} warning(s), {s['info']} info in {n} model{'s' if n != 1 else ''}"
    )
    return buf.getvalue()
