"""`check --trt all` / `--trt A..B`: every release of the range, one table, the oldest release without errors."""

from __future__ import annotations

import json

import onnx
import onnx.parser
import pytest

import onnxdoctor
from onnxdoctor import engine
from onnxdoctor.kb import knowledge_base
from onnxdoctor.model import from_proto
from onnxdoctor.registry import all_rules
from onnxdoctor.target import Target

from ._fixtures import MODELS

EXAMPLE = MODELS / "example.onnx"

# Hardmax has an importer from 9.2 (rules/trt/operators); opset 13 is documented by every release.
HARDMAX = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2,5] x) => (float[2,5] y) { h = Hardmax<axis = 1>(x)  y = Relu(h) }
"""


@pytest.fixture
def hardmax_path(tmp_path):
    path = tmp_path / "hardmax.onnx"
    onnx.save(onnx.parser.parse_model(HARDMAX), path)
    return path


def test_every_release_equals_its_own_check():
    """The shared analysis of a range gives, release by release, exactly what a check of that release
    alone gives (findings, order, messages, versions)."""
    kb = knowledge_base()
    targets = [Target.make(v) for v in kb.versions]
    for path in (EXAMPLE, MODELS / "real" / "llama-torchscript-opset14.onnx"):
        proto = onnx.load(path)
        together = engine.analyze_releases(from_proto(proto), targets, all_rules())
        assert len(together) == len(targets)
        for target, got in zip(targets, together):
            alone = engine.analyze(from_proto(proto), target, all_rules())
            assert [f.to_dict() for f in got] == [f.to_dict() for f in alone], (path.name, target.trt)


def test_all_json_matrix_and_oldest(run_cli, hardmax_path):
    proc = run_cli("check", hardmax_path, "--trt", "all", "--format", "json", "--isolated")
    assert proc.returncode == 1, proc.stderr  # errors on 8.6-9.1
    model = json.loads(proc.stdout)["models"][0]
    versions = knowledge_base().versions
    assert [r["trt"] for r in model["releases"]] == versions
    errors = {r["trt"]: r["error"] for r in model["releases"]}
    assert errors["8.6"] == errors["9.1"] == 1 and errors["9.2"] == 0 and errors[versions[-1]] == 0
    assert model["oldest_without_errors"] == "9.2"
    hardmax = [f for f in model["findings"] if f["code"] == "TRT101"]
    assert len(hardmax) == 1 and hardmax[0]["trt_versions"] == ["8.6", "9.0", "9.1"]
    assert "9.1" in hardmax[0]["message"]  # stated as its newest failing release states it
    # Each release's counts are those of a check of that release alone.
    for v in ("8.6", "9.2", "10.15"):
        alone = json.loads(run_cli("check", hardmax_path, "--trt", v, "--format", "json", "--isolated").stdout)
        row = next(r for r in model["releases"] if r["trt"] == v)
        assert {k: row[k] for k in ("error", "warning", "info")} == alone["summary"], v


def test_all_text_table_and_verdict(run_cli, hardmax_path):
    proc = run_cli("check", hardmax_path, "--trt", "all", "--isolated")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert any(ln.split()[:2] == ["8.6–9.1", "1"] for ln in lines), proc.stdout
    assert any(ln.split()[:2] == ["9.2–10.16", "0"] for ln in lines), proc.stdout  # 11.x: an info (PRC303)
    assert "oldest release without errors: 9.2; 9.1 fails on TRT101 Hardmax" in proc.stdout
    assert any("TRT101" in ln and ln.rstrip().endswith("on 8.6–9.1") for ln in lines), proc.stdout


def test_range_exit_code_and_bounds(run_cli, hardmax_path):
    ok = run_cli("check", hardmax_path, "--trt", "9.2..10", "--format", "json", "--isolated")
    assert ok.returncode == 0, ok.stdout
    releases = [r["trt"] for r in json.loads(ok.stdout)["models"][0]["releases"]]
    tens = [v for v in knowledge_base().versions if v.startswith("10.")]
    assert releases == ["9.2", "9.3", *tens]  # a bare major ends at its last release
    failing = run_cli("check", hardmax_path, "--trt", "9..9.3", "--format", "json", "--isolated")
    assert failing.returncode == 1  # 9.0 and 9.1 fail, though 9.3 passes
    assert [r["trt"] for r in json.loads(failing.stdout)["models"][0]["releases"]] == ["9.0", "9.1", "9.2", "9.3"]


@pytest.mark.parametrize("spec", ["10.5..9.0", "7..10", "10.0..banana"])
def test_bad_range_is_a_usage_error(run_cli, hardmax_path, spec):
    proc = run_cli("check", hardmax_path, "--trt", spec)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "TensorRT" in proc.stderr, proc.stderr


def test_api_range(hardmax_path):
    report = onnxdoctor.check(str(hardmax_path), trt="9.0..9.3", config=False)
    m = report.models[0]
    assert [r.trt for r in m.releases] == ["9.0", "9.1", "9.2", "9.3"]
    assert m.oldest_without_errors == "9.2"
    assert report.exit_code() == 1


def test_config_may_name_a_range(run_cli, hardmax_path):
    (hardmax_path.parent / "onnxdoctor.toml").write_text('trt = "9.1..9.2"\n')
    data = json.loads(run_cli("check", hardmax_path, "--format", "json").stdout)
    assert [r["trt"] for r in data["models"][0]["releases"]] == ["9.1", "9.2"]


def test_rules_that_never_read_the_release_run_once():
    """A rule whose module never looks at the release or the target must say so
    (`release_independent`): `--trt all` then runs it once instead of 28 times. This keeps the check
    of every release fast as rules are added (GRF409 alone cost 1.4 s over 28 releases before)."""
    import inspect
    import re

    reads_target = re.compile(r"ctx\.(release|target|precision)|fused_op_available|has_importer|versions_where")
    missing = []
    from onnxdoctor.rule import Rule

    for rule in all_rules():
        # the rule's module and those of its bases (a ConstraintRule reads the release in constraints.py)
        modules = {inspect.getmodule(k) for k in type(rule).__mro__ if issubclass(k, Rule) and k is not Rule}
        if any(k.__name__ == "ConstraintRule" for k in type(rule).__mro__):
            from onnxdoctor.checks import constraints

            modules.add(constraints)
        source = "".join(inspect.getsource(m) for m in modules)
        if not reads_target.search(source) and not rule.release_independent and not rule.code.startswith("MOD503"):
            missing.append(rule.code)
    assert not missing, f"mark release_independent = True (or read the release): {missing}"
