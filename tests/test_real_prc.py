"""PRC rules on the real exporter fixtures and on precision intents the case files cannot state
(the case runner does not pass --precision)."""

from __future__ import annotations

import onnx.numpy_helper
import onnx.parser
import pytest

import onnxdoctor

from ._fixtures import MODELS

REAL = MODELS / "real"
EXPORTS = sorted(p for p in REAL.glob("*.onnx") if "ort-optimized" not in p.name)
# Models with an attention mask: BERT (padding mask), GPT-2 and Llama (causal mask). ViT has none.
MASKED = [p for p in EXPORTS if not p.name.startswith("vit")]


def _prc(model, trt, precision=None, code="PRC"):
    return [f for f in onnxdoctor.check(model, trt=trt, precision=precision, select=[code]).findings]


@pytest.mark.parametrize("path", MASKED, ids=lambda p: p.stem)
def test_attention_masks_overflow_fp16(path):
    found = _prc(path, "10.15", "fp16", "PRC301")
    # one mask constant per attention layer (2 layers), or one shared precomputed mask used by both
    assert len(found) == 2 or (len(found) == 1 and "bert-dynamo" in path.name), [f.message for f in found]
    for f in found:
        assert str(f.severity) == "warning"
        assert f.location.op_type in ("Where", "Add")
        assert f.fix is not None and f.fix.rewrite == "clamp-fp16-constants" and str(f.fix.applicability) == "unsafe"
        assert "inf" in f.message


@pytest.mark.parametrize("path", EXPORTS, ids=lambda p: p.stem)
def test_no_overflow_findings_in_fp32(path):
    assert _prc(path, "10.15", "fp32", "PRC301") == []
    assert _prc(path, "10.15", None, "PRC301") == []


def test_finfo_min_mask_messages():
    """Dynamo exports finfo(float32).min (-3.4e38): beyond FP16 and beyond BF16 (rounds to -inf)."""
    fp16 = _prc(REAL / "gpt2-dynamo.onnx", "10.15", "fp16", "PRC301")
    assert {f.location.op_type for f in fp16} == {"Add"}
    assert all("-3.403e+38, beyond the FP16 range" in f.message for f in fp16)
    bf16 = _prc(REAL / "llama-dynamo.onnx", "10.15", "bf16", "PRC301")
    assert bf16 and all("beyond the BF16 range" in f.message for f in bf16)


def test_vit_has_no_mask():
    assert _prc(REAL / "vit-dynamo.onnx", "10.15", "fp16", "PRC301") == []


def test_strongly_typed_fp32_export_is_silent_without_flag_and_reported_with_it():
    """On 11.x an FP32 constant stays FP32 unless the user states fp16."""
    path = REAL / "gpt2-dynamo.onnx"
    assert _prc(path, "11.5", None, "PRC301") == []
    assert len(_prc(path, "11.5", "fp16", "PRC301")) == 2


@pytest.mark.parametrize("path", EXPORTS, ids=lambda p: p.stem)
def test_real_exports_on_11_are_fp32_only(path):
    found = _prc(path, "11.5")
    assert [(f.code, str(f.severity)) for f in found] == [("PRC303", "info")]
    assert _prc(path, "10.15") == []


@pytest.mark.parametrize("path", [p for p in EXPORTS if "torchscript" in p.name], ids=lambda p: p.stem)
def test_slice_sentinels_are_not_int64_findings_on_8_6(path):
    # TorchScript exports hold INT64_MAX "slice to the end" sentinels; the 8.6 parser clamps them harmlessly.
    assert _prc(path, "8.6", None, "PRC302") == []


MASK_MODEL = """<ir_version: 8, opset_import: ["" : 17]>
g (float[1,4,8,8] scores, float[1,1,8,8] keep) => (float[1,4,8,8] y) {
  one = Constant<value = float[1] {1.0}>()
  inv = Sub(one, keep)
  big = Constant<value = float[1] {-1000000000.0}>()
  mask = Mul(inv, big)
  s = Add(scores, mask)
  y = Softmax<axis = -1>(s)
}"""


def test_bert_style_mask_with_fp16_flag_on_10_x():
    m = onnx.parser.parse_model(MASK_MODEL)
    found = _prc(m, "10.15", "fp16", "PRC301")
    assert [(f.location.op_type, f.location.tensor) for f in found] == [("Mul", "big")]
    assert "-1e+09, beyond the FP16 range" in found[0].message
    # -1e9 fits BF16 and FP32
    assert _prc(m, "10.15", "bf16", "PRC301") == []
    assert _prc(m, "10.15", "fp32", "PRC301") == []
    assert _prc(m, "10.15", None, "PRC301") == []


def test_external_mask_is_not_read(tmp_path):
    m = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
g (float[1,4] x) => (float[1,4] y) <float[4] big = {-1e9, -1e9, -1e9, -1e9}> { y = Add(x, big) }""")
    assert len(_prc(m, "10.15", "fp16", "PRC301")) == 1
    # the text parser fills float_data; external data needs raw_data
    m.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(m.graph.initializer[0]), "big"))
    onnx.save(m, tmp_path / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="w.bin", size_threshold=0)
    assert (tmp_path / "w.bin").stat().st_size == 16
    assert _prc(tmp_path / "m.onnx", "10.15", "fp16", "PRC301") == []


FP32_MODEL = """<ir_version: 8, opset_import: ["" : 17]>
g (float[1,4] x) => (float[1,2] y) <float[4,2] w = {1, 2, 3, 4, 5, 6, 7, 8}> { y = MatMul(x, w) }"""
QDQ_MODEL = """<ir_version: 8, opset_import: ["" : 13]>
g (float[4] x) => (float[4] y) <float s = {0.5}, int8 z = {0}> {
  q = QuantizeLinear(x, s, z)
  y = DequantizeLinear(q, s, z)
}"""


def test_int8_intent_without_qdq():
    m = onnx.parser.parse_model(FP32_MODEL)
    on11 = _prc(m, "11.5", "int8", "PRC304")
    assert [str(f.severity) for f in on11] == ["error"]
    assert "no INT8 calibration" in on11[0].message
    assert on11[0].trt_versions and all(v.startswith("11.") for v in on11[0].trt_versions)
    on10 = _prc(m, "10.15", "int8", "PRC304")
    assert [str(f.severity) for f in on10] == ["info"] and "deprecated since TensorRT 10.1" in on10[0].message
    assert _prc(m, "10.0", "int8", "PRC304") == []
    assert _prc(m, "8.6", "int8", "PRC304") == []
    assert _prc(m, "11.5", "fp16", "PRC304") == []
    assert _prc(onnx.parser.parse_model(QDQ_MODEL), "11.5", "int8", "PRC304") == []


def test_int8_intent_is_not_also_prc303():
    m = onnx.parser.parse_model(FP32_MODEL)
    assert _prc(m, "11.5", "int8", "PRC303") == []


def test_fp16_flag_on_fp32_model_on_11_is_a_warning():
    m = onnx.parser.parse_model(FP32_MODEL)
    found = _prc(m, "11.5", "fp16", "PRC303")
    assert [str(f.severity) for f in found] == ["warning"]
    assert "--precision fp16 was asked for" in found[0].message
    assert [str(f.severity) for f in _prc(m, "11.5", "fp32", "PRC303")] == ["info"]


def test_unsupported_quantized_types_are_trt111_not_prc():
    """INT4 before 10.0 is TRT111's (unsupported-data-type) and INT32 DQ input TRT115's: no PRC duplicate."""
    m = onnx.parser.parse_model("""<ir_version: 10, opset_import: ["" : 21]>
g (float[4,8] x) => (float[4,8] y) <float s = {0.5}, int4 z = {0}> {
  q = QuantizeLinear(x, s, z)
  y = DequantizeLinear(q, s, z)
}""")
    codes = {f.code for f in onnxdoctor.check(m, trt="9.3").findings}
    assert "TRT111" in codes and not any(c.startswith("PRC31") for c in codes)
    assert {f.code for f in onnxdoctor.check(m, trt="10.15", select=["PRC"]).findings} == {"PRC311"}
