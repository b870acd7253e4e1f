"""SHP rules on real exporter output (TorchScript and dynamo exports of tiny BERT/GPT-2/ViT/Llama) and
with input shapes frozen by --shape (which the case files cannot express)."""

from __future__ import annotations

from pathlib import Path

import onnx.parser
import pytest

import onnxdoctor

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "models" / "real"
MODELS = sorted(p.name for p in REAL.glob("*.onnx"))

DYNAMIC_INPUTS = {
    "bert": {"input_ids", "attention_mask"},
    "gpt2": {"input_ids"},
    "llama": {"input_ids"},
    "vit": {"pixel_values"},
}


def _findings(model, code, trt="10.15", shapes=None):
    report = onnxdoctor.check(model, trt=trt, select=[code], shapes=shapes, config=False)
    return [f for f in report.findings if f.code == code]


@pytest.mark.parametrize("name", MODELS)
def test_dynamic_inputs_reported_exactly(name):
    found = {f.location.tensor for f in _findings(REAL / name, "SHP202")}
    expected = set() if "dynamo" in name else DYNAMIC_INPUTS[name.split("-")[0]]
    assert found == expected


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("trt", ["8.6", "10.15", "11.0"])
def test_no_false_shape_warnings_on_real_exports(name, trt):
    """Exporter output has known ranks, no data-dependent ops and no ambiguous Reshape zeros."""
    for code in ("SHP201", "SHP203", "SHP205"):
        assert _findings(REAL / name, code, trt) == [], code


def test_shape_chains_unfrozen_name_freeze_shapes():
    fs = _findings(REAL / "bert-torchscript.onnx", "SHP204")
    assert len(fs) >= 3
    assert {f.fix.rewrite for f in fs} == {"freeze-shapes"}
    assert all("is constant once input dims batch, sequence are fixed" in f.message for f in fs)
    # one finding per chain: no node is the reported consumer twice
    assert len({f.location.node for f in fs}) == len(fs)


def test_shape_chains_frozen_name_fold_constants():
    fs = _findings(REAL / "bert-torchscript.onnx", "SHP204", shapes=["input_ids:1x8", "attention_mask:1x8"])
    assert fs and {f.fix.rewrite for f in fs} == {"fold-constants"}
    assert all("became constant with the frozen input shapes ('input_ids', 'attention_mask')" in f.message for f in fs)
    # the frozen model has no dynamic inputs left
    assert _findings(REAL / "bert-torchscript.onnx", "SHP202", shapes=["input_ids:1x8", "attention_mask:1x8"]) == []


def test_partially_frozen_reports_both_kinds():
    fs = _findings(REAL / "bert-torchscript.onnx", "SHP204", shapes=["input_ids:1x8"])
    assert {f.fix.rewrite for f in fs} == {"fold-constants", "freeze-shapes"}


@pytest.mark.parametrize("name", ["gpt2-torchscript.onnx", "llama-torchscript.onnx", "vit-torchscript.onnx"])
def test_frozen_real_models_fold_their_reshape_chains(name):
    shapes = ["pixel_values:1x3x32x32"] if name.startswith("vit") else ["input_ids:1x8"]
    before = _findings(REAL / name, "SHP204")
    after = _findings(REAL / name, "SHP204", shapes=shapes)
    assert before and all(f.fix.rewrite == "freeze-shapes" for f in before)
    assert after and all(f.fix.rewrite == "fold-constants" for f in after)


CHAIN = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[batch,4] x, float[1,4] e) => (float[batch,2,2] y, float[batch,4] z) {
  s = Shape(x)
  i0 = Constant<value = int64[1] {0}>()
  b = Gather<axis = 0>(s, i0)
  tail = Constant<value = int64[2] {2, 2}>()
  shape = Concat<axis = 0>(b, tail)
  y = Reshape(x, shape)
  z = Expand(e, s)
}
"""


def test_frozen_chain_in_small_model():
    model = onnx.parser.parse_model(CHAIN)
    [unfrozen] = _findings(model, "SHP204")
    assert unfrozen.fix.rewrite == "freeze-shapes"
    assert "4-node shape computation" not in unfrozen.message
    assert unfrozen.message.startswith("3-node shape computation (Concat, Gather, Shape) feeding Reshape 'Reshape#5' (and 1 more)")
    [frozen] = _findings(model, "SHP204", shapes=["x:2x4"])
    assert frozen.fix.rewrite == "fold-constants"
    assert "became constant with the frozen input shapes ('x')" in frozen.message
    # the Expand's target shape is constant once x is frozen
    [expand] = _findings(model, "SHP206")
    assert expand.fix.rewrite == "freeze-shapes"
    assert _findings(model, "SHP206", shapes=["x:2x4"]) == []


def test_frozen_unrelated_input_reports_nothing_folded():
    """Freezing an input the chain does not read folds nothing."""
    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[batch,4] x, float[n,3] w) => (float[batch,4] y, float[n,3] v) {
      s = Shape(x)
      y = Reshape(x, s)
      v = Relu(w)
    }
    """)
    fs = _findings(model, "SHP204", shapes=["w:2x3"])
    assert [f.fix.rewrite for f in fs] == ["freeze-shapes"]
