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
        "models": [
            {
                "path": m.path,
                "trt": m.trt,
                "error": m.error,
                "findings": [f.to_dict() for f in m.findings],
            }
            for m in report.models
        ],
        "summary": report.summary(),
    }


def render(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2) + "\n"
