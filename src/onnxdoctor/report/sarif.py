"""SARIF 2.1.0 output for GitHub code scanning: rules under tool.driver.rules, nodes as logical locations."""

from __future__ import annotations

import json
from pathlib import Path

from .. import __version__
from ..findings import Report, Severity
from ..registry import all_rules

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
DOCS_URL = "https://github.com/onnxdoctor/onnxdoctor/blob/main/docs/rules/{code}.md"


def to_dict(report: Report) -> dict:
    rules = list(all_rules())
    index = {r.code: i for i, r in enumerate(rules)}
    driver_rules = []
    for r in rules:
        sections = r.doc_sections()
        driver_rules.append(
            {
                "id": r.code,
                "name": r.name,
                "shortDescription": {"text": r.summary},
                "fullDescription": {"text": sections.get("What it does", r.summary)},
                "help": {"text": sections.get("How to fix", ""), "markdown": r.doc()},
                "helpUri": DOCS_URL.format(code=r.code),
                "defaultConfiguration": {"level": _LEVEL[r.severity]},
                "properties": {"tags": [r.family]},
            }
        )
    results = []
    invocations_notes = []
    for m in report.models:
        if m.error:
            invocations_notes.append({"level": "error", "message": {"text": m.error}})
            continue
        for f in m.findings:
            logical = {"name": f.location.node or f.location.tensor or "model", "fullyQualifiedName": f.location.logical_name()}
            # SARIF's standard kinds: a node is a unit of computation, a tensor a value, the model a module.
            logical["kind"] = "function" if f.location.node else "variable" if f.location.tensor else "module"
            results.append(
                {
                    "ruleId": f.code,
                    "ruleIndex": index.get(f.code, -1),
                    "level": _LEVEL[f.severity],
                    "message": {"text": f.message + (f" Hint: {f.hint}" if f.hint else "")},
                    "locations": [
                        {
                            "physicalLocation": {"artifactLocation": {"uri": _uri(m.path)}, "region": {"startLine": 1}},
                            "logicalLocations": [logical],
                        }
                    ],
                    "partialFingerprints": {"onnxdoctor/v1": f"{f.code}:{f.location.logical_name()}:{f.message}"},
                    "properties": {"trt_versions": list(f.trt_versions), "op_type": f.location.op_type},
                }
            )
    run = {
        "tool": {"driver": {"name": "onnxdoctor", "version": __version__, "informationUri": "https://github.com/onnxdoctor/onnxdoctor", "rules": driver_rules}},
        "results": results,
        "invocations": [{"executionSuccessful": not invocations_notes, "toolExecutionNotifications": invocations_notes}],
        "properties": {"target": report.target.to_dict()},
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _uri(path: str) -> str:
    """Repository-relative URI when the file is under the working directory (what code scanning expects)."""
    p = Path(path)
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return p.resolve().as_uri()


def render(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2) + "\n"
