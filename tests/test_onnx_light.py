"""The light onnx layer (_onnx.py): the CLI's check loads onnx's protobuf module and C++ extension
without the onnx package; its results must be those of the package."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdoctor import _onnx

from ._fixtures import MODELS

NUMERIC = [TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT8, TensorProto.UINT16, TensorProto.INT16,
           TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL, TensorProto.FLOAT16, TensorProto.DOUBLE,
           TensorProto.UINT32, TensorProto.UINT64]


def _values(elem_type: int, shape: tuple[int, ...]) -> np.ndarray:
    dtype = helper.tensor_dtype_to_np_dtype(elem_type)
    rng = np.random.default_rng(elem_type)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    vals = rng.standard_normal(shape) * 1e3
    if vals.size:
        vals.flat[0] = -65504.0 if dtype == np.float16 else -3.4e38  # extremes survive the encoding
    return vals.astype(dtype)


@pytest.mark.parametrize("elem_type", NUMERIC, ids=[TensorProto.DataType.Name(t) for t in NUMERIC])
@pytest.mark.parametrize("shape", [(), (0,), (7,), (2, 3, 4)], ids=["scalar", "empty", "vector", "3d"])
@pytest.mark.parametrize("raw", [True, False], ids=["raw_data", "typed_field"])
def test_to_array_matches_numpy_helper(elem_type, shape, raw):
    values = _values(elem_type, shape)
    if raw:
        t = numpy_helper.from_array(values, "t")
        assert t.HasField("raw_data")
    else:
        t = helper.make_tensor("t", elem_type, shape, values.reshape(-1).tolist(), raw=False)
        assert not t.HasField("raw_data")
    ours, theirs = _onnx.to_array(t), numpy_helper.to_array(t)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape == shape
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ours, values)


def test_to_array_and_np_dtype_defer_to_onnx_for_other_types():
    bf16 = helper.make_tensor("b", TensorProto.BFLOAT16, [3], [1.0, -2.5, 3.0])
    np.testing.assert_array_equal(_onnx.to_array(bf16).astype(np.float32), [1.0, -2.5, 3.0])
    strings = helper.make_tensor("s", TensorProto.STRING, [2], [b"a", b"bc"])
    assert _onnx.to_array(strings).tolist() == ["a", "bc"]
    for elem_type in [*NUMERIC, TensorProto.BFLOAT16, TensorProto.FLOAT8E4M3FN, TensorProto.INT4]:
        assert _onnx.np_dtype(elem_type) == helper.tensor_dtype_to_np_dtype(elem_type)


def test_names_are_onnx_classes_and_functions_agree():
    # In this process onnx is imported: the layer is a view of the package.
    assert _onnx.ModelProto is onnx.ModelProto and _onnx.TensorProto is onnx.TensorProto
    assert _onnx.get_schema("LayerNormalization", 21).since_version == onnx.defs.get_schema(
        "LayerNormalization", 21).since_version == 17
    model = onnx.load(str(MODELS / "clean.onnx"))
    ours = onnx.ModelProto.FromString(_onnx.infer_shapes(model.SerializeToString(), strict=True))
    assert ours == onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=True, data_prop=False)
    with pytest.raises(AttributeError):
        _onnx.not_a_proto  # noqa: B018


_LIGHT_THEN_FULL = r"""
import sys
from onnxdoctor import _onnx
_onnx.use_light()
light = _onnx.ModelProto
assert "onnx" not in sys.modules and "onnx.helper" not in sys.modules, sorted(m for m in sys.modules if m.startswith("onnx."))
assert _onnx.get_schema("Add", 14).since_version == 14
onnx = _onnx.full()  # a later `import onnx` reuses the light modules
import onnx.helper, onnx.checker, onnx.numpy_helper
assert onnx.ModelProto is light and onnx.onnx_ml_pb2.ModelProto is light
assert onnx.onnx_cpp2py_export is sys.modules["onnx.onnx_cpp2py_export"]
relu = onnx.helper.make_node
g = onnx.helper.make_graph([relu("Relu", ["x"], ["h"]), relu("Relu", ["h"], ["y"])], "g",
                           [onnx.helper.make_tensor_value_info("x", 1, [2])], [onnx.helper.make_tensor_value_info("y", 1, [2])])
m = onnx.helper.make_model(g)
onnx.checker.check_model(m, full_check=True)
assert onnx.shape_inference.infer_shapes(m).graph.value_info[0].type.tensor_type.shape.dim[0].dim_value == 2
print("ok")
"""


def test_light_load_then_full_onnx_in_one_process():
    proc = subprocess.run([sys.executable, "-c", _LIGHT_THEN_FULL], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.parametrize("name", ["bert-dynamo", "gpt2-torchscript", "llama-torchscript-opset14"])
def test_cli_check_without_onnx_package_matches_api(name, tmp_path):
    """`onnxdoctor check` (light) and onnxdoctor.check() in a process that imported onnx (full) give the
    same findings; the CLI never imports the onnx package (nor the TOML parser, hashlib, secrets)."""
    model = MODELS / "real" / f"{name}.onnx"
    args = ["--trt", "8.6", "--precision", "fp16", "--isolated", "--format", "json"]
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "onnxdoctor", "check", str(model), *args],
                          capture_output=True, text=True)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "onnx" not in imported and "onnx.helper" not in imported and "numpy" in imported
    # nor what a check without a config file and without -o does not need: OpenSSL (hashlib), secrets,
    # and, when the installed wheel's compiled.json holds the knowledge base, the TOML parser
    from onnxdoctor import kb, kbcompile

    unwanted = {"hashlib", "_hashlib", "secrets"}
    if (kb.rules_dir() / kbcompile.COMPILED_NAME).is_file():
        unwanted.add("tomllib")
    assert not imported & unwanted, imported & unwanted
    import onnxdoctor
    from onnxdoctor.report import render

    report = onnxdoctor.check(str(model), trt="8.6", precision="fp16", config=False)
    cli_findings = json.loads(proc.stdout)["models"][0]["findings"]
    api_findings = json.loads(render(report, "json"))["models"][0]["findings"]
    assert cli_findings == api_findings and len(cli_findings) > 0
