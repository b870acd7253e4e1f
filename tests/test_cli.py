"""The installed `onnxdoctor` entry point: exit codes, formats, options."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from ._fixtures import MODELS

EXAMPLE = MODELS / "example.onnx"
CLEAN = MODELS / "clean.onnx"


def _json(proc):
    return json.loads(proc.stdout)


def test_example_per_release(run_cli):
    old = run_cli("check", EXAMPLE, "--trt", "8.6", "--format", "json")
    new = run_cli("check", EXAMPLE, "--trt", "10.15", "--format", "json")
    assert old.returncode == 1 and new.returncode == 1
    codes_old = {(f["code"], f["node"]) for f in _json(old)["models"][0]["findings"]}
    codes_new = {(f["code"], f["node"]) for f in _json(new)["models"][0]["findings"]}
    assert ("TRT101", "gelu_1") in codes_old and ("TRT101", "gelu_1") not in codes_new
    assert ("TRT125", "topk_7") in codes_new and ("TRT125", "topk_7") not in codes_old
    assert ("TRT102", "fusedmatmul_3") in codes_old & codes_new


def test_json_schema_fields(run_cli):
    proc = run_cli("check", EXAMPLE, "--trt", "10", "--format", "json")
    data = _json(proc)
    assert data["onnxdoctor"] and data["target"] == {"trt": "10.16"}
    f = data["models"][0]["findings"][0]
    assert set(f) >= {"code", "rule", "severity", "message", "node", "op_type", "tensor", "subgraph", "trt_versions", "fix"}
    assert data["summary"] == {
        s: sum(1 for x in data["models"][0]["findings"] if x["severity"] == s) for s in ("error", "warning", "info")
    }


def test_clean_model_exit_0(run_cli):
    proc = run_cli("check", CLEAN, "--trt", "8.6")
    assert proc.returncode == 0, proc.stdout
    assert "no problems" in proc.stdout


def test_fail_on_warning(run_cli):
    proc = run_cli("check", EXAMPLE, "--trt", "10.15", "--select", "TRT112", "--fail-on", "warning")
    assert proc.returncode == 1
    proc = run_cli("check", EXAMPLE, "--trt", "10.15", "--select", "TRT112")
    assert proc.returncode == 0


def test_select_and_ignore(run_cli):
    only = _json(run_cli("check", EXAMPLE, "--trt", "10.15", "--select", "TRT12", "--format", "json"))
    assert {f["code"][:5] for f in only["models"][0]["findings"]} == {"TRT12"}
    ign = _json(run_cli("check", EXAMPLE, "--trt", "10.15", "--ignore", "TRT12,custom-domain-operator", "--format", "json"))
    codes = {f["code"] for f in ign["models"][0]["findings"]}
    assert not any(c.startswith("TRT12") or c == "TRT102" for c in codes) and codes


def test_unknown_rule_is_usage_error(run_cli):
    proc = run_cli("check", EXAMPLE, "--select", "XYZ999")
    assert proc.returncode == 2 and "matches no rule" in proc.stderr


def test_unknown_version_lists_known(run_cli):
    proc = run_cli("check", EXAMPLE, "--trt", "7.2")
    assert proc.returncode == 2
    assert "8.6" in proc.stderr and "11.5" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("spec,resolved", [("8.6", "8.6"), ("10", "10.16"), ("10.15", "10.15"), ("10.15.1", "10.15"), ("11", "11.5"), ("latest", "11.5")])
def test_version_forms(run_cli, spec, resolved):
    data = _json(run_cli("check", CLEAN, "--trt", spec, "--format", "json"))
    assert data["target"]["trt"] == resolved


def test_plugin_flag_silences_custom_op(run_cli):
    proc = run_cli("check", EXAMPLE, "--trt", "10.15", "--plugin", "FusedMatMul", "--format", "json")
    codes = {(f["code"], f["severity"]) for f in _json(proc)["models"][0]["findings"]}
    assert ("TRT102", "error") not in codes and ("TRT103", "info") in codes


def test_directory_and_several_models(run_cli, tmp_path):
    d = tmp_path / "repo" / "sub"
    d.mkdir(parents=True)
    shutil.copy(EXAMPLE, d / "a.onnx")
    shutil.copy(CLEAN, tmp_path / "repo" / "b.onnx")
    (tmp_path / "repo" / "notes.txt").write_text("x")
    data = _json(run_cli("check", tmp_path / "repo", "--format", "json", "--trt", "10.15"))
    paths = [m["path"] for m in data["models"]]
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["b.onnx", "a.onnx"]


def test_bad_model_among_good_ones(run_cli, tmp_path):
    """Like a linter's unreadable file: the others are checked, the run fails (exit 1, not 2: the
    check ran), and the model is reported at the end, not buried among the findings."""
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"junk")
    proc = run_cli("check", CLEAN, bad, "--format", "json")
    assert proc.returncode == 1
    data = _json(proc)
    assert data["models"][0]["error"] is None and "bad.onnx" in data["models"][1]["error"]
    assert proc.stderr.strip().splitlines() == [f"onnxdoctor: {data['models'][1]['error']}"]


def test_folder_run_reports_unreadable_models_at_the_end(run_cli, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a-bad.onnx").write_bytes(b"junk")
    shutil.copy(EXAMPLE, repo / "b.onnx")
    shutil.copy(CLEAN, repo / "c.onnx")
    proc = run_cli("check", repo, "--trt", "8.6", "--isolated")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[-1].endswith("in 2 models; 1 model could not be read"), lines[-1]
    assert lines[-2].startswith("error: ") and "a-bad.onnx" in lines[-2]
    assert sum("a-bad.onnx" in ln for ln in lines) == 1  # not also in place, at the top
    assert lines[0] == f"{repo / 'b.onnx'}"  # the readable models are checked as usual
    # clean models and an unreadable one: still exit 1
    assert run_cli("check", repo / "a-bad.onnx", repo / "c.onnx", "--trt", "8.6", "--isolated").returncode == 1


def test_nothing_readable_is_exit_2(run_cli, tmp_path):
    for name in ("x.onnx", "y.onnx"):
        (tmp_path / name).write_bytes(b"junk")
    proc = run_cli("check", tmp_path, "--format", "json", "--isolated")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 2
    single = run_cli("check", tmp_path / "x.onnx")
    assert single.returncode == 2 and single.stdout == "" and len(single.stderr.strip().splitlines()) == 1


def test_output_file(run_cli, tmp_path):
    out = tmp_path / "report.json"
    proc = run_cli("check", EXAMPLE, "--format", "json", "-o", out)
    assert proc.stdout == "" and _json(type("P", (), {"stdout": out.read_text()}))["models"]


def test_sarif_is_valid_2_1_0(run_cli):
    jsonschema = pytest.importorskip("jsonschema")
    from pathlib import Path

    schema = json.loads((Path(__file__).parent / "data" / "sarif-2.1.0-subset.schema.json").read_text())
    data = _json(run_cli("check", EXAMPLE, "--trt", "10.15", "--format", "sarif"))
    jsonschema.validate(data, schema)
    run = data["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert "TRT101" in rule_ids and rule_ids == sorted(rule_ids)
    res = run["results"][0]
    assert rule_ids[res["ruleIndex"]] == res["ruleId"]
    assert res["locations"][0]["logicalLocations"][0]["name"]


def test_github_annotations(run_cli):
    proc = run_cli("check", EXAMPLE, "--trt", "10.15", "--format", "github")
    lines = proc.stdout.splitlines()
    assert lines and all(ln.startswith(("::error ", "::warning ", "::notice ")) for ln in lines)
    assert any("TRT102" in ln and "fusedmatmul_3" in ln for ln in lines)


def test_rules_and_explain(run_cli):
    proc = run_cli("rules", "--format", "json")
    codes = [r["code"] for r in _json(proc)["rules"]]
    assert "TRT101" in codes and codes == sorted(codes)
    ex = run_cli("explain", "TRT101")
    assert ex.returncode == 0 and "## Why it breaks TensorRT" in ex.stdout
    assert run_cli("explain", "unsupported-operator").stdout == ex.stdout
    assert run_cli("explain", "NOPE1").returncode == 2


def test_python_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "onnxdoctor", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "onnxdoctor" in proc.stdout


def test_check_does_not_import_heavy_backends(tmp_path):
    code = (
        "import sys, onnxdoctor; onnxdoctor.check(sys.argv[1], trt='10.15');"
        "bad=[m for m in ('onnxruntime','polygraphy','tensorrt','onnx_graphsurgeon') if m in sys.modules];"
        "print(','.join(bad))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(EXAMPLE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_profile_command_10x_and_11x(run_cli):
    bert = MODELS / "real" / "bert-torchscript.onnx"
    p10 = json.loads(run_cli("profile", bert, "--trt", "10.15", "--format", "json", "--isolated").stdout)
    assert [i["name"] for i in p10["inputs"]] == ["input_ids", "attention_mask"]
    assert p10["validation"]["validated"] is True  # min, opt and max each ran in ONNX Runtime
    ids, mask = p10["inputs"]
    assert (ids["min"], ids["opt"], ids["max"]) == (mask["min"], mask["opt"], mask["max"])
    assert "--stronglyTyped" in p10["trtexec"] and f"--minShapes=input_ids:{'x'.join(map(str, ids['min']))}," in p10["trtexec"]
    proc = run_cli("profile", bert, "--trt", "11", "--shape", "input_ids:1x1:2x64:4x64", "--precision", "fp16", "--isolated")
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("trtexec"))
    assert "--maxShapes=input_ids:4x64,attention_mask:4x64" in line  # shared dims follow the flagged input
    assert "--fp16" not in line and "--int8" not in line and "--stronglyTyped" not in line


def test_profile_bad_shape_is_usage_error(run_cli):
    proc = run_cli("profile", MODELS / "real" / "bert-torchscript.onnx", "--shape", "nope:1x2")
    assert proc.returncode == 2 and "nope" in proc.stderr
