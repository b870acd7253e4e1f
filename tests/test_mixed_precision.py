"""convert-precision: mixed FP16/BF16 conversion with evidence-based FP32 regions, proven in ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import numpy_helper

from onnxdoctor import mixed_precision as mp

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "fixtures" / "models" / "real"

# A transformer block: single-head attention with a -1e9 additive mask, residual, unfused LayerNorm.
BLOCK = """
<ir_version: 8, opset_import: ["" : 17]>
block (float[1,8,16] x, float[1,8,8] keep) => (float[1,8,16] y) {
    q = MatMul(x, wq)
    k = MatMul(x, wk)
    v = MatMul(x, wv)
    kt = Transpose<perm = [0, 2, 1]>(k)
    s = MatMul(q, kt)
    s2 = Mul(s, scale)
    inv = Sub(one, keep)
    m = Mul(inv, neg)
    sm = Add(s2, m)
    p = Softmax<axis = -1>(sm)
    a = MatMul(p, v)
    h = Add(x, a)
    mu = ReduceMean<axes = [-1]>(h)
    d = Sub(h, mu)
    d2 = Pow(d, two)
    var = ReduceMean<axes = [-1]>(d2)
    ve = Add(var, eps)
    sd = Sqrt(ve)
    n = Div(d, sd)
    g = Mul(n, gamma)
    y = Add(g, beta)
}
"""

# Activations overflow FP16 in the middle (|b| ~ 1e5) and come back to small values.
OVERFLOW = """
<ir_version: 8, opset_import: ["" : 17]>
ov (float[4,16] x) => (float[4,16] y) {
    a = MatMul(x, w)
    b = Mul(a, big)
    c = Abs(b)
    d = Mul(c, small)
    e = Tanh(a)
    f = Add(d, e)
    y = Add(f, x)
}
"""


def _with_weights(text: str, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    m = onnx.parser.parse_model(text)
    m.graph.initializer.extend(numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in weights.items())
    for i, n in enumerate(m.graph.node):
        n.name = n.output[0]  # node name = its output, so tests can name nodes
    onnx.checker.check_model(m, full_check=True)
    return m


def block_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = {k: rng.standard_normal((16, 16)) * 0.25 for k in ("wq", "wk", "wv")}
    return _with_weights(BLOCK, {**w, "scale": [0.25], "one": [1.0], "neg": [-1e9], "two": [2.0], "eps": [1e-12],
                                 "gamma": rng.standard_normal(16), "beta": rng.standard_normal(16)})


def block_feeds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    causal = np.tril(np.ones((8, 8), np.float32))[None]
    return {"x": rng.standard_normal((1, 8, 16)).astype(np.float32), "keep": causal}


def overflow_model() -> onnx.ModelProto:
    rng = np.random.default_rng(2)
    return _with_weights(OVERFLOW, {"w": rng.standard_normal((16, 16)) * 0.5, "big": [3e4], "small": [1e-4]})


def float_input_types(model: onnx.ModelProto) -> dict[str, set[int]]:
    """Per non-Cast node, the float element types of its inputs."""
    types = mp.elem_types(model)
    floats = {TP.FLOAT, TP.FLOAT16, TP.BFLOAT16, TP.DOUBLE}
    return {n.name: {types[i] for i in n.input if i and types.get(i) in floats} for n in model.graph.node if n.op_type != "Cast"}


def assert_strongly_typed(model: onnx.ModelProto) -> None:
    onnx.checker.check_model(model, full_check=True)
    assert mp.mixed_type_nodes(model) == []
    mixed = {k: v for k, v in float_input_types(model).items() if len(v) > 1}
    assert not mixed, mixed
    casts = [(n.input[0], next(a.i for a in n.attribute if a.name == "to")) for n in model.graph.node if n.op_type == "Cast"]
    assert len(casts) == len(set(casts)), "duplicated Cast"
    producers = {o: n for n in model.graph.node for o in n.output}
    types = mp.elem_types(model)
    for n in model.graph.node:
        if n.op_type != "Cast":
            continue
        to = next(a.i for a in n.attribute if a.name == "to")
        if to not in (TP.FLOAT, TP.FLOAT16, TP.BFLOAT16):
            continue
        assert types.get(n.input[0]) != to, f"no-op Cast {n.name}"
        src = producers.get(n.input[0])
        if src is not None and src.op_type == "Cast":
            assert types.get(src.input[0]) != to, f"cancelling Cast pair at {n.name}"


def kept(res: mp.ConversionResult) -> set[str]:
    return {d.node for d in res.kept}


def test_transformer_block_keeps_mask_and_unfused_layernorm_where_evidence_says():
    res = mp.convert(block_model(), "fp16", feeds=block_feeds())
    assert res.passed, res.render_text()
    assert res.proof == "onnxruntime"
    reasons = {d.node: d.reason for d in res.kept}
    # the -1e9 mask: where it is made, where it meets the scores, and the Softmax reading it
    assert {"m", "sm", "p"} <= set(reasons)
    assert "-1e+09" in reasons["m"] and "FP16 range" in reasons["m"]
    # the unfused LayerNorm: its statistics are tame on these inputs (observed) and convert; its epsilon
    # (1e-12) flushes to zero in FP16, but every observed variance is so large that adding it changes
    # nothing even in FP32
    assert set(reasons) == {"m", "sm", "p"}
    assert "observed" in {d.node: d.reason for d in res.decisions}["ve"]
    # the matrix multiplications run in FP16, with FP16 weights
    inits = {t.name: t.data_type for t in res.model.graph.initializer}
    assert inits["wq"] == TP.FLOAT16 and inits["neg"] == TP.FLOAT
    assert_strongly_typed(res.model)
    w = res.outputs[0]
    assert w.tensor == "y" and w.max_abs_diff < 1e-2


def test_flushing_epsilon_stays_fp32_where_the_variance_reaches_zero():
    """FP16 flushes the epsilon 1e-12 to 0. It is negligible next to every variance the reference run
    saw, so its Add converts; if a variance of 0 had been seen (a row of identical values), epsilon is
    all that keeps 1/sqrt finite and the Add stays FP32."""
    m = block_model()
    observed = mp.observe(m, block_feeds())
    assert observed["var"].floor > 1e-6
    kept_nodes = {d.node: d.reason for d in mp.plan(m, "fp16", observed=observed) if d.kept_fp32}
    assert "ve" not in kept_nodes
    v = observed["var"]
    observed["var"] = mp.Stat(v.peak, v.shape, v.dtype, 0.0)
    kept_nodes = {d.node: d.reason for d in mp.plan(m, "fp16", observed=observed) if d.kept_fp32}
    assert "flushes to 0" in kept_nodes["ve"]


def test_keep_norm_stats_keeps_the_layernorm_statistics_fp32_regardless():
    res = mp.convert(block_model(), "fp16", feeds=block_feeds(), keep_norm_stats=True)
    assert res.passed, res.render_text()
    k = kept(res)
    # statistics (mean, variance, rsqrt, normalize) stay FP32; the affine scale/bias do not
    assert {"mu", "d", "d2", "var", "ve", "sd", "n"} <= k
    assert not {"g", "y"} & k
    assert not {"q", "k", "v", "s", "a"} & k
    assert "LayerNorm statistics" in {d.node: d.reason for d in res.decisions}["mu"]
    assert_strongly_typed(res.model)


def test_without_a_reference_run_sensitivity_rules_stand_in_for_evidence():
    """Nothing observed: the LayerNorm statistics and Pow stay FP32 by rule."""
    res = mp.convert(block_model(), "fp16", feeds=block_feeds(), observe_activations=False)
    assert res.passed, res.render_text()
    reasons = {d.node: d.reason for d in res.kept}
    assert {"mu", "d", "d2", "var", "sd", "n"} <= set(reasons)
    assert all("not observed" in reasons[n] for n in ("mu", "d2", "var"))
    # keep_io_types: the interface is unchanged
    assert [i.type.tensor_type.elem_type for i in res.model.graph.input] == [TP.FLOAT, TP.FLOAT]
    assert res.model.graph.output[0].type.tensor_type.elem_type == TP.FLOAT


def test_keep_set_is_what_makes_a_large_residual_stream_work():
    """The transformer block with a -1e9 mask and an unfused LayerNorm, on a residual stream of magnitude
    ~400 (as in large LLMs): LayerNorm's variance overflows FP16, so forcing every node to FP16 breaks
    the block; the planned conversion keeps the mask region and the LayerNorm variance in FP32 and its
    outputs stay within tolerance."""
    m = block_model()
    feeds = block_feeds()
    feeds["x"] = feeds["x"] * 400
    decisions = [mp.Decision(d.node, d.op_type, False, "forced", d.kind) for d in mp.plan(m, "fp16")]
    forced = mp.build(m, decisions, "fp16")
    from onnxdoctor import prove as proving

    ref = proving.run(m, feeds)["y"]
    got = proving.run(forced, feeds)["y"]
    assert not np.allclose(got, ref, atol=1e-1, rtol=1e-1)
    res = mp.convert(m, "fp16", feeds=feeds)
    assert res.passed, res.render_text()
    assert {"m", "sm", "p"} <= kept(res)  # the mask region
    assert {"d2", "var"} <= kept(res)  # the LayerNorm variance, by evidence: observed beyond max_abs
    reasons = {d.node: d.reason for d in res.kept}
    assert "max_abs" in reasons["var"] and "-1e+09" in reasons["m"]
    y = res.outputs[0]
    assert y.tensor == "y" and y.passed
    assert_strongly_typed(res.model)


def test_bert_converts_with_layernorm_fp32_and_its_inf_mask_in_fp16():
    """BERT's export masks with a -inf constant: exactly representable in FP16, so the masked Softmax
    converts (only finite values beyond ±65504 change meaning); proven with padded masks."""
    m = onnx.load(REAL / "bert-torchscript-opset14.onnx")
    from onnxdoctor import prove as proving

    feeds = proving.generate_inputs(m, {}, 0)
    feeds["attention_mask"][..., -3:] = 0  # padding: the mask arithmetic really runs
    res = mp.convert(m, "fp16", feeds=feeds)
    assert res.passed, res.render_text()
    ops = {d.node: d.op_type for d in res.kept}
    assert not any(op in ("MatMul", "Softmax", "Sqrt", "ReduceMean") for op in ops.values())  # tame LayerNorms convert
    assert res.fp32_fraction < 0.05
    assert_strongly_typed(res.model)
    w = res.outputs[0]
    assert w.tensor == "last_hidden_state" and w.max_abs_diff < 1e-2


def test_plain_cnn_converts_fully():
    m = onnx.load(ROOT / "fixtures" / "models" / "clean.onnx")
    res = mp.convert(m, "fp16")
    assert res.passed, res.render_text()
    assert res.kept == [] and res.fp32_fraction == 0.0
    assert res.casts_inserted == 2  # graph input and output only
    assert all(t.data_type == TP.FLOAT16 for t in res.model.graph.initializer)
    assert_strongly_typed(res.model)


def test_overflowing_activations_keep_exactly_the_overflowing_nodes():
    m = overflow_model()
    res = mp.convert(m, "fp16")
    assert res.passed, res.render_text()
    # b overflows FP16: its producer (b) and its readers (c, whose output overflows too, then d)
    assert kept(res) == {"b", "c", "d"}
    assert {d.node for d in res.decisions if d.kind == "compute" and not d.kept_fp32} == {"a", "e", "f", "y"}
    assert all("max_abs" in d.reason for d in res.kept)
    assert_strongly_typed(res.model)
    # without the dynamic evidence, the same conversion overflows: the layerwise proof sees inf at b
    # (ORT's CPU FP16 kernels do not always carry the inf to the output, so outputs alone can miss it)
    blind = mp.convert(m, "fp16", max_abs=1e30, max_retries=0)
    assert blind.first_divergence is not None and blind.first_divergence.tensor == "b"
    assert blind.first_divergence.max_abs_diff == float("inf")
    assert not blind.passed
    # with retries, the FP32 set widens around b until the proof passes
    widened = mp.convert(m, "fp16", max_abs=1e30)
    assert widened.passed and widened.retries >= 1 and "b" in kept(widened)


def test_max_abs_threshold_is_respected():
    m = overflow_model()
    loose = mp.convert(m, "fp16", max_abs=1e6, max_retries=0)
    assert "b" not in kept(loose)


def test_user_overrides_by_op_type_and_name_glob():
    res = mp.convert(block_model(), "fp16", feeds=block_feeds(), keep_fp32=("Transpose", "q", "s*"))
    reasons = {d.node: d.reason for d in res.decisions if d.kept_fp32}
    assert {"q", "s", "s2", "sm", "sd"} <= set(reasons)
    assert reasons["q"] == "user override --keep-fp32 q"
    assert reasons["kt"].startswith("user override")
    assert res.passed
    assert_strongly_typed(res.model)


def test_io_types_change_without_keep_io_types():
    m = onnx.load(ROOT / "fixtures" / "models" / "clean.onnx")
    res = mp.convert(m, "fp16", keep_io_types=False)
    assert res.model.graph.input[0].type.tensor_type.elem_type == TP.FLOAT16
    assert res.model.graph.output[0].type.tensor_type.elem_type == TP.FLOAT16
    assert res.casts_inserted == 0
    assert res.passed, res.render_text()
    assert_strongly_typed(res.model)


def test_bf16_is_proven_by_emulation():
    res = mp.convert(block_model(), "bf16", feeds=block_feeds())
    assert res.proof.startswith("emulated"), res.proof
    assert res.passed, res.render_text()
    inits = {t.name: t.data_type for t in res.model.graph.initializer}
    assert inits["wq"] == TP.BFLOAT16
    # BF16 has FP32's range: the -1e9 mask no longer forces FP32, and the observed statistics convert
    assert kept(res) == set()
    assert "var" in kept(mp.convert(block_model(), "bf16", feeds=block_feeds(), keep_norm_stats=True))
    assert_strongly_typed(res.model)


def test_failed_proof_widens_around_first_divergence_and_is_bounded():
    res = mp.convert(block_model(), "fp16", feeds=block_feeds(), tolerance=(1e-6, 1e-6), max_retries=2)
    assert res.retries >= 1
    assert res.first_divergence is not None
    assert any("widened around the first divergence" in d.reason for d in res.decisions)
    assert res.retries <= 2
    assert_strongly_typed(res.model)


def test_rewrite_applies_only_with_fp16_or_bf16_intent():
    from onnxdoctor.rewrites import RewriteContext, get_rewrite
    from onnxdoctor.target import Target

    rw = get_rewrite("convert-precision")
    assert rw.phase == 70 and "PRC303" in rw.resolves
    m = onnx.load(ROOT / "fixtures" / "models" / "clean.onnx")
    none = rw.apply(m, RewriteContext(target=Target.make("11.0")))
    assert not none.changed and "fp16 or bf16" in none.skipped[0]
    out = rw.apply(m, RewriteContext(target=Target.make("11.0", precision="fp16")))
    assert out.changed and "converted to fp16" in out.changes[0]
    assert_strongly_typed(out.model)
    again = rw.apply(out.model, RewriteContext(target=Target.make("11.0", precision="fp16")))
    assert not again.changed  # already converted: converges


def test_norm_statistics_and_pow_are_left_to_evidence():
    res = mp.convert(block_model(), "fp16", feeds=block_feeds())
    assert res.passed, res.render_text()
    k = kept(res)
    assert not {"mu", "d", "d2", "var", "sd", "n"} & k  # tame statistics and the square convert
    why = {d.node: d.reason for d in res.decisions}["d2"]
    assert why.startswith("observed |x| <=")
    assert_strongly_typed(res.model)


def test_bf16_result_is_provable_by_the_fix_pipeline_through_its_emulation():
    """fix proves every rewrite in ORT; a BF16 model does not run on ORT CPU, its emulation does."""
    from onnxdoctor import prove as proving
    from onnxdoctor.rewrites._gs import cleaned

    m = onnx.load(REAL / "llama-dynamo.onnx")
    res = mp.convert(m, "bf16", prove=False)
    candidate = cleaned(res.model)  # what fix.py proves
    feeds = proving.generate_inputs(m, {}, 0)
    ref = proving.run(m, feeds)
    assert proving.prove(ref, candidate, feeds, 5e-2, 5e-2).error  # ORT CPU: no BF16 kernels
    proof = proving.prove(ref, mp.proof_model(candidate), feeds, 5e-2, 5e-2)
    assert proof.passed, proof.summary()
    fp16 = mp.convert(m, "fp16", prove=False).model
    assert mp.proof_model(fp16) is fp16



def test_fix_runs_the_conversion_once_as_a_final_stage_proven_by_its_own_proof():
    """`fix --precision fp16`: the rewrite loop first, then the conversion once, on its result; the
    stage's layerwise proof is the one reported, no pipeline proof runs it again."""
    from onnxdoctor.fix import FixOptions, fix_model

    res = fix_model(block_model(), FixOptions(trt="11.0", precision="fp16", unsafe=True))
    conv = [s for s in res.steps if s.rewrite == "convert-precision"]
    assert len(conv) == 1 and conv[0].status == "applied", [(s.rewrite, s.status, s.reason) for s in res.steps]
    assert res.steps[-1] is conv[0] and conv[0].iteration > max(s.iteration for s in res.steps[:-1])
    assert conv[0].proof is not None and conv[0].proof.passed and res.proof is conv[0].proof
    assert {c.name for c in conv[0].proof.comparisons} == {o.name for o in block_model().graph.output}
    # one pipeline proof per loop iteration that applied something; none for the stage
    assert res.timings["proof_runs"] == len({s.iteration for s in res.steps[:-1] if s.status == "applied"})
    assert_strongly_typed(res.model)


def test_a_failed_stage_proof_rolls_the_conversion_back():
    from onnxdoctor.fix import FixOptions, fix_model

    opts = FixOptions(trt="11.0", precision="fp16", unsafe=True,
                      precision_options={"tolerance": (1e-9, 1e-9), "max_retries": 0})
    res = fix_model(block_model(), opts)
    conv = next(s for s in res.steps if s.rewrite == "convert-precision")
    assert conv.status == "rolled-back" and conv.reason.startswith("outputs differ"), conv
    assert conv.proof is not None and not conv.proof.passed
    assert not any(t.data_type == TP.FLOAT16 for t in res.model.graph.initializer)


IF_MODEL = """
<ir_version: 8, opset_import: ["" : 17]>
cf (float[2,4] x, bool c) => (float[2,4] y) {
    h = MatMul(x, w)
    r = If(c) <then_branch = t () => (float[2,4] o) { o = Relu(h) },
               else_branch = e () => (float[2,4] o) { o = Neg(h) }>
    y = Add(r, h)
}
"""


def test_tensors_read_by_a_subgraph_keep_their_type():
    m = _with_weights(IF_MODEL, {"w": np.eye(4)})
    res = mp.convert(m, "fp16", feeds={"x": np.ones((2, 4), np.float32), "c": np.array(True)})
    reasons = {d.node: d.reason for d in res.decisions if d.kept_fp32}
    assert "read inside a control-flow subgraph" in reasons["h"]
    assert "subgraph" in reasons["r"]
    assert res.passed, res.render_text()
    assert_strongly_typed(res.model)


def test_cli_precision_conversion_end_to_end(run_cli, tmp_path):
    """`fix --precision fp16` converts (the flag is the consent), writes --report with every
    decision, and the converted model checks clean of strong-typing mismatches on 11.x."""
    import json

    from ._fixtures import MODELS

    out, report = tmp_path / "fp16.onnx", tmp_path / "conv.json"
    proc = run_cli("fix", MODELS / "real" / "bert-torchscript-opset14.onnx", "-o", out, "--trt", "11.5",
                   "--precision", "fp16", "--keep-fp32", "Softmax", "--report", report, "--isolated")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    step = next(s for s in data["steps"] if s["rewrite"] == "convert-precision")
    assert step["status"] == "applied" and step["details"]["pass"] is True
    kept_ops = {c.split(": ", 1)[1].split(" (", 1)[1].split(")", 1)[0] for c in step["changes"][1:]}
    assert "Softmax" in kept_ops
    m = onnx.load(out)
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in m.graph.initializer)
    assert [i.type.tensor_type.elem_type for i in m.graph.output] == [onnx.TensorProto.FLOAT]  # --keep-io-types
    onnx.checker.check_model(m, full_check=True)
    chk = run_cli("check", out, "--trt", "11.5", "--select", "PRC305,PRC303", "--format", "json", "--isolated")
    assert json.loads(chk.stdout)["models"][0]["findings"] == []


def test_cli_keep_norm_stats_keeps_the_statistics_of_a_tame_layernorm(run_cli, tmp_path):
    """The fix pipeline fuses a decomposed LayerNorm first; without the fusion (rules that exclude it)
    the statistics convert on tame inputs, and --keep-norm-stats keeps them FP32."""
    import json

    src = tmp_path / "block.onnx"
    onnx.save(block_model(), src)
    kept_by = {}
    for flag in ((), ("--keep-norm-stats",)):
        out, report = tmp_path / f"out{len(flag)}.onnx", tmp_path / f"r{len(flag)}.json"
        proc = run_cli("fix", src, "-o", out, "--trt", "11.5", "--precision", "fp16", "--rules", "PRC303",
                       "--report", report, "--isolated", *flag)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        step = next(s for s in json.loads(report.read_text())["steps"] if s["rewrite"] == "convert-precision")
        kept_by[flag] = {d["node"] for d in step["details"]["decisions"] if d["kept_fp32"]}
    assert not {"mu", "var", "sd"} & kept_by[()]
    assert {"mu", "d", "d2", "var", "ve", "sd", "n"} <= kept_by[("--keep-norm-stats",)]
