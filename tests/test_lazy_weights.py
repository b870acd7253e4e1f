"""Big inline weights left in the file (_wire.split, load(lazy_weights=True)): the rewritten model is
the original without those bytes, and every rule reports the same as with the whole file parsed."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxdoctor import _wire, model as model_mod
from onnxdoctor.api import Settings
from onnxdoctor.engine import analyze
from onnxdoctor.registry import all_rules

H = 256  # 256 x 256 float32 = 256 KiB per weight: over _wire.RAW_MIN_BYTES


def _big_model(path, n_layers: int = 34):
    """Over _wire.MIN_FILE_BYTES of inline weights, with what the weight-reading rules look at: two
    identical weights (GRF404), a -1e9 mask added before Softmax (PRC301 in FP16), a DOUBLE weight
    beyond the FLOAT range (TRT112), an INT64 weight outside INT32 (PRC302 on 8.6), small weights
    that stay in the proto, a big weight inside an If branch (never left out), and a Reshape whose
    target is an initializer."""
    rng = np.random.default_rng(0)
    inits, nodes = [], []
    x = "x"
    for i in range(n_layers):
        w = rng.standard_normal((H, H)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        inits.append(numpy_helper.from_array(rng.standard_normal(H).astype(np.float32), f"b{i}"))  # 1 KiB: stays
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"], name=f"mm{i}"),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"h{i}"], name=f"add{i}")]
        x = f"h{i}"
    inits.append(numpy_helper.from_array(numpy_helper.to_array(inits[0]).copy(), "w_dup"))  # same bytes as w0
    nodes.append(helper.make_node("MatMul", [x, "w_dup"], ["dup_out"], name="mm_dup"))
    mask = np.zeros((H, H), np.float32)
    mask[np.triu_indices(H, 1)] = -1e9
    inits.append(numpy_helper.from_array(mask, "mask"))
    nodes += [helper.make_node("Add", ["dup_out", "mask"], ["masked"], name="add_mask"),
              helper.make_node("Softmax", ["masked"], ["probs"], name="softmax", axis=-1)]
    dbl = rng.standard_normal(10000).astype(np.float64)
    dbl[7] = 1e300
    inits.append(numpy_helper.from_array(dbl, "dbl"))
    i64 = np.arange(10000, dtype=np.int64)
    i64[5] = 2**40
    inits.append(numpy_helper.from_array(i64, "big_i64"))
    inits.append(numpy_helper.from_array(np.array([1, H * H], np.int64), "flat_shape"))
    nodes += [helper.make_node("Cast", ["dbl"], ["dbl_f"], name="cast_dbl", to=TensorProto.FLOAT),
              helper.make_node("Cast", ["big_i64"], ["i64_f"], name="cast_i64", to=TensorProto.FLOAT),
              helper.make_node("Reshape", ["probs", "flat_shape"], ["flat"], name="reshape")]
    branch_w = numpy_helper.from_array(rng.standard_normal((H, H)).astype(np.float32), "branch_w")
    then_g = helper.make_graph([helper.make_node("MatMul", ["probs", "branch_w"], ["t_out"])], "then", [],
                               [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, None)], initializer=[branch_w])
    else_g = helper.make_graph([helper.make_node("Identity", ["probs"], ["e_out"])], "else", [],
                               [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, None)])
    nodes.append(helper.make_node("If", ["c"], ["branch"], name="if", then_branch=then_g, else_branch=else_g))
    g = helper.make_graph(
        nodes, "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [H, H]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("flat", "dbl_f", "i64_f", "branch")],
        initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(m, str(path))
    return path


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    path = _big_model(tmp_path_factory.mktemp("lazy") / "big.onnx")
    assert path.stat().st_size >= _wire.MIN_FILE_BYTES
    return path


def test_split_leaves_out_exactly_the_big_raw_data(big):
    data = big.read_bytes()
    stripped, left_out = _wire.split(data)
    assert len(stripped) < len(data) // 20
    original = onnx.load_from_string(data)
    expected = set()
    for t in original.graph.initializer:
        if len(t.raw_data) >= _wire.RAW_MIN_BYTES:
            expected.add(t.name)
            offset, length = left_out[t.name]
            assert data[offset:offset + length] == t.raw_data
            t.ClearField("raw_data")
    assert set(left_out) == expected and {"w0", "w_dup", "mask", "dbl", "big_i64"} <= expected
    assert "b0" not in left_out and "branch_w" not in left_out  # small; inside a subgraph
    assert onnx.load_from_string(stripped) == original


def test_split_declines_what_it_cannot_rewrite(big):
    data = big.read_bytes()
    assert _wire.split(data, min_bytes=len(data)) is None  # nothing that big
    assert _wire.split(data[: len(data) // 2]) is None  # truncated
    assert _wire.split(b"\x0b\x00garbage") is None  # a group wire type
    second = onnx.ModelProto(graph=onnx.load_from_string(data).graph).SerializeToString()
    assert _wire.split(data + second) is None  # a second `graph` field: parsers merge the two


def _findings(model, trt):
    target = Settings(trt=trt, select=None, ignore=(), plugins=(), precision="fp16", shapes=(), fail_on="error").target()
    return [f.to_dict() for f in analyze(model, target, list(all_rules()))]


@pytest.mark.parametrize("trt", ["8.6", "latest"])
def test_every_rule_reports_the_same_with_lazy_weights(big, trt):
    lazy = model_mod.load(big, lazy_weights=True)
    whole = model_mod.load(big)
    assert len(lazy.lazy_raw) >= 37 and not whole.lazy_raw
    assert not lazy.proto.graph.initializer[0].HasField("raw_data")
    got, ref = _findings(lazy, trt), _findings(whole, trt)
    assert got == ref
    codes = {f["code"] for f in ref}
    assert {"GRF404", "PRC301", "TRT112"} <= codes and (trt != "8.6" or "PRC302" in codes)
    messages = " ".join(f["message"] for f in ref)
    assert "exceed the FLOAT range" in messages and "'w_dup' duplicates 'w0'" in messages


def test_a_left_out_weight_of_the_wrong_size_is_refused(tmp_path):
    path = _big_model(tmp_path / "bad.onnx")
    data = bytearray(path.read_bytes())
    m = onnx.load_from_string(bytes(data))
    m.graph.initializer[0].dims[0] = H + 1  # dims now need more bytes than raw_data holds
    path.write_bytes(m.SerializeToString())
    with pytest.raises(model_mod.ModelLoadError, match="holds 262144 bytes but dims"):
        model_mod.load(path, lazy_weights=True)


def test_cli_check_of_a_big_inline_model_equals_the_whole_parse(big):
    ref = _findings(model_mod.load(big), "latest")
    for extra in ([], ["-j", "1"]):
        proc = subprocess.run([sys.executable, "-m", "onnxdoctor", "check", str(big), "--format", "json",
                               "--precision", "fp16", "--isolated", *extra], capture_output=True, text=True)
        assert proc.returncode in (0, 1), proc.stderr
        assert json.loads(proc.stdout)["models"][0]["findings"] == ref
