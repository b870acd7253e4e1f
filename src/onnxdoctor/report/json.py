"""The stable JSON schema (docs/json-schema.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from json.encoder import c_make_encoder, encode_basestring_ascii

from .. import __version__
from ..findings import Report

SCHEMA_VERSION = 1


def to_dict(report: Report) -> dict:
    return _report(report, lazy=False)


def _report(report: Report, lazy: bool) -> dict:
    return {
        "onnxdoctor": __version__,
        "schema": SCHEMA_VERSION,
        "target": report.target.to_dict(),
        "models": [_model(m, lazy) for m in report.models],
        "summary": report.summary(),
    }


def _model(m, lazy: bool = False) -> dict:
    out = {"path": m.path, "trt": m.trt, "error": m.error}
    if m.releases is not None:  # --trt all / A..B: the matrix, then every distinct finding of the range
        out["releases"] = [r.to_dict() for r in m.releases]
        out["oldest_without_errors"] = m.oldest_without_errors
    out["findings"] = _Findings(m.findings) if lazy and m.findings else [f.to_dict() for f in m.findings]
    return out


class _Findings:
    """A model's findings, each turned into its dict only when written: the dicts of thousands of
    findings never exist all at once (a few MB at the report's peak)."""

    __slots__ = ("findings",)

    def __init__(self, findings) -> None:
        self.findings = findings


def render(report: Report) -> str:
    return "".join(_pieces(_report(report, lazy=True), 0)) + "\n"


def render_chunks(report: Report, size: int = 1 << 16) -> Iterator[str]:
    """render(report)'s text in pieces of about `size` characters, for writing it out as it is made:
    the whole text (and its encoded copy) never exists at once."""
    buf: list[str] = []
    held = 0
    for piece in _pieces(_report(report, lazy=True), 0):
        buf.append(piece)
        held += len(piece)
        if held >= size:
            yield "".join(buf)
            buf.clear()
            held = 0
    buf.append("\n")
    yield "".join(buf)


# Objects nested this deep (a finding: report > models > model > findings > finding) are written on one
# line. Still readable, and it lets the C encoder do the work: json.dumps(indent=...) runs the pure-Python
# encoder, about 4x slower on a report with thousands of findings.
_ONE_LINE_DEPTH = 4


def _pieces(obj, depth: int) -> Iterator[str]:
    """The text of `obj` (indented by depth), piece by piece."""
    dumps = json.dumps
    if type(obj) is _Findings:  # a non-empty list of one-line objects
        pad = "  " * (depth + 1)
        sep = "[\n" + pad
        written: dict[int, str] = {}
        for f in obj.findings:
            yield sep + _finding_text(f, written)
            sep = ",\n" + pad
        yield "\n" + "  " * depth + "]"
        return
    if depth >= _ONE_LINE_DEPTH or not isinstance(obj, (dict, list)) or not obj:
        yield dumps(obj)
        return
    pad = "  " * (depth + 1)
    is_dict = isinstance(obj, dict)
    yield "{\n" if is_dict else "[\n"
    for k, item in enumerate(obj.items() if is_dict else obj):
        if k:
            yield ",\n"
        if is_dict:
            yield f"{pad}{dumps(item[0])}: "
            yield from _pieces(item[1], depth + 1)
        else:
            yield pad
            yield from _pieces(item, depth + 1)
    yield "\n" + "  " * depth + ("}" if is_dict else "]")


def _finding_text(f, written: dict) -> str:
    """json.dumps(f.to_dict()), put together from pieces: a rule's findings share their code, rule
    name and severity, and most share one release list (some twenty strings, the same tuple for
    thousands of findings), one fix and one hint. `written` keeps the text of those parts for the
    findings of one report (the tuples and fixes by identity: the findings hold them while the
    report is written); only the message and the location are encoded per finding."""
    head_key = ("head", f.code, f.rule, f.severity)
    head = written.get(head_key)
    if head is None:
        head = written[head_key] = (
            f'{{"code": {_text(f.code)}, "rule": {_text(f.rule)}, "severity": {_text(str(f.severity))}, "message": ')
    fix, hint = f.fix, f.hint
    tail_key = ("tail", id(f.trt_versions), id(fix), hint)
    tail = written.get(tail_key)
    if tail is None:
        tail = written[tail_key] = (
            f', "trt_versions": {_dumps(list(f.trt_versions))}, "fix": {_dumps(fix.to_dict()) if fix else "null"}, '
            f'"hint": {_text(hint)}}}')
    loc = f.location
    subgraph = loc.subgraph
    return (f'{head}{_text(f.message)}, "node": {_text(loc.node)}, "op_type": {_text(loc.op_type)}, '
            f'"tensor": {_text(loc.tensor)}, "subgraph": {_dumps(list(subgraph)) if subgraph else "[]"}{tail}')


def _text(value) -> str:
    """json.dumps(value) for a string or None (the C string encoder directly), else json.dumps."""
    if type(value) is str:
        return _encode_str(value)
    return "null" if value is None else _dumps(value)


_encode_str = encode_basestring_ascii


def _default(o):
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


if c_make_encoder is not None:
    # json.dumps(obj) with its default arguments, made once (not per call), without the check for
    # circular references that a finding's lists of strings and fix dict cannot have
    _encode = c_make_encoder(None, _default, encode_basestring_ascii, None, ": ", ", ", False, False, True)

    def _dumps(obj) -> str:
        return "".join(_encode(obj, 0))
else:  # pragma: no cover - an interpreter without the C encoder
    _dumps = json.dumps
