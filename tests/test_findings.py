"""findings.make_finding / make_location: the fast constructors Rule.finding uses make the very objects
the dataclasses' own constructors make (fields, equality, hash, repr, dict order, replace, pickle)."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from onnxdoctor.findings import Applicability, Finding, Fix, Location, Severity, make_finding, make_location


@pytest.mark.parametrize("fields", [
    ("GRF409", "known-shape-computation", Severity.INFO, "m", ("n", "Shape", "t", ()), ("8.6", "10.0"), None, "h", (0, 3)),
    ("TRT116", "rejected-input-type", Severity.ERROR, "x", (None, None, "w", ("If_1/then_branch",)), ("10.0",),
     Fix("fold-constants", Applicability.UNSAFE), None, ()),
])
def test_fast_constructors_make_the_dataclasses_objects(fields):
    code, rule, severity, message, (node, op, tensor, sub), versions, fix, hint, order = fields
    slow = Finding(code=code, rule=rule, severity=severity, message=message,
                   location=Location(node=node, op_type=op, tensor=tensor, subgraph=sub),
                   trt_versions=versions, fix=fix, hint=hint, order=order)
    fast = make_finding(code, rule, severity, message, make_location(node, op, tensor, sub), versions, fix, hint, order)
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert list(vars(fast).items()) == list(vars(slow).items())
    assert list(vars(fast.location).items()) == list(vars(slow.location).items())
    assert fast.to_dict() == slow.to_dict() and fast.order == slow.order
    assert dataclasses.replace(fast, hint="other") == dataclasses.replace(slow, hint="other")
    assert pickle.loads(pickle.dumps(fast)) == slow
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.code = "X"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.location.node = "X"  # type: ignore[misc]


def test_json_report_line_of_a_finding_is_json_dumps_of_its_dict():
    # report/json.py puts each finding's line together from pieces (the release list, fix and hint
    # encoded once per report): the line must still be what json.dumps makes, also when the text
    # holds a key, quotes or control characters.
    import json

    from onnxdoctor.report.json import _finding_text

    shared = ("8.6", "10.0", "11.5")
    tricky = ['"trt_versions": "\\u0000"', "\x00", '"trt_versions": ', "é\u2028\n\"", ""]
    findings = [
        make_finding("GRF409", "known-shape-computation", Severity.INFO, m, make_location(n, "Shape", t, (s,) if s else ()),
                     versions, fix, m, (0, k))
        for k, (m, n, t, s) in enumerate([(a, b, c, d) for a in tricky for b in (None, tricky[0]) for c in (None, tricky[1])
                                          for d in ("", tricky[2])])
        for versions in (shared, ("10.0",), ())
        for fix in (None, Fix("fold-constants", Applicability.SAFE))
    ]
    written: dict = {}
    for f in findings:
        line = _finding_text(f, written)
        assert line == json.dumps(f.to_dict())
        assert json.loads(line) == f.to_dict()
    # the shared release list is encoded once per (fix, hint) it goes with, not once per finding
    shared_tails = [k for k in written if k[0] == "tail" and k[1] == id(shared)]
    assert len(shared_tails) == len({(id(f.fix), f.hint) for f in findings if f.trt_versions is shared})
