"""--write-baseline / --baseline through the installed CLI."""

from __future__ import annotations

import json
import shutil

from ._fixtures import MODELS


def test_baseline_reports_only_new_findings(run_cli, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(MODELS / "example.onnx", models / "a.onnx")
    base = tmp_path / "onnxdoctor-baseline.json"
    proc = run_cli("check", models, "--trt", "10.15", "--write-baseline", base, "--isolated")
    assert proc.returncode == 0 and base.exists()
    recorded = json.loads(base.read_text())["findings"]
    assert recorded and all(e["path"] == "models/a.onnx" for e in recorded)

    again = run_cli("check", models, "--trt", "10.15", "--baseline", base, "--format", "json", "--isolated")
    assert again.returncode == 0
    assert json.loads(again.stdout)["models"][0]["findings"] == []

    # A new model with problems shows up; the baselined one stays quiet.
    shutil.copy(MODELS / "example.onnx", models / "b.onnx")
    new = run_cli("check", models, "--trt", "10.15", "--baseline", base, "--format", "json", "--isolated")
    data = json.loads(new.stdout)
    assert new.returncode == 1
    by_name = {m["path"].rsplit("/", 1)[-1]: m["findings"] for m in data["models"]}
    assert by_name["a.onnx"] == [] and len(by_name["b.onnx"]) == len(recorded)

    # A different release brings new findings on the same model (Gelu on 8.6).
    old = run_cli("check", models / "a.onnx", "--trt", "8.6", "--baseline", base, "--format", "json", "--isolated")
    codes = {f["code"] for f in json.loads(old.stdout)["models"][0]["findings"]}
    assert "TRT101" in codes


def test_bad_baseline_file(run_cli, tmp_path):
    bad = tmp_path / "b.json"
    bad.write_text("{}")
    proc = run_cli("check", MODELS / "clean.onnx", "--baseline", bad)
    assert proc.returncode == 2 and "not an onnxdoctor baseline" in proc.stderr
    proc = run_cli("check", MODELS / "clean.onnx", "--baseline", tmp_path / "missing.json")
    assert proc.returncode == 2 and "not found" in proc.stderr
