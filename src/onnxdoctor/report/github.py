"""GitHub Actions workflow commands (`::error file=...::message`)."""

from __future__ import annotations

from ..findings import Report, Severity
from ..terminal import printable_lines

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _escape(text: str) -> str:
    return printable_lines(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def _prop(text: str) -> str:
    return _escape(text).replace(":", "%3A").replace(",", "%2C")


def render(report: Report) -> str:
    lines = []
    for m in report.models:
        if m.error:
            lines.append(f"::error file={_prop(m.path)},title=onnxdoctor::{_escape(m.error)}")
        for f in m.findings:
            where = f.location.logical_name()
            title = f"{f.code} {f.rule}"
            lines.append(f"::{_LEVEL[f.severity]} file={_prop(m.path)},title={_prop(title)}::{_escape(f'{where}: {f.message}')}")
    return "\n".join(lines) + ("\n" if lines else "")
