"""The data model every command reports: findings, their locations and fixes."""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the annotation: `findings` stays free of the knowledge base at run time
    from .target import Target


class Severity(enum.IntEnum):
    INFO = 0
    WARNING = 1
    ERROR = 2

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r} (expected error, warning or info)") from None


class Applicability(str, enum.Enum):
    SAFE = "safe"  # exactly equivalent
    UNSAFE = "unsafe"  # approximately equivalent; needs --unsafe-fixes
    DISPLAY_ONLY = "display-only"  # advice only

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Fix:
    rewrite: str
    applicability: Applicability = Applicability.SAFE

    def to_dict(self) -> dict:
        return {"rewrite": self.rewrite, "applicability": str(self.applicability)}


@dataclass(frozen=True)
class Location:
    """Where in the model a finding points: node, tensor and the subgraph path to it."""

    node: str | None = None
    op_type: str | None = None
    tensor: str | None = None
    # Path from the main graph to the graph holding the node, e.g.
    # ("If_3/then_branch",) or ("function:MyFunc",). Empty for the main graph.
    subgraph: tuple[str, ...] = ()

    def logical_name(self) -> str:
        parts = list(self.subgraph)
        if self.node is not None:
            parts.append(self.node)
        elif self.tensor is not None:
            parts.append(self.tensor)
        return "/".join(parts) if parts else "<model>"


@dataclass(frozen=True)
class Finding:
    code: str
    rule: str
    severity: Severity
    message: str
    location: Location = field(default_factory=Location)
    trt_versions: tuple[str, ...] = ()
    fix: Fix | None = None
    hint: str | None = None
    # (graph position, node index) of the node, for sorting findings in graph order; () when unknown.
    order: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict:
        loc = self.location
        return {
            "code": self.code,
            "rule": self.rule,
            "severity": str(self.severity),
            "message": self.message,
            "node": loc.node,
            "op_type": loc.op_type,
            "tensor": loc.tensor,
            "subgraph": list(loc.subgraph),
            "trt_versions": list(self.trt_versions),
            "fix": self.fix.to_dict() if self.fix else None,
            "hint": self.hint,
        }


_new = object.__new__
_set_attr = object.__setattr__


def make_location(node: str | None, op_type: str | None, tensor: str | None, subgraph: tuple[str, ...]) -> Location:
    """Location(node, op_type, tensor, subgraph), without the frozen dataclass's __init__ (one
    object.__setattr__ per field): Rule.finding makes thousands on a big model. The same object."""
    loc = _new(Location)
    _set_attr(loc, "__dict__", {"node": node, "op_type": op_type, "tensor": tensor, "subgraph": subgraph})
    return loc


def make_finding(code: str, rule: str, severity: Severity, message: str, location: Location,
                 trt_versions: tuple[str, ...], fix: Fix | None, hint: str | None, order: tuple[int, ...]) -> Finding:
    """Finding(...) with every field given, as make_location makes a Location (tests/test_findings.py
    compares the two ways)."""
    f = _new(Finding)
    _set_attr(f, "__dict__", {"code": code, "rule": rule, "severity": severity, "message": message, "location": location,
                              "trt_versions": trt_versions, "fix": fix, "hint": hint, "order": order})
    return f


@dataclass
class ReleaseResult:
    """The findings of one model for one release of a `--trt all` / `--trt A..B` run."""

    trt: str
    findings: list[Finding]

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def to_dict(self) -> dict:
        return {"trt": self.trt, **{str(s): self.count(s) for s in sorted(Severity, reverse=True)}}


@dataclass
class ModelReport:
    path: str
    findings: list[Finding]
    # Set when the model could not be read at all: then findings is empty.
    error: str | None = None
    # The lowest severity that fails this model (from --fail-on or its configuration), and its release.
    fail_on: str = "error"
    trt: str | None = None
    # The files the check read beyond the model itself (its external data): never an output.
    inputs: tuple[str, ...] = ()
    # A run over several releases: each release's findings, oldest first. `findings` then holds every
    # distinct finding of the range once, as its newest release states it, with `trt_versions` the
    # releases of the range where it was found (merge_releases).
    releases: list[ReleaseResult] | None = None

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def oldest_without_errors(self) -> str | None:
        """The oldest release of a range run whose findings hold no error (None: none, or no range)."""
        for r in self.releases or ():
            if not r.count(Severity.ERROR):
                return r.trt
        return None

    def failing_findings(self, level: Severity) -> bool:
        """Whether a finding at or above `level` was found (on any release of a range run)."""
        groups = [r.findings for r in self.releases] if self.releases else [self.findings]
        return any(f.severity >= level for fs in groups for f in fs)


_NUMBERS = re.compile(r"\d+(?:\.\d+)*")


def merge_releases(results: list[ReleaseResult]) -> list[Finding]:
    """Every distinct finding of the releases once: the same rule, severity and location, and the
    same message up to its numbers (a message names its release). Each is taken from the newest
    release where it was found, with `trt_versions` the releases where it was found; in the order
    of the newest release's report, then of older ones."""
    merged: dict[tuple, tuple[Finding, list[str]]] = {}
    for r in results:
        for f in r.findings:
            key = (f.code, f.severity, f.location, _NUMBERS.sub("#", f.message))
            hit = merged.get(key)
            merged[key] = (f, (hit[1] if hit else []) + [r.trt])
    out = [dataclasses.replace(f, trt_versions=tuple(versions)) for f, versions in merged.values()]
    out.sort(key=lambda f: (f.order or (-1,), f.code, f.message))
    return out


@dataclass
class Report:
    """Result of `check` on one or more models."""

    target: Target  # the first model's (the command's) target
    models: list[ModelReport]

    @property
    def findings(self) -> list[Finding]:
        return [f for m in self.models for f in m.findings]

    def summary(self) -> dict[str, int]:
        out = {str(s): 0 for s in sorted(Severity, reverse=True)}
        for f in self.findings:
            out[str(f.severity)] += 1
        return out

    def exit_code(self, fail_on: Severity | None = None) -> int:
        """2 if no model could be read; 1 if one could not (among others that were checked: like a
        linter's unreadable file, it fails the run and is reported at its end) or if any model has a
        finding at or above its fail-on level (`fail_on` overrides every model's own); else 0."""
        if all(m.error for m in self.models):
            return 2
        if any(m.error for m in self.models):
            return 1
        for m in self.models:
            level = fail_on if fail_on is not None else Severity.parse(m.fail_on)
            if m.failing_findings(level):
                return 1
        return 0

    @property
    def unreadable(self) -> list[ModelReport]:
        return [m for m in self.models if m.error]
