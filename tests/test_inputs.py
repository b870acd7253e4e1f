"""The input oracle (onnxdoctor.inputs): shapes and values a model accepts, tried in ONNX Runtime;
proofs that survive data-dependent sizes; the FP16 underflow judgement; profiles that run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnx.helper as oh
import onnx.parser
import pytest
from onnx import TensorProto

from onnxdoctor import prove as proving
from onnxdoctor.errors import UsageError
from onnxdoctor.inputs import InputOracle, InputsNotFound, plan_inputs
from onnxdoctor.model import from_proto
from onnxdoctor.profile import build_profile
from onnxdoctor.shapes import parse_shapes
from onnxdoctor.target import Target


def _parse(text: str) -> onnx.ModelProto:
    m = onnx.parser.parse_model(text)
    onnx.checker.check_model(m, full_check=True)
    return m


def _run(model: onnx.ModelProto, feeds) -> dict:
    return proving.run(model, feeds)


def _cli(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "onnxdoctor", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


# --- shapes ------------------------------------------------------------------------------------

SHARED_NAMES = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[batch,seq] a, float[batch,seq] b) => (float[batch,seq] y) { y = Add(a, b) }
"""


def test_a_dim_name_shared_across_inputs_gets_one_value():
    plan = plan_inputs(_parse(SHARED_NAMES))
    assert plan.feeds["a"].shape == plan.feeds["b"].shape
    assert len(InputOracle(_parse(SHARED_NAMES)).vars) == 2  # batch and seq, not four


def _anonymous(model: onnx.ModelProto, *inputs: str) -> onnx.ModelProto:
    """Make the dynamic dims of `inputs` anonymous (no dim_param): nothing but the graph ties them."""
    for vi in model.graph.input:
        if vi.name in inputs:
            for d in vi.type.tensor_type.shape.dim:
                if d.HasField("dim_param"):
                    d.Clear()
    return model


def test_anonymous_dims_tied_by_broadcasting_get_one_value():
    m = _anonymous(_parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[n,4] a, float[k,4] b) => (float[m,4] y) { y = Add(a, b) }
    """), "a", "b")
    oracle = InputOracle(m)
    assert len(oracle.vars) == 1, "Add(a, b) ties a[0] and b[0]"
    plan = oracle.find()
    assert plan.feeds["a"].shape == plan.feeds["b"].shape


def test_rnn_state_batch_tied_to_the_sequence_batch():
    x = oh.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, 4])
    h0 = oh.make_tensor_value_info("h0", TensorProto.FLOAT, [1, None, 8])
    y = oh.make_tensor_value_info("y", TensorProto.FLOAT, None)
    rng = np.random.default_rng(0)
    w = onnx.numpy_helper.from_array(rng.standard_normal((1, 32, 4)).astype(np.float32), "w")
    r = onnx.numpy_helper.from_array(rng.standard_normal((1, 32, 8)).astype(np.float32), "r")
    node = oh.make_node("LSTM", ["x", "w", "r", "", "", "h0"], ["y"], hidden_size=8)
    m = oh.make_model(oh.make_graph([node], "g", [x, h0], [y], [w, r]), opset_imports=[oh.make_opsetid("", 17)])
    oracle = InputOracle(m)
    batch_x = oracle.slots["x"][1]
    batch_h = oracle.slots["h0"][1]
    assert batch_x is batch_h, "LSTM ties X's batch to initial_h's batch"
    plan = oracle.find()
    assert plan.feeds["x"].shape[1] == plan.feeds["h0"].shape[1]


def _strided_unet(strides: int) -> onnx.ModelProto:
    """`strides` stride-2 convolutions down, then Resize x2 up and Concat with each skip: runs only on
    sizes that 2**strides divides."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    cur = "x"
    skips = []
    for i in range(strides):
        w = f"w{i}"
        inits.append(onnx.numpy_helper.from_array(rng.standard_normal((2, 2, 3, 3)).astype(np.float32) * 0.3, w))
        skips.append(cur)
        nodes.append(oh.make_node("Conv", [cur, w], [f"d{i}"], strides=[2, 2], pads=[1, 1, 1, 1]))
        cur = f"d{i}"
    inits.append(onnx.numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales"))
    for i in reversed(range(strides)):
        nodes.append(oh.make_node("Resize", [cur, "", "scales"], [f"u{i}"], mode="nearest"))
        nodes.append(oh.make_node("Concat", [f"u{i}", skips[i]], [f"c{i}"], axis=1))
        w = f"v{i}"
        inits.append(onnx.numpy_helper.from_array(rng.standard_normal((2, 4, 1, 1)).astype(np.float32) * 0.3, w))
        nodes.append(oh.make_node("Conv", [f"c{i}", w], [f"e{i}"]))
        cur = f"e{i}"
    nodes.append(oh.make_node("Identity", [cur], ["y"]))
    x = oh.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, "height", "width"])
    y = oh.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, "height", "width"])
    m = oh.make_model(oh.make_graph(nodes, "unet", [x], [y], inits), opset_imports=[oh.make_opsetid("", 17)])
    onnx.checker.check_model(m, full_check=True)
    return m


def test_spatial_sizes_are_multiples_of_the_total_stride():
    m = _strided_unet(5)
    with pytest.raises(Exception):  # the old guess (8 for every dynamic dim but the first) does not run
        _run(m, {"x": np.zeros((1, 2, 8, 8), np.float32)})
    plan = plan_inputs(m)
    _, _, h, w = plan.feeds["x"].shape
    assert h % 32 == 0 and w % 32 == 0
    assert not plan.tried, "the first candidate already satisfies the strides"
    assert any("multiple of 32" in why for c in plan.choices for why in c.why)


def test_metadata_size_comes_first():
    m = _strided_unet(3)
    m.metadata_props.add(key="imgsz", value="[96, 160]")
    plan = plan_inputs(m)
    assert plan.feeds["x"].shape[2:] == (96, 160)


def test_negative_dims_are_dynamic():
    m = _strided_unet(2)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for k in (0, 2, 3):
        dims[k].Clear()
        dims[k].dim_value = -1
    plan = plan_inputs(m)
    assert plan.feeds["x"].shape[0] == 1 and plan.feeds["x"].shape[2] >= 32


# --- values ------------------------------------------------------------------------------------

def _bert_like() -> onnx.ModelProto:
    """token_type_ids index a 2-row table through Cast and Add 0; input_ids a 50-row table."""
    rng = np.random.default_rng(0)
    words = onnx.numpy_helper.from_array(rng.standard_normal((50, 4)).astype(np.float32), "words")
    types = onnx.numpy_helper.from_array(rng.standard_normal((2, 4)).astype(np.float32), "types")
    zero = onnx.numpy_helper.from_array(np.array(0, dtype=np.int32), "zero")
    nodes = [
        oh.make_node("Gather", ["words", "input_ids"], ["we"]),
        oh.make_node("Cast", ["token_type_ids"], ["tt32"], to=TensorProto.INT32),
        oh.make_node("Add", ["tt32", "zero"], ["tt"]),
        oh.make_node("Gather", ["types", "tt"], ["te"]),
        oh.make_node("Add", ["we", "te"], ["y"]),
    ]
    ins = [oh.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in ("input_ids", "token_type_ids")]
    y = oh.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return oh.make_model(oh.make_graph(nodes, "bert", ins, [y], [words, types, zero]), opset_imports=[oh.make_opsetid("", 17)])


def test_indices_stay_inside_their_table():
    m = _bert_like()
    # The old generator: [0, 16) for names like *_ids -> out of the 2-row table.
    with pytest.raises(Exception, match="out of"):
        _run(m, {"input_ids": np.full((1, 8), 3, np.int64), "token_type_ids": np.full((1, 8), 5, np.int64)})
    plan = plan_inputs(m)
    assert plan.feeds["token_type_ids"].max() < 2
    assert plan.feeds["input_ids"].max() < 50
    assert plan.feeds["input_ids"].shape[1] > 1, "a sequence, not a single token"
    why = {c.name: " ".join(c.why) for c in plan.choices}
    assert "[0, 2)" in why["token_type_ids"] and "[0, 50)" in why["input_ids"]


def test_a_scalar_compared_with_a_constant_takes_it():
    m = _parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[batch,samples] x, int64 sr) => (float[batch,samples] y) {
            c = Constant<value = int64 {16000}>()
            ok = Equal(sr, c)
            y = If(ok) <then_branch = t () => (float[batch,samples] a) { a = Identity(x) },
                        else_branch = e () => (float[batch,samples] b) {
                            bad = Constant<value = int64[2] {-1, 7}>()
                            b = Reshape(x, bad) }>
        }
    """)
    plan = plan_inputs(m)
    assert int(plan.feeds["sr"]) == 16000
    assert "16000" in " ".join(c for ch in plan.choices for c in ch.why)


def test_shape_values_are_small_and_positive():
    m = _parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (int64[2] shape) => (float[a,b] y) {
            one = Constant<value = float {1.0}>()
            y = Expand(one, shape)
        }
    """)
    plan = plan_inputs(m)
    assert plan.feeds["shape"].min() >= 1 and plan.feeds["shape"].max() <= 4


# --- when nothing runs; bounds -----------------------------------------------------------------

NEEDS_1000 = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1,n] x) => (float[1,1000] y) {
    s = Constant<value = int64[2] {1, 1000}>()
    y = Reshape(x, s)
}
"""


def test_no_candidate_runs_names_what_was_tried_and_the_way_out(tmp_path):
    m = _parse(NEEDS_1000)
    with pytest.raises(InputsNotFound) as e:
        plan_inputs(m, path="m.onnx")
    msg = str(e.value)
    assert msg.startswith("m.onnx: onnxdoctor could not find inputs")
    assert "x:1x16" in msg and "--shape x:DIMS" in msg and "--data" in msg
    assert "does not run" not in msg and "fix it first" not in msg
    # and the user's shape is the way out
    assert plan_inputs(m, shapes={"x": (1, 1000)}).feeds["x"].shape == (1, 1000)
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    r = _cli("fix", str(path), "-o", str(tmp_path / "out.onnx"))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "\x1b[" not in r.stderr, r.stderr  # one line, no ORT log
    assert str(path) in r.stderr and "--shape" in r.stderr
    assert not (tmp_path / "out.onnx").exists()
    r = _cli("fix", str(path), "-o", str(tmp_path / "out.onnx"), "--shape", "x:1x1000")
    assert r.returncode in (0, 1), r.stderr


def test_absurd_static_inputs_are_refused_without_allocating():
    m = _parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[30000,10000] x) => (float[30000,10000] y) { y = Relu(x) }
    """)
    with pytest.raises(UsageError, match="pass --data"):
        plan_inputs(m, path="big.onnx")


def test_unknown_element_type_is_a_usage_error():
    m = _parse(SHARED_NAMES)
    m.graph.input[0].type.tensor_type.elem_type = 999
    with pytest.raises(UsageError, match="element type 999"):
        InputOracle(m, path="m.onnx")


# --- proofs through data-dependent sizes --------------------------------------------------------

def _range_model(scale: float) -> onnx.ModelProto:
    """y = Range(0, round(sum(x) * scale)): the output's length depends on the data."""
    return _parse(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[4] x) => (float[n] y) {{
            s = ReduceSum<keepdims = 0>(x)
            k = Constant<value = float {{{scale!r}}}>()
            v = Mul(s, k)
            r = Round(v)
            n = Cast<to = 1>(r)
            zero = Constant<value = float {{0.0}}>()
            step = Constant<value = float {{1.0}}>()
            y = Range(zero, n, step)
        }}
    """)


def test_a_last_ulp_change_before_a_rounded_size_is_inconclusive_not_a_failure():
    ref, cand = _range_model(1000.0), _range_model(1000.001)
    feeds = {"x": np.array([0.0004999999, 0.0, 0.0, 0.0], np.float32)}
    reference = _run(ref, feeds)
    proof = proving.prove(reference, cand, feeds, reference_model=ref)
    assert not proof.passed
    assert proof.inconclusive and "not provable on this input" in proof.summary()
    # without the reference model it stays the plain shape failure
    assert proving.prove(reference, cand, feeds).inconclusive is None
    # a real difference before the rounding is still a failure
    wrong = proving.prove(reference, _range_model(3000.0), {"x": np.array([0.01, 0, 0, 0], np.float32)} and feeds,
                          reference_model=ref)
    assert wrong.inconclusive is None and not wrong.passed


def test_relative_error_is_measured_against_the_tensor_scale():
    c = proving.compare_arrays("t", np.array([1e-9, 1.0]), np.array([2e-9, 1.0]), 1e-4, 1e-3)
    assert c.passed and c.max_rel_diff == pytest.approx(1e-9)


# --- verify --fp16: underflow judged by its effect ----------------------------------------------

def test_fp16_underflow_that_changes_nothing_passes_and_a_vanishing_tensor_fails(tmp_path):
    from onnxdoctor.verify import fp16_emulation

    # a probability-like tensor whose tail lies below FP16's smallest subnormal (6e-8)
    sig = _parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[8] x) => (float[8] y) { y = Relu(x) }
    """)
    feeds = {"x": np.array([1e-13, 1e-11, 2e-9, 0.1, 0.3, 0.5, 0.7, 0.9], np.float32)}
    res = fp16_emulation("sig.onnx", sig, feeds)
    assert res.passed, [c.to_dict() for c in res.comparisons]
    assert any(c.note and "harmless" in c.note for c in res.comparisons)
    tiny = _parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[8] x) => (float[8] y) {
            k = Constant<value = float {1e-9}>()
            t = Mul(x, k)
            m = Constant<value = float {1e9}>()
            y = Mul(t, m)
        }
    """)
    res = fp16_emulation("tiny.onnx", tiny, {"x": np.linspace(1, 2, 8, dtype=np.float32)})
    assert not res.passed
    assert res.first_divergence.tensor == "t" and "loses" in res.first_divergence.note


# --- profile ------------------------------------------------------------------------------------

def test_profile_shapes_follow_the_strides_and_each_point_runs():
    m = _strided_unet(5)
    prof = build_profile(from_proto(m, path="unet.onnx"), Target.make("10.15"), {}, proto=m)
    (row,) = prof["inputs"]
    assert prof["validation"]["validated"] is True
    assert row["source"] == "oracle"
    for key in ("min", "opt", "max"):
        dims = row[key]
        assert dims[2] % 32 == 0 and dims[3] % 32 == 0, (key, dims)
        _run(m, {"x": np.zeros(dims, np.float32)})  # ONNX Runtime runs it: the profile does not lie
    assert row["min"][0] == 1 and row["max"][0] == 8
    assert "--minShapes=x:" + "x".join(map(str, row["min"])) in prof["trtexec"]


def test_profile_without_weights_says_it_was_not_validated():
    m = _strided_unet(2)
    prof = build_profile(from_proto(m, path="unet.onnx"), Target.make("10.15"), {})
    assert prof["validation"]["validated"] is False


def test_profile_keeps_a_flagged_shape_and_reports_when_it_does_not_run():
    m = _parse(NEEDS_1000)
    prof = build_profile(from_proto(m, path="m.onnx"), Target.make("10.15"), parse_shapes(["x:1x1000:1x1000:1x2000"]), proto=m)
    (row,) = prof["inputs"]
    assert (row["min"], row["max"], row["source"]) == ([1, 1000], [1, 2000], "flag")
    assert prof["validation"]["ran"] == {"min": True, "opt": True, "max": False}
    assert any("did not run" in n for n in prof["notes"])


def test_profile_ties_batch_across_inputs_and_the_cli_prints_one_json(tmp_path):
    m = _bert_like()
    path = tmp_path / "bert.onnx"
    onnx.save(m, path)
    r = _cli("profile", str(path), "--format", "json")
    assert r.returncode == 0, r.stderr
    prof = json.loads(r.stdout)
    rows = {i["name"]: i for i in prof["inputs"]}
    for key in ("min", "opt", "max"):
        assert rows["input_ids"][key] == rows["token_type_ids"][key]
    assert prof["validation"]["validated"] is True
    # min shrinks below the proof's first candidate: one token at a time runs, so it is allowed
    assert rows["input_ids"]["min"] == [1, 1] and rows["input_ids"]["max"] == [8, 512]
    r = _cli("profile", str(path), "--no-validate", "--format", "json")
    assert json.loads(r.stdout)["validation"]["validated"] is False


# --- the commands use it ------------------------------------------------------------------------

def test_fix_and_verify_run_without_data_on_a_strided_model(tmp_path):
    m = _strided_unet(5)
    path, out = tmp_path / "unet.onnx", tmp_path / "fixed.onnx"
    onnx.save(m, path)
    r = _cli("fix", str(path), "-o", str(out), "--report", str(tmp_path / "r.json"))
    assert r.returncode in (0, 1), r.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    shape = report["inputs"]["inputs"][0]["shape"]
    assert shape[2] % 32 == 0 and shape[3] % 32 == 0
    r = _cli("verify", str(path), "--against", str(out), "--format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["pass"] is True


def test_check_accepts_negative_graph_input_dims(tmp_path):
    m = _strided_unet(2)
    m.graph.input[0].type.tensor_type.shape.dim[0].Clear()
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1
    path = tmp_path / "neg.onnx"
    onnx.save(m, path)
    r = _cli("check", str(path), "--format", "json")
    assert r.returncode in (0, 1), r.stderr
    [dynamic] = [f for f in json.loads(r.stdout)["models"][0]["findings"] if f["code"] == "SHP202"]
    assert "? (dim 0)" in dynamic["message"]  # -1 is read as a dynamic dim, not refused
    r = _cli("fix", str(path), "-o", str(tmp_path / "o.onnx"), "--shape", "x:1x2x64x64")
    assert r.returncode in (0, 1), r.stderr
    fixed = onnx.load(tmp_path / "o.onnx")
    assert [d.dim_value for d in fixed.graph.input[0].type.tensor_type.shape.dim] == [1, 2, 64, 64]


def test_sequence_and_optional_inputs_are_generated():
    seq = _parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (seq(float[n]) s) => (float[m] y) { p = Constant<value = int64 {1}>()
            y = SequenceAt(s, p) }
    """)
    plan = plan_inputs(seq)
    assert isinstance(plan.feeds["s"], list) and len(plan.feeds["s"]) == 2
    opt = _parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (optional(float[n]) o) => (bool y) { y = OptionalHasElement(o) }
    """)
    assert bool(plan_inputs(opt).outputs["y"]) is True
    nested = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (seq(seq(float[n])) s) => (seq(seq(float[n])) y) { y = Identity(s) }
    """)
    with pytest.raises(UsageError, match="sequence of sequence_type"):
        InputOracle(nested, path="m.onnx")


def test_onnx_runtime_writes_no_telemetry_files(tmp_path):
    """ONNX Runtime creates $HOME/.cache/Microsoft/... and $TMPDIR/.ses on import unless telemetry is
    off: onnxdoctor turns it off, so a fix writes nothing outside its output path."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    path = tmp_path / "m.onnx"
    onnx.save(_parse(SHARED_NAMES), path)
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(home), TMPDIR=str(tmp))
    r = subprocess.run([sys.executable, "-m", "onnxdoctor", "fix", str(path), "-o", str(tmp_path / "o.onnx")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    assert list(home.iterdir()) == [] and list(tmp.iterdir()) == []


def test_axes_from_an_input_are_distinct_small_axes():
    m = _parse("""
        <ir_version: 8, opset_import: ["" : 18]>
        g (float[2,3] x, int64[1] axes) => (float[n] y) { y = ReduceSum<keepdims = 0>(x, axes) }
    """)
    plan = plan_inputs(m)
    assert plan.feeds["axes"].tolist() == [0]


@pytest.mark.parametrize("elem", [TensorProto.FLOAT8E5M2, TensorProto.BFLOAT16, TensorProto.COMPLEX64, TensorProto.STRING])
def test_types_numpy_cannot_generate_are_usage_errors(elem):
    m = _parse(SHARED_NAMES)
    m.graph.input[0].type.tensor_type.elem_type = elem
    with pytest.raises(UsageError, match="pass --data") as err:
        InputOracle(m, path="m.onnx")
    assert ("no equivalent graph" in str(err.value)) == (elem == TensorProto.STRING)
