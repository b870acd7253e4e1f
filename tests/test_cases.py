"""Runs every case in tests/cases/*.yaml: each rule's pass and fail cases, per TensorRT release.

Case file format (one file per rule code):

    rule: TRT101
    cases:
      - id: hardmax-on-8.6          # readable, unique within the file
        kind: fail                  # fail: the rule must report; pass: it must not
        trt: "8.6"
        plugins: [MyPlugin]         # optional --plugin names
        select: [TRT, MOD503]       # optional: rules to run (default: just this rule)
        precision: fp16             # optional --precision
        shapes: ["x:1x8"]           # optional --shape values
        model: |                    # ONNX text syntax (onnx.parser.parse_model)
          <ir_version: 8, opset_import: ["" : 13]>
          g (float[2,5] x) => (float[2,5] y) { y = Hardmax<axis = 1>(x) }
        count: 1                    # optional: exact number of findings of this rule
        xfail: "reason"             # optional: a known rule bug (strict: must fail until fixed)
        external:                   # optional: move initializers to external data; the model is then
          - tensor: w               # checked from a file in a temporary folder
            location: w.bin
            file_bytes: 8           # size of the data file written (omit: no file at all)
        expect:                     # optional, fail cases: each entry must match some finding
          - node: Hardmax#0
            severity: error
            message_contains: "supported from 9.2"
            rewrite: hardmax-to-argmax-onehot  # the rewrite the finding names as its fix (null: none)
        fix: hardmax-to-argmax-onehot  # optional, fail cases: `onnxdoctor fix` at this release applies
                                    # this rewrite, and the result has no finding of the rule and no
                                    # error at all, passes onnx.checker's full check and its proof
        unsafe: true                # optional: fix with --unsafe-fixes
"""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx.numpy_helper
import onnx.parser
import pytest
import yaml

import onnxdoctor
from onnxdoctor.registry import all_rules

CASES_DIR = Path(__file__).parent / "cases"


def _load_cases():
    params = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        rule = data["rule"]
        ids = set()
        for case in data["cases"]:
            assert case["id"] not in ids, f"{path.name}: duplicate case id {case['id']}"
            ids.add(case["id"])
            marks = [pytest.mark.xfail(reason=case["xfail"], strict=True)] if case.get("xfail") else []
            params.append(pytest.param(rule, case, id=f"{rule}::{case['id']}", marks=marks))
    return params


CASES = _load_cases()


def _model(case) -> onnx.ModelProto:
    return onnx.parser.parse_model(case["model"])


def _with_external_data(model: onnx.ModelProto, specs, folder: Path) -> Path:
    for spec in specs:
        t = next(t for t in model.graph.initializer if t.name == spec["tensor"])
        nbytes = len(t.raw_data) if t.raw_data else onnx.numpy_helper.to_array(t).nbytes
        t.ClearField("raw_data")
        for field in ("float_data", "int32_data", "int64_data", "double_data"):
            t.ClearField(field)
        t.data_location = onnx.TensorProto.EXTERNAL
        for k, v in (("location", spec["location"]), ("offset", "0"), ("length", str(nbytes))):
            e = t.external_data.add()
            e.key, e.value = k, v
        if "file_bytes" in spec:
            (folder / spec["location"]).write_bytes(b"\0" * spec["file_bytes"])
    path = folder / "model.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("rule,case", CASES)
def test_case(rule, case, tmp_path):
    model = _model(case)
    if case.get("external"):
        model = _with_external_data(model, case["external"], tmp_path)
    report = onnxdoctor.check(
        model, trt=str(case["trt"]), select=case.get("select", [rule]), plugins=case.get("plugins", ()),
        precision=case.get("precision"), shapes=case.get("shapes"),
    )
    findings = [f for f in report.findings if f.code == rule]
    if case["kind"] == "pass":
        assert findings == [], f"expected no {rule} findings, got: {[f.message for f in findings]}"
        return
    assert case["kind"] == "fail", case["kind"]
    assert findings, f"expected {rule} to report on TensorRT {case['trt']}"
    if "count" in case:
        assert len(findings) == case["count"], [f.message for f in findings]
    for exp in case.get("expect", []):
        matching = [
            f
            for f in findings
            if ("node" not in exp or f.location.node == exp["node"])
            and ("severity" not in exp or str(f.severity) == exp["severity"])
            and ("tensor" not in exp or f.location.tensor == exp["tensor"])
            and ("message_contains" not in exp or exp["message_contains"] in f.message)
            and ("subgraph" not in exp or list(f.location.subgraph) == exp["subgraph"])
            and ("rewrite" not in exp or (f.fix.rewrite if f.fix else None) == exp["rewrite"])
        ]
        assert matching, f"no finding matches {exp}; got {[(f.location.node, str(f.severity), f.message, f.fix) for f in findings]}"


FIX_CASES = [p for p in CASES if "fix" in p.values[1]]


@pytest.mark.parametrize("rule,case", FIX_CASES)
def test_fix_case(rule, case):
    from onnxdoctor.fix import FixOptions, fix_model

    assert case["kind"] == "fail", "fix cases are fail cases: the model the rule flags is repaired"
    model = _model(case)
    result = fix_model(model, FixOptions(trt=str(case["trt"]), unsafe=bool(case.get("unsafe")), precision=case.get("precision"),
                                         shapes=tuple(case.get("shapes", ())), plugins=tuple(case.get("plugins", ()))))
    applied = [s.rewrite for s in result.steps if s.status == "applied"]
    assert case["fix"] in applied, [(s.rewrite, s.status, s.reason, s.skipped) for s in result.steps]
    left = [f for f in result.after if f.code == rule or str(f.severity) == "error"]
    assert not left, [(f.code, f.message) for f in left]
    onnx.checker.check_model(result.model, full_check=True)
    assert result.proof is not None and result.proof.passed, result.proof.summary() if result.proof else "no proof"


def test_every_rule_has_pass_and_fail_cases():
    kinds: dict[str, set] = {}
    for p in CASES:
        rule, case = p.values
        kinds.setdefault(rule, set()).add(case["kind"])
    missing = [r.code for r in all_rules() if kinds.get(r.code) != {"pass", "fail"}]
    assert not missing, f"rules without both pass and fail cases: {missing}"
