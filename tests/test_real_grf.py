"""GRF rules on models from the real PyTorch exporters (fixtures/models/real): the unfused patterns
each exporter really emits are found, exactly as many times as the models contain them, and the
hygiene rules raise no false alarms on clean exports."""

from __future__ import annotations

from collections import Counter

import pytest

import onnxdoctor
from onnxdoctor.patterns.decomposed import iter_matches, match_gelu, match_layer_norm, match_rms_norm
from onnxdoctor.model import load

from ._fixtures import MODELS

REAL = MODELS / "real"
EXPORTS = sorted(p.stem for p in REAL.glob("*.onnx") if "ort-optimized" not in p.name)


def _codes(name: str, trt: str = "10.15", select=("GRF",)) -> Counter:
    report = onnxdoctor.check(REAL / f"{name}.onnx", trt=trt, select=list(select))
    return Counter(f.code for f in report.findings)


# Tiny models: BERT/GPT-2/ViT have 2 layers x 2 LayerNorms + one more (embeddings or final);
# Llama has 2 layers x 2 RMSNorms + the final norm; every MLP has one GELU (2 layers).
LAYER_NORMS = {"bert": 5, "gpt2": 5, "vit": 5}
GELUS = {"bert": ("none", 2), "vit": ("none", 2), "gpt2": ("tanh", 2)}


@pytest.mark.parametrize("name", EXPORTS)
def test_layer_norm_found_only_where_decomposed(name):
    family = name.split("-")[0]
    expected = LAYER_NORMS.get(family, 0) if name.endswith("opset14") else 0
    assert _codes(name)["GRF411"] == expected
    # opset-14 exports fuse on 8.6 too (LayerNormalization importer, opset 17 reachable)
    if expected:
        assert _codes(name, "8.6")["GRF411"] == expected


@pytest.mark.parametrize("name", EXPORTS)
def test_gelu_forms(name):
    family = name.split("-")[0]
    approx, n = GELUS.get(family, (None, 0))
    model = load(REAL / f"{name}.onnx")
    found = [r for _, r in iter_matches(model, model.main, match_gelu) if r]
    assert len(found) == n
    assert {m.approximate for m in found} == ({approx} if n else set())
    assert _codes(name)["GRF412"] == n
    assert _codes(name, "9.3")["GRF412"] == 0  # no Gelu importer before 10.0


def test_gelu_placement_of_half_differs_between_exporters():
    def forms(name):
        model = load(REAL / f"{name}.onnx")
        return {r.form for _, r in iter_matches(model, model.main, match_gelu) if r}

    assert forms("bert-torchscript") == {"Erf, x·(1+·)·0.5"}
    assert forms("bert-dynamo") == {"Erf, 0.5·(1+·)·x"}
    assert forms("gpt2-dynamo") == {"Tanh approximation, (0.5·x)·(1+·)"}


@pytest.mark.parametrize("name", ["llama-torchscript", "llama-torchscript-opset14", "llama-dynamo"])
def test_rms_norm_both_exporters(name):
    assert _codes(name)["GRF413"] == 5
    assert _codes(name, "10.14")["GRF413"] == 0  # no RMSNormalization importer before 10.15
    model = load(REAL / f"{name}.onnx")
    found = [r for _, r in iter_matches(model, model.main, match_rms_norm) if r]
    assert len(found) == 5 and all(m.gamma and m.axis == -1 for m in found)
    if "dynamo" in name:
        assert {m.form for m in found} == {"Mul by Reciprocal(Sqrt)"}
    else:
        # HF LlamaRMSNorm's cast back to the input dtype (FLOAT -> FLOAT here) is inside the pattern
        assert {m.form for m in found} == {"Mul by Div(1, Sqrt)"}
        assert all([n.op_type for n in m.nodes][-2:] == ["Cast", "Mul"] for m in found)


@pytest.mark.parametrize("name", [n for n in EXPORTS if n.startswith("llama")])
def test_rms_norm_is_not_a_layer_norm(name):
    model = load(REAL / f"{name}.onnx")
    results = [r for _, r in iter_matches(model, model.main, match_layer_norm)]
    assert results and not any(results)
    assert {r.reason for r in results} == {"the squared tensor is not x - mean(x) (no Sub): not a LayerNorm (an RMSNorm?)"}


@pytest.mark.parametrize("name", EXPORTS)
def test_no_hygiene_false_alarms_on_clean_exports(name):
    codes = _codes(name)
    assert codes["GRF402"] == 0 and codes["GRF403"] == 0 and codes["GRF406"] == 0
    if "dynamo" in name:
        # the dynamo exporter folds constants, dedupes initializers and drops no-ops itself
        assert not {"GRF401", "GRF404", "GRF405"} & set(codes)


def test_torchscript_noops_are_reported():
    # tied-weight Identity nodes, plus Cast-to-FLOAT of FLOAT tensors inside LlamaRMSNorm
    report = onnxdoctor.check(REAL / "llama-torchscript.onnx", trt="10.15", select=["GRF405"])
    ops = Counter(f.location.op_type for f in report.findings)
    assert ops["Identity"] == 4 and ops["Cast"] > 0


def test_ort_optimized_duplicate_scalars():
    report = onnxdoctor.check(REAL / "bert-ort-optimized.onnx", trt="10.15", select=["GRF404"])
    # the scalars (16 bytes or less) are one finding, not one per copy (issue 16)
    assert len(report.findings) == 1, [f.message for f in report.findings]
    assert report.findings[0].message.startswith("66 small initializers (16 bytes or less each) duplicate others")
