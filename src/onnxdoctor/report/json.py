"""The stable JSON schema (docs/json-schema.md)."""

from __future__ import annotations

import json

from .. import __version__
from ..findings import Report

SCHEMA_VERSION = 1


def to_dict(report: Report) -> dict:
    return {
        "onnxdoctor": __version__,
        "schema": SCHEMA_VERSION,
        "target": report.target.to_dict(),
        "models": [_model(m) for m in report.models],
        "summary": report.summary(),
    }


def _model(m) -> dict:
    out = {"path": m.path, "trt": m.trt, "error": m.error}
    if m.releases is not None:  # --trt all / A..B: the matrix, then every distinct finding of the range
        out["releases"] = [r.to_dict() for r in m.releases]
        out["oldest_without_errors"] = m.oldest_without_errors
    out["findings"] = [f.to_dict() for f in m.findings]
    return out


def render(report: Report) -> str:
    return _pretty(to_dict(report), 0) + "\n"


# Objects nested this deep (a finding: report > models > model > findings > finding) are written on one
# line. Still readable, and it lets the C encoder do the work: json.dumps(indent=...) runs the pure-Python
# encoder, about 4x slower on a report with thousands of findings.
_ONE_LINE_DEPTH = 4


def _pretty(obj, depth: int) -> str:
    if depth >= _ONE_LINE_DEPTH or not isinstance(obj, (dict, list)) or not obj:
        return json.dumps(obj)
    pad = "  " * (depth + 1)
    if isinstance(obj, dict):
        body = ",\n".join(f"{pad}{json.dumps(k)}: {_pretty(v, depth + 1)}" for k, v in obj.items())
        return "{\n" + body + "\n" + "  " * depth + "}"
    body = ",\n".join(pad + _pretty(v, depth + 1) for v in obj)
    return "[\n" + body + "\n" + "  " * depth + "]"
