"""The text report: one line per distinct problem, info counted, a per-rule summary; JSON stays complete."""

from __future__ import annotations

import json

import onnx
import onnx.parser
import pytest

# Five Hardmax nodes (no importer on 8.6: TRT101 each) and six no-op Identity nodes (GRF405, info).
MODEL = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2,5] x) => (float[2,5] y) {
  h1 = Hardmax<axis = 1>(x)
  h2 = Hardmax<axis = 1>(h1)
  h3 = Hardmax<axis = 1>(h2)
  h4 = Hardmax<axis = 1>(h3)
  h5 = Hardmax<axis = 1>(h4)
  i1 = Identity(h5)
  i2 = Identity(i1)
  i3 = Identity(i2)
  i4 = Identity(i3)
  i5 = Identity(i4)
  y = Identity(i5)
}
"""


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(onnx.parser.parse_model(MODEL), path)
    return path


def _check(run_cli, path, *args):
    return run_cli("check", path, "--trt", "8.6", "--isolated", *args)


def test_findings_of_one_problem_are_one_line(run_cli, model_path):
    proc = _check(run_cli, model_path)
    assert proc.returncode == 1
    out = proc.stdout.splitlines()
    trt101 = [ln for ln in out[:out.index("  by rule:")] if "TRT101" in ln]
    assert len(trt101) == 1, proc.stdout
    assert "TRT101 ×5 Hardmax:" in trt101[0]
    at = out[out.index(trt101[0]) + 1].strip()
    assert at == "at Hardmax#0, Hardmax#1, Hardmax#2 and 2 more", proc.stdout
    # info is counted, not listed
    assert not any("GRF405" in ln and "Identity" in ln and ":" in ln.split("GRF405")[1][:20] for ln in out)
    assert any("info findings not listed" in ln and ln.split()[1] == str(_count(run_cli, model_path, "info")) for ln in out)
    # the last line is the summary over all findings
    assert out[-1] == f"TensorRT 8.6: 5 error(s), 0 warning(s), {_count(run_cli, model_path, 'info')} info in 1 model"


def _count(run_cli, path, severity):
    data = json.loads(_check(run_cli, path, "--format", "json").stdout)
    return sum(1 for f in data["models"][0]["findings"] if f["severity"] == severity)


def test_summary_by_rule_after_a_big_report(run_cli, model_path):
    out = _check(run_cli, model_path).stdout.splitlines()
    start = out.index("  by rule:")
    rows = {ln.split()[1]: ln.split() for ln in out[start + 1:-1]}
    assert rows["TRT101"][:4] == ["error", "TRT101", "unsupported-operator", "5"] and rows["TRT101"][4:] == ["Hardmax", "5"]
    assert rows["GRF405"][0] == "info" and int(rows["GRF405"][3]) == _count(run_cli, model_path, "info") - sum(
        int(r[3]) for c, r in rows.items() if c not in ("GRF405", "TRT101"))


def test_show_info_and_verbose(run_cli, model_path):
    shown = _check(run_cli, model_path, "--show", "info").stdout
    assert "GRF405 ×" in shown and "TRT101" not in shown.split("by rule:")[0]  # only what was asked
    both = _check(run_cli, model_path, "--show", "error,info").stdout
    assert "TRT101 ×5" in both and "GRF405 ×" in both and "not listed" not in both
    verbose = _check(run_cli, model_path, "-v").stdout.splitlines()
    assert sum(1 for ln in verbose if ln.lstrip().startswith("error   TRT101 Hardmax#")) == 5
    assert sum(1 for ln in verbose if ln.lstrip().startswith("info    GRF405 ")) >= 5
    bad = _check(run_cli, model_path, "--show", "loud")
    assert bad.returncode == 2 and bad.stdout == "" and "--show" in bad.stderr


def test_json_and_sarif_stay_complete(run_cli, model_path):
    data = json.loads(_check(run_cli, model_path, "--format", "json").stdout)
    assert sum(1 for f in data["models"][0]["findings"] if f["code"] == "TRT101") == 5
    sarif = json.loads(_check(run_cli, model_path, "--format", "sarif").stdout)
    assert sum(1 for r in sarif["runs"][0]["results"] if r["ruleId"] == "TRT101") == 5


def test_clean_apart_from_info_is_one_line_and_a_count(run_cli, tmp_path):
    path = tmp_path / "c.onnx"
    onnx.save(onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2,5] x) => (float[2,5] y) { i = Identity(x)  y = Relu(i) }
    """), path)
    out = _check(run_cli, path).stdout.splitlines()
    assert out[0] == f"{path}: no errors or warnings for TensorRT 8.6"
    assert out[1].split()[:4] == ["info", "1", "info", "finding"]
    assert len(out) == 3
