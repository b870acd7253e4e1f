"""Baselines: record today's findings, then report only new ones.

A finding's fingerprint is (model path relative to the baseline file's folder, code, subgraph,
node, tensor): stable across message rewording and across machines. Fingerprints are counted, so a
second identical finding on the same node is new.
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

from .errors import UsageError
from .findings import Finding, Report

FORMAT = "onnxdoctor-baseline/1"


def _rel(path: str, root: Path) -> str:
    p = Path(path).resolve()
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return p.as_posix()


def fingerprint(path: str, f: Finding, root: Path) -> tuple:
    loc = f.location
    return (_rel(path, root), f.code, "/".join(loc.subgraph), loc.node or "", loc.tensor or "")


def render(report: Report, file: str | os.PathLike) -> tuple[str, int]:
    """The baseline file's text for `report`, to be written at `file`, and how many findings it holds."""
    root = Path(os.path.realpath(file)).parent
    entries = [
        dict(zip(("path", "code", "subgraph", "node", "tensor"), fp))
        for fp in sorted(fingerprint(m.path, f, root) for m in report.models for f in m.findings)
    ]
    return json.dumps({"format": FORMAT, "findings": entries}, indent=1) + "\n", len(entries)


def write(report: Report, file: str | os.PathLike, inputs=None) -> int:
    """Record the report's findings in `file` (io.write_text: atomic, never over an input)."""
    from .io import Inputs, write_text

    content, n = render(report, file)
    write_text(file, content, inputs or Inputs(), option="--write-baseline")
    return n


def read(file: str | os.PathLike) -> collections.Counter:
    p = Path(file)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"{p}: baseline file not found (create it with --write-baseline)") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"{p}: not a readable onnxdoctor baseline ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("findings"), list):
        raise UsageError(f"{p}: not an onnxdoctor baseline (expected format {FORMAT!r})")
    try:
        return collections.Counter(
            (e["path"], e["code"], e["subgraph"], e["node"], e["tensor"]) for e in data["findings"]
        )
    except (KeyError, TypeError):
        raise UsageError(f"{p}: malformed baseline entry") from None


def filter_new(report: Report, file: str | os.PathLike) -> int:
    """Drop findings present in the baseline (in place). Returns how many were dropped."""
    known = read(file)
    root = Path(file).resolve().parent
    dropped = 0
    for m in report.models:
        kept = []
        for f in m.findings:
            fp = fingerprint(m.path, f, root)
            if known[fp] > 0:
                known[fp] -= 1
                dropped += 1
            else:
                kept.append(f)
        m.findings = kept
    return dropped
