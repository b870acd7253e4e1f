"""Models from the real PyTorch exporters (fixtures/export_real.py): no false errors on releases
that build them, and the contrib ops ONNX Runtime's optimizer leaves behind are caught by name."""

from __future__ import annotations

import pytest

import onnxdoctor

from ._fixtures import MODELS

REAL = MODELS / "real"
EXPORTS = sorted(p for p in REAL.glob("*.onnx") if "ort-optimized" not in p.name)


def test_fixtures_present():
    names = {p.stem for p in EXPORTS}
    assert {f"{m}-{e}" for m in ("bert", "gpt2", "vit", "llama") for e in ("torchscript", "dynamo")} <= names


@pytest.mark.parametrize("trt", ["10.0", "10.15", "11.5"])
@pytest.mark.parametrize("path", EXPORTS, ids=lambda p: p.stem)
def test_exported_transformers_have_no_errors(path, trt):
    report = onnxdoctor.check(path, trt=trt, select=["TRT", "MOD"])
    assert [f.message for f in report.findings if str(f.severity) == "error"] == []


@pytest.mark.parametrize("path", [p for p in EXPORTS if "torchscript" in p.name], ids=lambda p: p.stem)
def test_opset17_exports_are_clean_on_8_6(path):
    assert onnxdoctor.check(path, trt="8.6", select=["TRT", "MOD"]).findings == []


@pytest.mark.parametrize("path", [p for p in EXPORTS if "dynamo" in p.name], ids=lambda p: p.stem)
def test_dynamo_opset18_warns_on_8_6(path):
    findings = onnxdoctor.check(path, trt="8.6", select=["TRT", "MOD"]).findings
    codes = {f.code for f in findings}
    if "llama" in path.name:
        # RMSNorm's opset-18 ReduceMean takes its axes as an input, which 8.6 never reads (issue 16)
        assert codes == {"TRT131", "TRT127"}
        assert all(f.location.op_type == "ReduceMean" for f in findings if f.code == "TRT127")
    else:
        assert codes == {"TRT131"}


def test_ort_optimized_contrib_ops_are_errors():
    report = onnxdoctor.check(REAL / "bert-ort-optimized.onnx", trt="10.15")
    errors = [(f.code, f.location.op_type) for f in report.findings if str(f.severity) == "error"]
    assert sorted(set(errors)) == [("TRT102", "BiasGelu"), ("TRT102", "SkipLayerNormalization")]
    assert len(errors) == 6  # 4 SkipLayerNormalization + 2 BiasGelu, one per node
