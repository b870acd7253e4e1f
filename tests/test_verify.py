"""`onnxdoctor verify`: localisation of the first diverging layer, FP16 emulation, and the TensorRT path's
graceful refusal without TensorRT."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

from onnxdoctor import verify as verifying
from onnxdoctor.prove import generate_inputs

from ._fixtures import MODELS

BERT = MODELS / "real" / "bert-torchscript.onnx"


@pytest.fixture
def changed_bert(tmp_path):
    m = onnx.load(BERT)
    consumer = {i: n for n in m.graph.node for i in n.input}
    t = next(t for t in m.graph.initializer if t.name in consumer and consumer[t.name].op_type == "MatMul"
             and "layer.1" in consumer[t.name].name and "value" in consumer[t.name].name)
    a = numpy_helper.to_array(t).copy() * 1.5
    t.CopyFrom(numpy_helper.from_array(a, t.name))
    path = tmp_path / "changed.onnx"
    onnx.save(m, path)
    return path, consumer[t.name].name


def test_identical_models_pass(run_cli):
    proc = run_cli("verify", BERT, "--against", BERT, "--layerwise", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["pass"] is True and data["first_divergence"] is None and data["compared"] > 100
    c = data["comparisons"][0]
    assert set(c) >= {"tensor", "node", "op_type", "max_abs_diff", "max_rel_diff", "pass"}


def test_first_divergence_names_the_changed_node(run_cli, changed_bert):
    path, node = changed_bert
    proc = run_cli("verify", BERT, "--against", path, "--layerwise", "--format", "json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["pass"] is False and data["first_divergence"]["node"] == node
    assert data["first_divergence"]["op_type"] == "MatMul"
    # outputs-only mode also fails, without localisation beyond the output
    outputs_only = run_cli("verify", BERT, "--against", path)
    assert outputs_only.returncode == 1 and "FAIL" in outputs_only.stdout


def test_chunked_comparison_is_identical(changed_bert, monkeypatch):
    path, node = changed_bert
    ref, other = onnx.load(BERT), onnx.load(path)
    feeds = generate_inputs(ref)
    whole = verifying.verify_against(str(BERT), str(path), ref, other, feeds, layerwise=True, atol=1e-4, rtol=1e-3)
    from onnxdoctor.layerwise import Budget

    chunked = verifying.verify_against(str(BERT), str(path), ref, other, feeds, layerwise=True, atol=1e-4, rtol=1e-3,
                                       budget=Budget(max_segment_nodes=7))
    assert [c.to_dict() for c in whole.comparisons] == [c.to_dict() for c in chunked.comparisons]
    assert chunked.first_divergence.node == node


MASKED = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1,4,8] x) => (float[1,4,8] p) {
  s = MatMul(x, w)
  scores = Add(s, mask)
  p = Softmax<axis = -1>(scores)
}
"""


def _masked_model(path):
    m = onnx.parser.parse_model(MASKED)
    m.graph.node[1].name = "add_mask"
    mask = np.zeros((1, 4, 8), np.float32)
    mask[..., 4:] = -1e9
    m.graph.initializer.extend([
        numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32), "w"),
        numpy_helper.from_array(mask, "mask"),
    ])
    onnx.save(m, path)


def test_fp16_emulation_names_overflowing_node_and_fix_clears_it(run_cli, tmp_path):
    src = tmp_path / "masked.onnx"
    _masked_model(src)
    proc = run_cli("verify", src, "--fp16", "--layerwise", "--format", "json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["first_divergence"]["node"] == "add_mask" and "overflows FP16" in data["first_divergence"]["note"]
    fixed = tmp_path / "fixed.onnx"
    fx = run_cli("fix", src, "-o", fixed, "--unsafe-fixes", "--precision", "fp16", "--trt", "10.15", "--isolated")
    assert fx.returncode == 0, fx.stdout + fx.stderr
    assert "clamp-fp16-constants" in fx.stdout
    again = run_cli("verify", fixed, "--fp16", "--layerwise")
    assert again.returncode == 0, again.stdout
    # and the fixed model still matches the original (what the fix proved)
    same = run_cli("verify", src, "--against", fixed, "--atol", "1e-3")
    assert same.returncode == 0, same.stdout


def test_trt_backend_without_tensorrt(run_cli):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed: the refusal path does not apply")
    except ImportError:
        pass
    proc = run_cli("verify", BERT, "--backend", "trt")
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line and "onnxdoctor[tensorrt]" in line and "GPU" in line


def test_trt_backend_layerwise():
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (needs an NVIDIA GPU machine)")
    res = verifying.verify_trt(str(BERT), generate_inputs(onnx.load(BERT)), layerwise=True, fp16=False,
                               trt_version="10.15", strongly_typed=False, shapes={}, atol=1e-3, rtol=1e-3)
    assert res.comparisons


def test_nothing_to_compare_is_usage_error(run_cli):
    proc = run_cli("verify", BERT)
    assert proc.returncode == 2 and "nothing to compare" in proc.stderr
