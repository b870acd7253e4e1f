"""Suppressions stored in the model itself: `metadata_props` key `onnxdoctor:ignore`.

Value: entries separated by commas, semicolons or whitespace; each entry is `CODE` (a code or
prefix, for the whole model) or `NODE_GLOB:CODE` (nodes whose name matches the glob; the glob is
matched against the node name and against its full path `subgraph/.../node`).
"""

from __future__ import annotations

import fnmatch
import re
from typing import NamedTuple

from .findings import Finding

KEY = "onnxdoctor:ignore"


class Entry(NamedTuple):
    """One suppression: its text, the code (or prefix) and the node glob (None: the whole model)."""

    text: str
    code: str
    node_glob: str | None

    def matches(self, f: Finding) -> bool:
        if not f.code.startswith(self.code):
            return False
        if self.node_glob is None:
            return True
        loc = f.location
        names = [n for n in (loc.node, loc.tensor, loc.logical_name()) if n]
        return any(fnmatch.fnmatchcase(n, self.node_glob) for n in names)


def parse(value: str) -> list[Entry]:
    out = []
    for text in (t for t in re.split(r"[,;\s]+", value) if t):
        glob, sep, code = text.rpartition(":")
        out.append(Entry(text, code.strip().upper(), glob if sep else None))
    return out


def entries_of(proto) -> list[Entry]:
    return [e for p in proto.metadata_props if p.key == KEY for e in parse(p.value)]


def apply(findings: list[Finding], entries: list[Entry]) -> tuple[list[Finding], list[Entry]]:
    """(findings that remain, entries that matched nothing). Unused-suppression findings are never suppressed."""
    used: set[int] = set()
    kept = []
    for f in findings:
        hit = next((i for i, e in enumerate(entries) if e.matches(f)), None) if f.code != "MOD503" else None
        if hit is None:
            kept.append(f)
        else:
            used.add(hit)
            # several entries may match: mark all of them used
            used.update(i for i, e in enumerate(entries) if e.matches(f))
    return kept, [e for i, e in enumerate(entries) if i not in used]
