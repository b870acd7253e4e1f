"""build_profile / render_text: optimization profiles and the trtexec command, per TensorRT release."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import onnx.parser
import pytest

from onnxdoctor.errors import UsageError
from onnxdoctor.model import from_proto, load
from onnxdoctor.profile import BATCH_DEFAULT, OTHER_DEFAULT, build_profile, render_text
from onnxdoctor.shapes import parse_shapes
from onnxdoctor.target import Target

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "models" / "real"


def _model(text: str, path: str = "m.onnx"):
    return from_proto(onnx.parser.parse_model(text), path=path)


def _profile(model, trt="10.15", shapes=(), precision=None, engine="model.engine"):
    return build_profile(model, Target.make(trt, precision=precision), parse_shapes(shapes), engine=engine)


def _argv(profile) -> list[str]:
    return shlex.split(profile["trtexec"])


TWO_INPUTS = """
<ir_version: 8, opset_import: ["" : 13]>
g (int64[batch,sequence] a, int64[batch,sequence] b) => (int64[batch,sequence] y) { y = Add(a, b) }
"""


def test_bert_defaults_are_shared_between_inputs_10x():
    p = _profile(load(REAL / "bert-torchscript.onnx"), "10.15")
    assert p["trt"] == "10.15"
    by_name = {i["name"]: i for i in p["inputs"]}
    assert set(by_name) == {"input_ids", "attention_mask"}
    for i in by_name.values():
        assert i["dims"] == ["batch", "sequence"]
        assert (i["min"], i["opt"], i["max"]) == ([1, 1], [1, 128], [8, 512])
        assert i["source"] == "default"
    argv = _argv(p)
    assert argv[0] == "trtexec"
    assert argv[1] == f"--onnx={REAL / 'bert-torchscript.onnx'}"
    assert "--minShapes=input_ids:1x1,attention_mask:1x1" in argv
    assert "--optShapes=input_ids:1x128,attention_mask:1x128" in argv
    assert "--maxShapes=input_ids:8x512,attention_mask:8x512" in argv
    assert "--saveEngine=model.engine" in argv
    assert "--stronglyTyped" in argv
    assert not any(a in argv for a in ("--fp16", "--int8", "--best"))


def test_bert_flag_on_one_input_propagates_through_shared_dims_11x():
    p = _profile(load(REAL / "bert-torchscript.onnx"), "11.0", shapes=["input_ids:1x16:4x64:16x256"], engine="bert.plan")
    by_name = {i["name"]: i for i in p["inputs"]}
    assert by_name["input_ids"]["source"] == "flag"
    assert by_name["attention_mask"]["source"] == "shared-dim"
    assert (by_name["attention_mask"]["min"], by_name["attention_mask"]["opt"], by_name["attention_mask"]["max"]) == (
        [1, 16], [4, 64], [16, 256])
    argv = _argv(p)
    assert "--minShapes=input_ids:1x16,attention_mask:1x16" in argv
    assert "--maxShapes=input_ids:16x256,attention_mask:16x256" in argv
    assert "--saveEngine=bert.plan" in argv
    # 11.x: strongly typed is the only mode; the precision flags no longer exist
    assert not any(a in argv for a in ("--stronglyTyped", "--fp16", "--int8", "--best", "--bf16"))


def test_precision_flag_never_on_11x_even_when_asked():
    p = _profile(_model(TWO_INPUTS), "11.5", precision="fp16")
    assert "--fp16" not in _argv(p)


def test_precision_flag_on_8_6():
    argv = _argv(_profile(_model(TWO_INPUTS), "8.6", precision="fp16"))
    assert "--fp16" in argv and "--stronglyTyped" not in argv
    assert "--fp16" not in _argv(_profile(_model(TWO_INPUTS), "8.6"))


def test_vit_batch_only_dynamic():
    p = _profile(load(REAL / "vit-torchscript.onnx"), "10.15")
    [inp] = p["inputs"]
    assert inp["name"] == "pixel_values" and inp["dims"] == ["batch", 3, 32, 32]
    assert (inp["min"], inp["opt"], inp["max"]) == ([1, 3, 32, 32], [1, 3, 32, 32], [8, 3, 32, 32])
    assert "--minShapes=pixel_values:1x3x32x32" in _argv(p)


def test_static_model_has_no_shape_flags():
    p = _profile(load(REAL / "vit-dynamo.onnx"), "10.15")
    assert p["inputs"] == []
    argv = _argv(p)
    assert not any(a.startswith(("--minShapes", "--optShapes", "--maxShapes")) for a in argv)
    assert "--stronglyTyped" in argv
    assert "no optimization profile needed" in render_text(p)


def test_default_heuristics_by_name_and_position():
    m = _model("""
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[N,3,height,width] img, float[?,seq_len] t, float[k] v) => (float[N,3,height,width] y) { y = Relu(img) }
    """)
    p = _profile(m)
    by_name = {i["name"]: i for i in p["inputs"]}
    img = by_name["img"]
    assert img["min"] == [1, 3, 1, 1] and img["opt"] == [1, 3, 128, 128] and img["max"] == [8, 3, 512, 512]
    t = by_name["t"]  # unnamed leading dim of a rank-2 input is batch-like
    assert (t["min"], t["opt"], t["max"]) == ([1, 1], [1, 128], [8, 512])
    assert t["dims"] == ["?", "seq_len"]
    v = by_name["v"]  # rank 1, not batch-named
    assert (v["min"][0], v["opt"][0], v["max"][0]) == OTHER_DEFAULT
    assert BATCH_DEFAULT == (1, 1, 8)


def test_static_dims_kept_and_flag_source():
    m = _model("""
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[batch,3,224,224] x) => (float[batch,3,224,224] y) { y = Relu(x) }
    """)
    p = _profile(m, shapes=["x:1x3x224x224:4x3x224x224:32x3x224x224"])
    assert p["inputs"][0]["source"] == "flag"
    assert "--optShapes=x:4x3x224x224" in _argv(p)


def test_names_with_colon_are_quoted_for_trtexec():
    m = _model("""
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[batch,4] "input:0") => (float[batch,4] y) { y = Relu("input:0") }
    """)
    argv = _argv(_profile(m))
    assert "--minShapes='input:0':1x4" in argv


def test_paths_with_spaces_survive_the_shell():
    m = _model(TWO_INPUTS, path="my models/bert v2.onnx")
    argv = _argv(_profile(m))
    assert argv[1] == "--onnx=my models/bert v2.onnx"


def test_conflicting_flags_on_a_shared_dim_are_noted():
    p = _profile(_model(TWO_INPUTS), shapes=["a:1x8", "b:2x8"])
    assert any("'batch'" in n and "must agree" in n for n in p["notes"])
    assert "note:" in render_text(p)


@pytest.mark.parametrize("shape,problem", [
    ("nope:1x8", "does not have"),
    ("a:1x8x3", "rank 2"),
])
def test_bad_specs_are_usage_errors(shape, problem):
    with pytest.raises(UsageError, match=problem):
        _profile(_model(TWO_INPUTS), shapes=[shape])


def test_spec_contradicting_a_fixed_dim():
    m = _model("""
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[batch,4] x) => (float[batch,4] y) { y = Relu(x) }
    """)
    with pytest.raises(UsageError, match="dimension 1 is fixed to 4"):
        _profile(m, shapes=["x:1x5"])


def test_render_text_and_json_roundtrip():
    p = _profile(load(REAL / "gpt2-torchscript.onnx"), "10.15")
    assert json.loads(json.dumps(p)) == p
    text = render_text(p)
    assert "input_ids  [batch, sequence]  min 1x1  opt 1x128  max 8x512  (default)" in text
    assert text.rstrip().splitlines()[-1] == p["trtexec"]


# -- the activation limit bounds the validation runs (min/opt/max in ONNX Runtime) -------------------

def _outer_product(path: Path) -> Path:
    """y[b, i, j] = x[b, i] * x[b, j]: activations grow with seq squared."""
    m = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[batch, seq] x) => (float[batch, seq, seq] y) {
            a2 = Constant <value = int64[1] {2}> ()
            a1 = Constant <value = int64[1] {1}> ()
            a = Unsqueeze(x, a2)
            b = Unsqueeze(x, a1)
            y = Mul(a, b)
        }""")
    onnx.save(m, path)
    return path


def test_validation_does_not_run_shapes_over_the_activation_limit(tmp_path):
    from onnxdoctor import api

    model = _outer_product(tmp_path / "outer.onnx")
    free = api.profile(model, trt="10.15")
    assert free["inputs"][0]["max"] == [8, 512] and free["validation"]["validated"]
    assert not any("activation" in n for n in free["notes"])
    # 8x512x512 floats are 8 MB: at a 4 MB limit the larger candidates are refused before running
    small = api.profile(model, trt="10.15", activation_limit=4)
    assert small["validation"]["validated"], small["validation"]
    assert small["inputs"][0]["max"] == [2, 512]
    refused = [t for t in small["validation"]["tried"] if not t["ran"]]
    assert [t["shapes"] for t in refused] == ["x:8x512", "x:4x512"]
    assert all("over the activation limit of 4 MB" in t["error"] for t in refused)
    assert any("larger shapes were not run" in n and "--activation-limit" in n for n in small["notes"])


def test_a_flagged_shape_over_the_limit_is_reported_not_run(tmp_path):
    from onnxdoctor import api

    model = _outer_product(tmp_path / "outer.onnx")
    prof = api.profile(model, trt="10.15", shapes=["x:1x1:1x64:1x2048"], activation_limit=4)
    assert prof["inputs"][0]["max"] == [1, 2048]  # the user's shape is kept
    assert prof["validation"]["ran"] == {"min": True, "opt": True, "max": False}
    assert "max did NOT run" in render_text(prof)


def test_a_validation_run_whose_sizes_inference_cannot_see_is_stopped(tmp_path):
    """NonZero's output size is data-dependent: the run itself is watched and stopped at the limit
    (budget.run_session), and the profile reports that shape as not run instead of failing."""
    from .test_activation_budget import _run

    negs = "\n".join(f"n{i + 1} = Neg(n{i})" for i in range(8))
    m = onnx.parser.parse_model(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[h, w] x) => (float y) {{
            s = Shape(x)
            ones = ConstantOfShape <value = float[1] {{1.0}}> (s)
            nz = NonZero(ones)
            n0 = Cast <to = 1> (nz)
            {negs}
            t = Sum(n0, n1, n2, n3, n4, n5, n6, n7, n8)
            y = ReduceSum <keepdims = 0> (t)
        }}""")
    model = tmp_path / "nonzero.onnx"
    onnx.save(m, model)
    # unbounded, max (2500x2500) holds NonZero's [2, 6.25M] int64 and nine float copies: ~550 MB
    proc, peak_mb = _run(["profile", model, "--shape", "x:1x1:16x16:2500x2500", "--activation-limit", "60",
                          "--format", "json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    prof = json.loads(proc.stdout)
    assert prof["validation"]["ran"] == {"min": True, "opt": True, "max": False}
    (last,) = [t for t in prof["validation"]["tried"] if not t["ran"]]
    assert "over the activation budget of 60 MB" in last["error"], last
    assert peak_mb < 400, peak_mb
