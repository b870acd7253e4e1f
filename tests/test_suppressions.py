"""Suppressions in the model's metadata_props, and MOD503 for unused ones."""

from __future__ import annotations

import onnx

import onnxdoctor

from ._fixtures import MODELS


def _example_with(value: str) -> onnx.ModelProto:
    m = onnx.load(MODELS / "example.onnx")
    onnx.helper.set_model_props(m, {"onnxdoctor:ignore": value})
    return m


def _codes(report):
    return sorted((f.code, f.location.node) for f in report.findings)


def test_model_wide_code():
    base = onnxdoctor.check(MODELS / "example.onnx", trt="10.15", config=False)
    assert any(f.code == "TRT102" for f in base.findings)
    r = onnxdoctor.check(_example_with("TRT102"), trt="10.15")
    assert not any(f.code == "TRT102" for f in r.findings)
    assert not any(f.code == "MOD503" for f in r.findings)


def test_node_glob_entries_and_prefixes():
    r = onnxdoctor.check(_example_with("topk_*:TRT125, reduce*:TRT12"), trt="10.15")
    codes = _codes(r)
    assert ("TRT125", "topk_7") not in codes and ("TRT122", "reducemean_8") not in codes
    assert ("TRT102", "fusedmatmul_3") in codes


def test_unused_entry_is_reported():
    r = onnxdoctor.check(_example_with("TRT102;gelu_*:TRT101"), trt="10.15")  # Gelu is supported on 10.15
    unused = [f for f in r.findings if f.code == "MOD503"]
    assert len(unused) == 1 and "gelu_*:TRT101" in unused[0].message
    assert str(unused[0].severity) == "info"
    # on 8.6 the same entry is used
    r86 = onnxdoctor.check(_example_with("TRT102;gelu_*:TRT101"), trt="8.6")
    assert not any(f.code == "MOD503" for f in r86.findings)
    assert not any(f.code == "TRT101" and f.location.node == "gelu_1" for f in r86.findings)


def test_unused_suppression_can_be_ignored():
    r = onnxdoctor.check(_example_with("TRT999"), trt="10.15", ignore=["MOD503"])
    assert not any(f.code == "MOD503" for f in r.findings)


def test_suppressions_through_the_cli(run_cli, tmp_path):
    import json

    path = tmp_path / "m.onnx"
    onnx.save(_example_with("fusedmatmul_*:TRT102 TRT999"), path)
    proc = run_cli("check", path, "--trt", "10.15", "--format", "json", "--isolated")
    findings = json.loads(proc.stdout)["models"][0]["findings"]
    codes = [(f["code"], f["node"]) for f in findings]
    assert ("TRT102", "fusedmatmul_3") not in codes
    unused = [f for f in findings if f["code"] == "MOD503"]
    assert len(unused) == 1 and "TRT999" in unused[0]["message"]
    assert proc.returncode == 1  # TopK K > 3840 is still an error
