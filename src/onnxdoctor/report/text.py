"""Human-readable report (rich): per model, findings grouped into distinct problems.

Findings of one rule, severity and op type whose messages differ only in names and numbers are one
problem: one line with a count and the first few nodes. Info findings are counted, not listed,
unless asked (`show`, `verbose`); `verbose` lists every finding on its own. JSON and SARIF are the
complete views."""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape as _markup_escape

from ..findings import Finding, ModelReport, Report, Severity
from ..terminal import printable


def escape(text: str) -> str:
    """Model text for rich: control characters escaped (terminal.printable), then markup escaped."""
    return _markup_escape(printable(text))

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_PLURAL = {Severity.ERROR: "errors", Severity.WARNING: "warnings", Severity.INFO: "info findings"}
DEFAULT_SHOW = frozenset({Severity.ERROR, Severity.WARNING})
# Nodes named on a problem's line before "and N more".
FIRST_NODES = 3
# A model with more findings than this gets a per-rule summary after its problems (a big report
# scrolls by; the summary is its overview).
SUMMARY_AFTER = 10

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\d+(?:\.\d+)*")


@dataclass
class _Problem:
    findings: list[Finding] = field(default_factory=list)

    @property
    def first(self) -> Finding:
        return self.findings[0]


def _problem_key(f: Finding) -> tuple:
    text = _NUMBER.sub("#", _QUOTED.sub("'…'", f.message))
    return (f.severity, f.code, f.location.op_type, text)


def problems(findings: list[Finding]) -> list[_Problem]:
    """The distinct problems among `findings`, in the order of their first finding."""
    groups: dict[tuple, _Problem] = {}
    for f in findings:
        groups.setdefault(_problem_key(f), _Problem()).findings.append(f)
    return list(groups.values())


def render(report: Report, *, color: bool = False, verbose: bool = False,
           show: frozenset[Severity] | None = None) -> str:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, no_color=not color, width=10_000, highlight=False, soft_wrap=True)
    show = frozenset(Severity) if verbose else (show or DEFAULT_SHOW)
    trt = report.target.trt
    for m in report.models:
        if m.error:
            continue  # listed at the end, where a long report does not bury it
        if m.releases:
            _release_table(console, m)
        elif not m.findings:
            console.print(f"[bold]{escape(m.path)}[/]: [green]no problems for TensorRT {m.trt or trt}[/]")
            continue
        elif not any(f.severity in show for f in m.findings):
            listed = " or ".join(_PLURAL[s] for s in sorted(show, reverse=True))
            console.print(f"[bold]{escape(m.path)}[/]: [green]no {listed} for TensorRT {m.trt or trt}[/]")
        else:
            console.print(f"[bold]{escape(m.path)}[/]")
        _findings(console, m, show, verbose)
    unreadable = report.unreadable
    for m in unreadable:
        console.print(f"[bold red]error[/]: {escape(m.error or '')}")
    console.print(_summary_line(report, len(unreadable)))
    return buf.getvalue()


def _findings(console: Console, m: ModelReport, show: frozenset[Severity], verbose: bool) -> None:
    span = _span_formatter(m)
    if verbose:
        for f in m.findings:
            _print_one(console, f, span(f))
    else:
        groups = problems(m.findings)
        order = {id(p): k for k, p in enumerate(groups)}
        if m.releases:  # oldest failing release first
            position = {r.trt: k for k, r in enumerate(m.releases)}
            groups.sort(key=lambda p: (-p.first.severity, position.get(p.first.trt_versions[0], 0), order[id(p)]))
        else:
            groups.sort(key=lambda p: (-p.first.severity, order[id(p)]))
        for p in groups:
            if p.first.severity in show:
                _print_problem(console, p, span(p.first))
        hidden = Counter(f.severity for f in m.findings if f.severity not in show)
        for sev in sorted(hidden, reverse=True):
            n = hidden[sev]
            console.print(f"  [{_STYLE[sev]}]{str(sev):<7}[/] {n} {sev} finding{'s' if n != 1 else ''} not listed"
                          f" [dim](--show {sev} or -v lists {'them' if n != 1 else 'it'})[/]")
    if len(m.findings) > SUMMARY_AFTER:
        _rule_summary(console, m.findings)


def _where(f: Finding) -> str:
    loc = f.location
    where = ""
    if loc.node is not None:
        where = f"{loc.node} ({loc.op_type})"
    elif loc.tensor is not None:
        where = f"tensor {loc.tensor}"
    if loc.subgraph:
        where = "/".join(loc.subgraph) + ("/" + where if where else "")
    return where or "model"


def _print_one(console: Console, f: Finding, span: str) -> None:
    console.print(
        f"  [{_STYLE[f.severity]}]{str(f.severity):<7}[/] [bold]{f.code}[/] {escape(_where(f))}: {escape(f.message)}"
        f" [dim]\\[{f.rule}][/]{span}"
    )
    _hint_and_fix(console, f)


def _hint_and_fix(console: Console, f: Finding) -> None:
    if f.hint:
        console.print(f"          [dim]hint: {escape(f.hint)}[/]")
    if f.fix:
        console.print(f"          [dim]fix: {f.fix.rewrite} ({f.fix.applicability})[/]")


def _print_problem(console: Console, p: _Problem, span: str) -> None:
    if len(p.findings) == 1:
        _print_one(console, p.first, span)
        return
    f = p.first
    n = len(p.findings)
    what = f.location.op_type or ("tensors" if f.location.tensor else "places")
    console.print(
        f"  [{_STYLE[f.severity]}]{str(f.severity):<7}[/] [bold]{f.code}[/] ×{n} {escape(what)}: {escape(f.message)}"
        f" [dim]\\[{f.rule}][/]{span}"
    )
    places = list(dict.fromkeys(_name(x) for x in p.findings))  # a node with two such outputs once
    names = places[:FIRST_NODES]
    more = f" and {len(places) - FIRST_NODES} more" if len(places) > FIRST_NODES else ""
    console.print(f"          at {escape(', '.join(names))}{more}")
    _hint_and_fix(console, f)


def _name(f: Finding) -> str:
    loc = f.location
    return loc.logical_name() if (loc.node or loc.tensor) else "model"


def _rule_summary(console: Console, findings: list[Finding]) -> None:
    by_code: dict[tuple, Counter] = {}
    for f in findings:
        by_code.setdefault((-f.severity, f.code, f.rule), Counter())[f.location.op_type or ""] += 1
    console.print("  [dim]by rule:[/]")
    width = max(len(f"{code} {rule}") for _, code, rule in by_code)
    for (neg, code, rule), ops in sorted(by_code.items()):
        sev = Severity(-neg)
        total = sum(ops.values())
        named = ", ".join(f"{op} {k}" for op, k in ops.most_common() if op)
        console.print(f"    [{_STYLE[sev]}]{str(sev):<7}[/] {f'{code} {rule}':<{width}} {total:>6}"
                      + (f"  {escape(named)}" if named else ""))


# -- several releases (--trt all, --trt A..B) ----------------------------------------------------

def _span_formatter(m: ModelReport):
    if not m.releases:
        return lambda f: ""
    order = [r.trt for r in m.releases]

    def span(f: Finding) -> str:
        return f" [dim]on {spans(order, f.trt_versions)}[/]"

    return span


def spans(order: list[str], versions) -> str:
    """Runs of consecutive releases of `order` among `versions`: '8.6–9.3, 10.14–11.5'."""
    wanted = set(versions)
    runs: list[list[str]] = []
    for k, v in enumerate(order):
        if v in wanted:
            if runs and order.index(runs[-1][-1]) == k - 1:
                runs[-1].append(v)
            else:
                runs.append([v])
    if len(runs) == 1 and len(runs[0]) == len(order) and len(order) > 1:
        return "every release"
    return ", ".join(r[0] if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs)


def _release_table(console: Console, m: ModelReport) -> None:
    releases = m.releases or []
    console.print(f"[bold]{escape(m.path)}[/]")
    rows: list[tuple[list[str], tuple]] = []
    for r in releases:
        counts = (r.count(Severity.ERROR), r.count(Severity.WARNING), r.count(Severity.INFO))
        if rows and rows[-1][1] == counts:
            rows[-1][0].append(r.trt)
        else:
            rows.append(([r.trt], counts))
    console.print("  [dim]TensorRT      errors  warnings   info[/]")
    for versions, (e, w, i) in rows:
        label = versions[0] if len(versions) == 1 else f"{versions[0]}–{versions[-1]}"
        style = "red" if e else "green"
        console.print(f"  [{style}]{label:<12}[/] {e:>7} {w:>9} {i:>6}")
    console.print("  " + verdict(m))


def verdict(m: ModelReport) -> str:
    """'oldest release without errors: 10.0' and what fails on the release before it."""
    releases = m.releases or []
    order = [r.trt for r in releases]
    clean = [r.trt for r in releases if not r.count(Severity.ERROR)]
    if not clean:
        if len(order) == 1:
            return f"errors on {order[0]}"
        least = min(r.count(Severity.ERROR) for r in releases)
        fewest = [r.trt for r in releases if r.count(Severity.ERROR) == least]
        return (f"errors on every release from {order[0]} to {order[-1]}"
                f" (fewest, {least}, on {spans(order, fewest)})")
    oldest = clean[0]
    text = f"oldest release without errors: {oldest}"
    if len(clean) < len(order) - order.index(oldest):
        text += f" (without errors: {spans(order, clean)})"
    k = order.index(oldest)
    if k > 0:
        before = releases[k - 1]
        codes = Counter((f.code, f.location.op_type or "") for f in before.findings if f.severity == Severity.ERROR)
        named = ", ".join(f"{code} {op}".rstrip() + (f" ×{n}" if n > 1 else "") for (code, op), n in codes.items())
        text += f"; {before.trt} fails on {named}"
    return text


def _summary_line(report: Report, unreadable: int) -> str:
    s = report.summary()
    read = len(report.models) - unreadable
    releases = next((m.releases for m in report.models if m.releases), None)
    if releases:
        first, last = releases[0].trt, releases[-1].trt
        head = f"TensorRT {first}–{last}" if first != last else f"TensorRT {first}"
        what = "distinct "
    else:
        head = f"TensorRT {report.target.trt}"
        what = ""
    line = (f"{head}: {s['error']} {what}error(s), {s['warning']} warning(s), {s['info']} info"
            f" in {read} model{'s' if read != 1 else ''}")
    if unreadable:
        line += f"; [bold red]{unreadable} model{'s' if unreadable != 1 else ''} could not be read[/]"
    return line
