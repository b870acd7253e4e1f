"""Quantized integer ops (rewrites/quantization.py): models quantized by ONNX Runtime's own
`quantize_dynamic` are repaired for TensorRT 8.6 and 10.15 and proven within tolerance; the
rewrites leave alone what they cannot replace, and say why."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxdoctor
from onnxdoctor import prove
from onnxdoctor._proto import graphs
from onnxdoctor.findings import Applicability
from onnxdoctor.fix import FixOptions, fix_model
from onnxdoctor.rewrites import RewriteContext, all_rewrites, get_rewrite
from onnxdoctor.rewrites.quantization import _tolerance
from onnxdoctor.rule_fixes import APPLICABILITY, SUBSTITUTIONS
from onnxdoctor.target import Target

pytest.importorskip("onnxruntime.quantization")

QUANT_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM", "DynamicQuantizeMatMul",
             "MatMulIntegerToFloat"}
# What a quantized model that TensorRT cannot take is reported as.
QUANT_CODES = {"TRT101", "TRT102", "TRT113"}


def float_model() -> onnx.ModelProto:
    """Conv -> Relu -> Flatten -> Gemm -> LSTM, the layers quantize_dynamic quantizes."""
    rng = np.random.default_rng(0)

    def w(name, *shape, scale=0.3):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    hidden = 8
    inits = [
        w("conv_w", 4, 3, 3, 3), w("conv_b", 4), w("fc_w", 16, 4 * 6 * 6, scale=0.1), w("fc_b", 16),
        w("lstm_w", 1, 4 * hidden, 16), w("lstm_r", 1, 4 * hidden, hidden), w("lstm_b", 1, 8 * hidden),
        numpy_helper.from_array(np.array([0], np.int64), "axis0"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["h"], transB=1, name="fc"),
        helper.make_node("Unsqueeze", ["h", "axis0"], ["seq"], name="unsqueeze"),
        helper.make_node("LSTM", ["seq", "lstm_w", "lstm_r", "lstm_b"], ["y"], hidden_size=hidden, name="lstm"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, hidden])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def quantized(tmp_path, *, ort_optimized: bool = False, **options) -> onnx.ModelProto:
    """The float model through onnxruntime.quantization.quantize_dynamic (and, optionally, ONNX
    Runtime's optimizer, which fuses the chains into com.microsoft ops)."""
    import onnxruntime
    from onnxruntime.quantization import quantize_dynamic

    src, dst = tmp_path / "float.onnx", tmp_path / "quantized.onnx"
    onnx.save(float_model(), src)
    quantize_dynamic(str(src), str(dst), **options)
    if ort_optimized:
        so = onnxruntime.SessionOptions()
        so.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
        onnxruntime.InferenceSession(str(dst), so, providers=["CPUExecutionProvider"])
        dst = tmp_path / "optimized.onnx"
    return onnx.load(str(dst))


def _ops(model):
    return {n.op_type for n in model.graph.node}


def _quant_errors(findings):
    return [f for f in findings if f.code in QUANT_CODES and str(f.severity) == "error"]


VARIANTS = {
    "int8": dict(),
    "uint8-per-channel": dict(per_channel=True, weight_type="QUInt8"),
    "ort-optimized": dict(ort_optimized=True),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("release", ["8.6", "10.15"])
def test_quantize_dynamic_model_is_repaired_and_proven(tmp_path, variant, release):
    opts = dict(VARIANTS[variant])
    if "weight_type" in opts:
        from onnxruntime.quantization import QuantType

        opts["weight_type"] = QuantType[opts["weight_type"]]
    model = quantized(tmp_path, **opts)
    assert _ops(model) & QUANT_OPS, "quantize_dynamic did not quantize anything"
    if variant != "ort-optimized":  # the conv, the Gemm and the LSTM are all quantized
        assert {"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger", "DynamicQuantizeLSTM"} <= _ops(model), _ops(model)
    before = _quant_errors(onnxdoctor.check(model, trt=release, config=False).findings)
    assert before and all(f.fix is not None and f.fix.applicability == Applicability.UNSAFE for f in before)

    result = fix_model(model, FixOptions(trt=release, unsafe=True))

    assert not (_ops(result.model) & QUANT_OPS), _ops(result.model)
    # the dequantized MatMul + bias Add may then become one Gemm (fold-bias-add)
    assert {"Conv", "LSTM"} <= _ops(result.model) and {"MatMul", "Gemm"} & _ops(result.model)
    assert not _quant_errors(result.after), [f.message for f in _quant_errors(result.after)]
    # Nothing but info findings is left on that release (the float model's own findings are none).
    assert not [f for f in result.after if str(f.severity) != "info"], [f.message for f in result.after]
    applied = {s.rewrite for s in result.steps if s.status == "applied"}
    assert applied & {"dynamic-quantization-to-float", "dynamic-quantize-matmul-to-matmul"}
    assert "dynamic-quantize-lstm-to-lstm" in applied
    assert not [s for s in result.steps if s.status == "rolled-back"], [s.reason for s in result.steps]
    assert result.proof is not None and result.proof.passed, result.proof.summary()
    onnx.checker.check_model(result.model, full_check=True)
    # The float result is closer to what the quantized model computes than the tolerance allows,
    # and also on other inputs than the proof's.
    feeds = {"x": np.random.default_rng(5).standard_normal((2, 3, 6, 6)).astype(np.float32)}
    ref, got = prove.run(model, feeds)["y"], prove.run(result.model, feeds)["y"]
    assert np.abs(ref - got).max() <= result.tolerance[0] + result.tolerance[1] * np.abs(ref).max()
    assert not np.array_equal(ref, got)  # activations are no longer rounded: not the same numbers


def test_unsafe_rewrites_need_unsafe_fixes(tmp_path):
    model = quantized(tmp_path)
    result = fix_model(model, FixOptions(trt="10.15"))
    assert _ops(result.model) & QUANT_OPS
    assert _quant_errors(result.after)
    assert not {s.rewrite for s in result.steps} & {r.name for r in all_rewrites() if r.name.startswith("dynamic-quantiz")}


def test_cli_says_unsafe_fixes_cure_it_and_they_do(run_cli, tmp_path):
    """The documented command for a quantize_dynamic model: `fix --unsafe-fixes`; without the flag
    the report says which unsafe rewrites would apply."""
    import json

    src = tmp_path / "quantized.onnx"
    onnx.save(quantized(tmp_path), src)
    plain = run_cli("fix", src, "-o", tmp_path / "plain.onnx", "--trt", "10.15", "--isolated")
    assert plain.returncode == 1, plain.stderr
    assert "have an unsafe fix (dynamic-quantization-to-float, dynamic-quantize-lstm-to-lstm): --unsafe-fixes" in plain.stdout
    for release in ("8.6", "10.15"):
        out = tmp_path / f"fixed-{release}.onnx"
        proc = run_cli("fix", src, "-o", out, "--trt", release, "--unsafe-fixes", "--isolated", "--format", "json")
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
        report = json.loads(proc.stdout)
        assert report["after"]["summary"]["error"] == 0 and report["proof"]["pass"]
        assert "unsafe fix" not in run_cli("fix", src, "-o", out, "--trt", release, "--unsafe-fixes", "--isolated").stdout
        onnx.checker.check_model(str(out), full_check=True)
        assert not _ops(onnx.load(str(out))) & QUANT_OPS


def test_quantized_bias_of_older_quantizers_becomes_the_conv_bias():
    """Older ONNX Runtime quantizers add the bias in INT32, quantized at run time with the output's scale."""
    rng = np.random.default_rng(1)
    wq = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    model = onnx.parser.parse_model("""
        <ir_version: 7, opset_import: ["" : 12]>
        g (float[1,3,6,6] x) => (float[1,4,4,4] y) {
          xq, xs, xz = DynamicQuantizeLinear(x)
          bs = Mul(xs, ws)
          bd = Div(bias, bs)
          bf = Floor(bd)
          bi = Cast<to = 6>(bf)
          br = Reshape(bi, shape)
          acc = ConvInteger<kernel_shape = [3, 3]>(xq, wq, xz, wz)
          accb = Add(acc, br)
          accf = Cast<to = 1>(accb)
          s = Mul(xs, ws)
          y = Mul(accf, s)
        }""")
    model.graph.initializer.extend([
        numpy_helper.from_array(wq, "wq"), numpy_helper.from_array(np.array(0, np.int8), "wz"),
        numpy_helper.from_array(np.array(0.004, np.float32), "ws"),
        numpy_helper.from_array(np.array([0.5, -0.25, 1.0, 0.0], np.float32), "bias"),
        numpy_helper.from_array(np.array([1, -1, 1, 1], np.int64), "shape"),
    ])
    out = get_rewrite("dynamic-quantization-to-float").apply(model, RewriteContext(target=Target.make("8.6")))
    assert out.changed, out.skipped
    assert [n.op_type for n in out.model.graph.node] == ["Conv"]
    conv = out.model.graph.node[0]
    assert len(conv.input) == 3
    bias = next(t for t in out.model.graph.initializer if t.name == conv.input[2])
    np.testing.assert_array_equal(numpy_helper.to_array(bias), [0.5, -0.25, 1.0, 0.0])
    onnx.checker.check_model(out.model, full_check=True)
    feeds = prove.generate_inputs(model, seed=3)
    proof = prove.compare(prove.run(model, feeds), prove.run(out.model, feeds), *_tolerance(RewriteContext(
        target=Target.make("8.6"), reference=prove.run(model, feeds))))
    assert proof.passed, proof.summary()


CHAIN = """
    <ir_version: 8, opset_import: ["" : 13]>
    g ({x_type} x) => (float[2,3] y) {{
      {quantize}
      s = Mul(xs, ws)
      acc = MatMulInteger(xq, wq, xz, wz)
      accf = Cast<to = {to}>(acc)
      y = Mul(accf, s)
    }}"""


def _chain(x_type="float[2,4]", quantize="xq, xs, xz = DynamicQuantizeLinear(x)", to=1, weights=True):
    model = onnx.parser.parse_model(CHAIN.format(x_type=x_type, quantize=quantize, to=to))
    if weights:
        model.graph.initializer.extend([
            numpy_helper.from_array(np.arange(-6, 6, dtype=np.int8).reshape(4, 3), "wq"),
            numpy_helper.from_array(np.array(0, np.int8), "wz"),
            numpy_helper.from_array(np.array([0.1, 0.2, 0.3], np.float32), "ws"),
        ])
    return model


def test_chain_with_per_column_scale_becomes_one_matmul():
    model = _chain()
    out = get_rewrite("dynamic-quantization-to-float").apply(model, RewriteContext(target=Target.make("8.6")))
    assert [n.op_type for n in out.model.graph.node] == ["MatMul"]
    w = numpy_helper.to_array(next(t for t in out.model.graph.initializer if t.name == out.model.graph.node[0].input[1]))
    np.testing.assert_allclose(w, np.arange(-6, 6).reshape(4, 3) * np.array([0.1, 0.2, 0.3]), rtol=1e-6)
    onnx.checker.check_model(out.model, full_check=True)
    assert not [f for f in onnxdoctor.check(out.model, trt="8.6", config=False).findings if str(f.severity) == "error"]


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        pytest.param(_chain(x_type="uint8[2,4]", quantize="xq = Identity(x)\n xs = Constant<value = float {0.1}>()\n"
                            " xz = Constant<value = uint8 {128}>()"), "does not come from DynamicQuantizeLinear",
                     id="static-input"),
        pytest.param(_chain(to=6), "Cast to FLOAT", id="cast-to-int32"),
        pytest.param(_chain(weights=False), "weight is not a constant", id="runtime-weight"),
    ],
)
def test_chain_left_alone_with_the_reason(model, reason):
    if reason == "weight is not a constant":
        model.graph.input.extend([helper.make_tensor_value_info(n, t, s) for n, t, s in
                                  (("wq", TensorProto.INT8, [4, 3]), ("wz", TensorProto.INT8, []), ("ws", TensorProto.FLOAT, [3]))])
    outcome = get_rewrite("dynamic-quantization-to-float").apply(model, RewriteContext(target=Target.make("8.6")))
    assert not outcome.changed
    assert outcome.model is model
    assert any(reason in s for s in outcome.skipped), outcome.skipped


def test_contrib_lstm_with_runtime_weights_is_left_alone():
    model = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 13, "com.microsoft" : 1]>
        g (float[1,2,4] x, int8[1,4,12] w, int8[1,3,12] r, float[1] ws, int8[1] wz, float[1] rs, int8[1] rz) => (float[1,1,2,3] y) {
          y = com.microsoft.DynamicQuantizeLSTM<hidden_size = 3>(x, w, r, , , , , , ws, wz, rs, rz)
        }""")
    outcome = get_rewrite("dynamic-quantize-lstm-to-lstm").apply(model, RewriteContext(target=Target.make("8.6")))
    assert not outcome.changed and any("not a constant" in s for s in outcome.skipped), outcome.skipped


def test_tolerance_scales_with_the_outputs():
    ctx = RewriteContext(target=Target.make("8.6"), reference={"y": np.array([0.5, -100.0], np.float32)})
    assert _tolerance(ctx) == pytest.approx((3.0, 2e-2))
    assert _tolerance(RewriteContext(target=Target.make("8.6"))) == (2e-2, 2e-2)


def test_findings_name_the_rewrites_check_lists():
    """rule_fixes.SUBSTITUTIONS (data, so check needs no rewrite import) agrees with the rewrites."""
    declared = {op: (r.name, r.applicability) for r in all_rewrites() for op in r.ops}
    assert declared == {op: (name, APPLICABILITY[name]) for op, name in SUBSTITUTIONS.items()}


# -- static quantization (QOperator and QDQ formats) ------------------------------------------------

def static_quantized(tmp_path, fmt: str, activation: str = "QInt8", symmetric: bool = False) -> onnx.ModelProto:
    """A Conv -> Relu -> Reshape -> MatMul model through onnxruntime.quantization.quantize_static."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * k).astype(np.float32), n)
             for n, s, k in (("cw", (4, 3, 3, 3), 0.3), ("cb", (4,), 0.3), ("mw", (144, 10), 0.1))]
    inits.append(numpy_helper.from_array(np.array([2, 144], np.int64), "shape"))
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Reshape", ["r", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "mw"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 10])], inits)
    src, dst = tmp_path / "float.onnx", tmp_path / f"static-{fmt}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), src)

    class Data(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": rng.standard_normal((2, 3, 6, 6)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(src), str(dst), Data(), quant_format=QuantFormat[fmt], op_types_to_quantize=["Conv", "MatMul"],
                    per_channel=True, activation_type=QuantType[activation],
                    extra_options={"ActivationSymmetric": symmetric})
    return onnx.load(str(dst))


@pytest.mark.parametrize("fmt", ["QOperator", "QDQ"])
@pytest.mark.parametrize("activation", ["QInt8", "QUInt8"])
@pytest.mark.parametrize("release", ["8.6", "10.15"])
def test_quantize_static_model_is_repaired_and_proven(tmp_path, fmt, activation, release):
    model = static_quantized(tmp_path, fmt, activation)
    before = [f for f in onnxdoctor.check(model, trt=release, config=False).findings if str(f.severity) == "error"]
    assert before and all(f.fix is not None for f in before), [(f.code, f.message) for f in before if f.fix is None]
    result = fix_model(model, FixOptions(trt=release, unsafe=True))
    assert not [f for f in result.after if str(f.severity) == "error"], [(f.code, f.message) for f in result.after]
    assert not {"QLinearConv", "QLinearMatMul"} & _ops(result.model)
    zero_points = [numpy_helper.to_array(t) for t in result.model.graph.initializer if t.data_type in (TensorProto.INT8, TensorProto.UINT8)
                   and any(n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[2] == t.name
                           for n in result.model.graph.node)]
    assert zero_points and not any(np.any(z) for z in zero_points)  # TensorRT's symmetric INT8
    assert "Conv" in _ops(result.model) and "QuantizeLinear" in _ops(result.model)
    assert not [s for s in result.steps if s.status == "rolled-back"], [s.reason for s in result.steps]
    assert result.proof is not None and result.proof.passed, result.proof.summary()
    onnx.checker.check_model(result.model, full_check=True)


def test_static_int8_qdq_needs_only_the_exact_bias_fold(tmp_path):
    """Symmetric INT8 Q/DQ is what TensorRT takes; only the INT32 bias DequantizeLinear (a TRT115
    warning) is folded, exactly, without --unsafe-fixes."""
    model = static_quantized(tmp_path, "QDQ", symmetric=True)
    before = onnxdoctor.check(model, trt="10.15", config=False).findings
    assert {f.fix.rewrite for f in before if f.code == "TRT115"} == {"dequantize-constant-to-float"}
    result = fix_model(model, FixOptions(trt="10.15"))
    assert "dequantize-constant-to-float" in {s.rewrite for s in result.steps if s.status == "applied"}
    assert not [f for f in result.after if f.code == "TRT115"]
    assert result.proof.passed and result.proof.worst().max_abs_diff == 0, result.proof.summary()


QDQ = """
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[2,8] x) => (float[2,8] y) <float s = {{0.05}}, {zp_type} z = {{{zp}}}> {{
      q = QuantizeLinear(x, s, z)
      d = DequantizeLinear(q, s, z)
      y = Relu(d)
    }}"""


@pytest.mark.parametrize(("zp_type", "zp", "shifted"), [("uint8", 128, False), ("uint8", 3, True), ("int8", -7, True)])
def test_qdq_to_symmetric_int8_keeps_the_values(zp_type, zp, shifted):
    model = onnx.parser.parse_model(QDQ.format(zp_type=zp_type, zp=zp))
    outcome = get_rewrite("qdq-to-symmetric-int8").apply(model, RewriteContext(target=Target.make("8.6")))
    assert outcome.changed, outcome.skipped
    result = outcome.model
    onnx.checker.check_model(result, full_check=True)
    assert ("Add" in _ops(result)) == shifted and ("Sub" in _ops(result)) == shifted
    feeds = {"x": np.linspace(-12, 12, 16, dtype=np.float32).reshape(2, 8) + 0.013}  # saturates both ends
    proof = prove.compare(prove.run(model, feeds), prove.run(result, feeds), atol=1e-6, rtol=1e-6)
    assert proof.passed, proof.summary()
    from onnxdoctor.rewrites._gs import cleaned

    # (The old zero point, unused now, goes with the cleanup every fix step ends with.)
    assert not [f for f in onnxdoctor.check(cleaned(result), trt="8.6", config=False).findings if f.code in ("TRT125", "TRT113")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("""<ir_version: 8, opset_import: ["" : 13]>
            g (float[2,8] x) => (int8[2,8] q) <float s = {0.05}, int8 z = {3}> { q = QuantizeLinear(x, s, z) }""",
                     "graph output", id="graph-output"),
        pytest.param("""<ir_version: 8, opset_import: ["" : 13]>
            g (float[2,8] x, float s) => (float[2,8] y) <int8 z = {3}> { q = QuantizeLinear(x, s, z)  y = DequantizeLinear(q, s, z) }""",
                     "not a constant", id="runtime-scale"),
        pytest.param("""<ir_version: 8, opset_import: ["" : 13]>
            g (float[2,8] x) => (float[2,8] y) <float s = {0.05}, float t = {0.1}, int8 z = {3}> {
              q = QuantizeLinear(x, s, z)  y = DequantizeLinear(q, t, z) }""", "other parameters", id="mismatched-reader"),
    ],
)
def test_qdq_to_symmetric_int8_left_alone_with_the_reason(text, reason):
    model = onnx.parser.parse_model(text)
    outcome = get_rewrite("qdq-to-symmetric-int8").apply(model, RewriteContext(target=Target.make("8.6")))
    assert not outcome.changed and outcome.model is model
    assert any(reason in s for s in outcome.skipped), outcome.skipped


def test_qlinear_with_runtime_scale_is_left_alone():
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 13]>
        g (uint8[2,4] a, float s, uint8[4,3] b) => (uint8[2,3] y) <uint8 z = {128}, float t = {0.1}> {
          y = QLinearMatMul(a, s, z, b, t, z, t, z) }""")
    outcome = get_rewrite("qlinear-to-qdq").apply(model, RewriteContext(target=Target.make("8.6")))
    assert not outcome.changed and any("input scale is not a constant" in s for s in outcome.skipped), outcome.skipped


@pytest.mark.parametrize("release", ["8.6", "10.15"])
def test_quantize_dynamic_bert_with_quantized_embeddings(tmp_path, release):
    """quantize_dynamic's defaults also quantize the embedding tables (Gather of UINT8 + a
    DequantizeLinear with a zero point): the lookup is made on the dequantized table, exactly."""
    from pathlib import Path

    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = Path(__file__).resolve().parent.parent / "fixtures/models/real/bert-torchscript-opset14.onnx"
    dst = tmp_path / "bert-quantized.onnx"
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    model = onnx.load(str(dst))
    assert {"MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear"} <= _ops(model)
    result = fix_model(model, FixOptions(trt=release, unsafe=True))
    assert not [f for f in result.after if str(f.severity) == "error"], [(f.code, f.message) for f in result.after]
    applied = {s.rewrite for s in result.steps if s.status == "applied"}
    assert {"dynamic-quantization-to-float", "dequantize-constant-to-float"} <= applied
    assert not ({"MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear"} & _ops(result.model))
    assert result.proof.passed, result.proof.summary()
    onnx.checker.check_model(result.model, full_check=True)


@pytest.mark.parametrize(("k", "n", "block", "symmetric", "bits"), [(64, 48, 16, True, 4), (72, 40, 32, False, 4), (64, 24, 32, False, 8)])
@pytest.mark.parametrize("release", ["8.6", "10.15"])
def test_matmul_nbits_from_onnx_runtimes_quantizer(k, n, block, symmetric, bits, release):
    """MatMulNBitsQuantizer's block-quantized weights (K not a multiple of the block, packed zero
    points, 8-bit) dequantized to the values ONNX Runtime's kernel multiplies by."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    w = (np.random.default_rng(k + n).standard_normal((k, n)) * 0.1).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, n])], [numpy_helper.from_array(w, "w")])
    quantizer = MatMulNBitsQuantizer(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
                                     block_size=block, is_symmetric=symmetric, bits=bits)
    quantizer.process()
    model = quantizer.model.model
    assert _ops(model) == {"MatMulNBits"}
    finding = next(f for f in onnxdoctor.check(model, trt=release, config=False).findings if f.code == "TRT102")
    assert finding.fix.rewrite == "matmul-nbits-to-matmul"
    result = fix_model(model, FixOptions(trt=release, unsafe=True))
    assert _ops(result.model) == {"MatMul"}
    assert not [f for f in result.after if str(f.severity) == "error"]
    assert result.proof.passed and result.proof.worst().max_abs_diff < 1e-5, result.proof.summary()
    onnx.checker.check_model(result.model, full_check=True)


def test_quantize_static_qoperator_cnn_with_contrib_ops(tmp_path):
    """QOperator quantization of a CNN writes QLinearAdd/Mul/Concat/Sigmoid/LeakyRelu/GlobalAveragePool
    and QGemm (com.microsoft) and moves UINT8 codes through Flatten: all of it becomes Q/DQ that
    TensorRT imports."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    rng = np.random.default_rng(1)

    def w(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["a"]),
        helper.make_node("Conv", ["a", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c2"], ["s"]), helper.make_node("Mul", ["s", "a"], ["m"]),
        helper.make_node("Add", ["m", "a"], ["r"]), helper.make_node("Concat", ["r", "a"], ["cat"], axis=1),
        helper.make_node("GlobalAveragePool", ["cat"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("LeakyRelu", ["f"], ["l"], alpha=0.1), helper.make_node("Gemm", ["l", "fw", "fb"], ["y"], transB=1),
    ]
    inits = [w("w1", 8, 3, 3, 3), w("b1", 8), w("w2", 8, 8, 3, 3), w("b2", 8), w("fw", 10, 16), w("fb", 10)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    src, dst = tmp_path / "cnn.onnx", tmp_path / "cnn-q.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), src)

    class Data(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(src), str(dst), Data(), quant_format=QuantFormat.QOperator, activation_type=QuantType.QUInt8)
    model = onnx.load(str(dst))
    contrib = {n.op_type for n in model.graph.node if n.domain == "com.microsoft"}
    assert {"QLinearAdd", "QLinearMul", "QLinearConcat", "QGemm"} <= contrib, contrib
    for release in ("8.6", "10.15"):
        result = fix_model(model, FixOptions(trt=release, unsafe=True))
        assert not [f for f in result.after if str(f.severity) == "error"], [(f.code, f.message) for f in result.after]
        assert not [n for n in result.model.graph.node if n.domain]
        assert result.proof.passed, result.proof.summary()
        onnx.checker.check_model(result.model, full_check=True)


def _all_ops(model):
    return {n.op_type for g in graphs(model.graph) for n in g.node}


def _weight(rng, name, *shape):
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)


def if_of_matmuls() -> onnx.ModelProto:
    """`y = If(c)` whose branches are MatMuls of the outer `x`: the quantizer puts the
    DynamicQuantizeLinear of `x` in the main graph and the MatMulInteger chains in the branches."""
    rng = np.random.default_rng(2)
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 16])]

    def branch(name, w):
        return helper.make_graph([helper.make_node("MatMul", ["x", w], ["y_" + name])], name, [],
                                 [helper.make_tensor_value_info("y_" + name, TensorProto.FLOAT, [2, 16])],
                                 [_weight(rng, w, 8, 16)])

    node = helper.make_node("If", ["c"], ["y"], then_branch=branch("then", "w1"), else_branch=branch("else", "w2"))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8]),
                                            helper.make_tensor_value_info("c", TensorProto.BOOL, [])], out)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def loop_and_if_of_lstms() -> onnx.ModelProto:
    """A Loop whose body multiplies its state by a weight, beside an If whose branches are LSTMs
    (one with a bias, one without): the quantizer writes the MatMulInteger chain inside the Loop
    body and a com.microsoft::DynamicQuantizeLSTM in each branch."""
    rng = np.random.default_rng(3)
    hidden = 4
    body = helper.make_graph(
        [helper.make_node("MatMul", ["s_in", "wl"], ["m"]), helper.make_node("Tanh", ["m"], ["s_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [2, 8])],
        [_weight(rng, "wl", 8, 8)])

    def branch(name, bias):
        weights = [_weight(rng, f"{name}_w", 1, 4 * hidden, 8), _weight(rng, f"{name}_r", 1, 4 * hidden, hidden)]
        if bias:
            weights.append(_weight(rng, f"{name}_b", 1, 8 * hidden))
        nodes = [helper.make_node("Unsqueeze", ["x", "axis0"], [f"{name}_seq"]),
                 helper.make_node("LSTM", [f"{name}_seq", *(t.name for t in weights)], [f"{name}_y"], hidden_size=hidden)]
        return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [1, 1, 2, hidden])], weights)

    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "", "x"], ["s"], body=body),
         helper.make_node("If", ["c"], ["y"], then_branch=branch("then", True), else_branch=branch("else", False))], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, hidden]), helper.make_tensor_value_info("s", TensorProto.FLOAT, [2, 8])],
        [numpy_helper.from_array(np.array(3, np.int64), "trips"), numpy_helper.from_array(np.array([0], np.int64), "axis0")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


BODY_MODELS = {"if-of-matmuls": (if_of_matmuls, {"MatMulInteger", "DynamicQuantizeLinear"}),
               "loop-and-if-of-lstms": (loop_and_if_of_lstms, {"MatMulInteger", "DynamicQuantizeLSTM"})}


@pytest.mark.parametrize("name", list(BODY_MODELS))
@pytest.mark.parametrize("release", ["8.6", "10.15"])
def test_quantize_dynamic_inside_control_flow_bodies(tmp_path, name, release):
    """quantize_dynamic(EnableSubgraph) quantizes inside If/Loop bodies, reading the quantized
    activation from the enclosing graph: the rewrites reach every body, and both branches of the
    If stay within tolerance of the quantized model."""
    from onnxruntime.quantization import quantize_dynamic

    build, made = BODY_MODELS[name]
    src, dst = tmp_path / "float.onnx", tmp_path / "quantized.onnx"
    onnx.save(build(), src)
    quantize_dynamic(str(src), str(dst), extra_options={"EnableSubgraph": True}, op_types_to_quantize=["MatMul", "LSTM"])
    model = onnx.load(str(dst))
    assert made <= _all_ops(model), _all_ops(model)
    assert not made & {n.op_type for n in model.graph.node if n.op_type != "DynamicQuantizeLinear"}, "nothing quantized in a body"
    # The model exactly as quantize_dynamic writes it: DynamicQuantizeLSTM in the branches without
    # the com.microsoft opset import, which onnx.checker refuses (ONNX Runtime runs it). fix must not
    # blame the rewrites for a problem the model already had.

    result = fix_model(model, FixOptions(trt=release, unsafe=True))

    assert not (_all_ops(result.model) & QUANT_OPS), _all_ops(result.model)
    assert not [f for f in result.after if str(f.severity) == "error"], [(f.code, f.message) for f in result.after]
    assert not [s for s in result.steps if s.status == "rolled-back"], [(s.rewrite, s.reason) for s in result.steps]
    assert result.proof.passed, result.proof.summary()
    onnx.checker.check_model(result.model, full_check=True)
    x = np.random.default_rng(7).standard_normal((2, 8)).astype(np.float32)
    for c in (True, False):  # the proof ran one branch; both are rewritten
        feeds = {"x": x, "c": np.array(c)}
        ref, got = prove.run(model, feeds), prove.run(result.model, feeds)
        for out, value in ref.items():
            assert np.abs(value - got[out]).max() <= result.tolerance[0] + result.tolerance[1] * np.abs(value).max(), (c, out)


def test_a_quantized_activation_a_body_still_reads_is_kept():
    """A DynamicQuantizeLinear read by a chain it replaces and by an If branch whose chain it
    cannot replace (a weight computed at run time) stays for the branch."""
    rng = np.random.default_rng(4)
    scale = numpy_helper.from_array(np.array(0.01, np.float32), "ws")

    def chain(prefix, weight, out):
        return [helper.make_node("Mul", ["xs", "ws"], [f"{prefix}_s"]),
                helper.make_node("MatMulInteger", ["xq", weight, "xz"], [f"{prefix}_acc"]),
                helper.make_node("Cast", [f"{prefix}_acc"], [f"{prefix}_f"], to=TensorProto.FLOAT),
                helper.make_node("Mul", [f"{prefix}_f", f"{prefix}_s"], [out])]

    wq = numpy_helper.from_array(rng.integers(-100, 100, (8, 4)).astype(np.int8), "wq")
    then = helper.make_graph([helper.make_node("Cast", ["wi"], ["w_run"], to=TensorProto.INT8), *chain("t", "w_run", "yt")],
                             "then", [], [helper.make_tensor_value_info("yt", TensorProto.FLOAT, [2, 4])])
    other = helper.make_graph(chain("e", "wq", "ye"), "else", [], [helper.make_tensor_value_info("ye", TensorProto.FLOAT, [2, 4])])
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]), *chain("m", "wq", "ym"),
             helper.make_node("If", ["c"], ["yb"], then_branch=then, else_branch=other)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8]),
                                           helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                                           helper.make_tensor_value_info("wi", TensorProto.INT32, [8, 4])],
                              [helper.make_tensor_value_info("ym", TensorProto.FLOAT, [2, 4]),
                               helper.make_tensor_value_info("yb", TensorProto.FLOAT, [2, 4])], [wq, scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)

    outcome = get_rewrite("dynamic-quantization-to-float").apply(model, RewriteContext(target=Target.make("10.15")))

    assert len(outcome.changes) == 2, outcome.changes  # the main graph's chain and the else branch's
    assert any("the weight is not a constant" in s for s in outcome.skipped), outcome.skipped
    assert [n.op_type for n in outcome.model.graph.node] == ["DynamicQuantizeLinear", "MatMul", "If"]
    onnx.checker.check_model(outcome.model, full_check=True)
    feeds = {"x": rng.standard_normal((2, 8)).astype(np.float32),
             "wi": rng.integers(-100, 100, (8, 4)).astype(np.int32)}
    for c in (True, False):
        ref = prove.run(model, {**feeds, "c": np.array(c)})
        got = prove.run(outcome.model, {**feeds, "c": np.array(c)})
        if c:
            assert np.array_equal(ref["yb"], got["yb"])  # the branch left alone computes what it did
        for out in ("ym", "yb"):
            assert np.abs(ref[out] - got[out]).max() <= 0.05 * np.abs(ref[out]).max(), (c, out)


_MS_OPSET = '<ir_version: 8, opset_import: ["" : 17, "com.microsoft" : 1]>'


@pytest.mark.parametrize(
    ("rewrite", "text", "reason"),
    [
        pytest.param("dynamic-quantize-matmul-to-matmul", """
            g (float[2,4] a, int8[4,3] w) => (float[2,3] y) <float s = {0.1}, int8 z = {0}> {
              y = com.microsoft.DynamicQuantizeMatMul(a, w, s, z) }""", "weight is not a constant", id="matmul-runtime-weight"),
        pytest.param("dynamic-quantization-to-float", """
            g (uint8[2,4] a, float s) => (float[2,3] y) <int8[12] w = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, float t = {0.1}> {
              w2 = Reshape(w, shape)  shape = Constant<value = int64[2] {4, 3}>()
              y = com.microsoft.MatMulIntegerToFloat(a, w2, s, t) }""", "does not come from DynamicQuantizeLinear",
                     id="integer-to-float-static-input"),
        pytest.param("matmul-nbits-to-matmul", """
            g (float[2,8] a, uint8[4,1,8] b, float[4] s, int32[8] gi) => (float[2,4] y) {
              y = com.microsoft.MatMulNBits<K = 8, N = 4, bits = 4, block_size = 16>(a, b, s, , gi) }""", "g_idx",
                     id="nbits-act-order"),
        pytest.param("qlinear-contrib-to-qdq", """
            g (uint8[1,4,4,2] x) => (uint8[1,2,2,2] y) <float s = {0.1}, uint8 z = {128}> {
              y = com.microsoft.QLinearAveragePool<kernel_shape = [2, 2], strides = [2, 2], channels_last = 1>(x, s, z, s, z) }""",
                     "channels-last", id="contrib-channels-last-pool"),
        pytest.param("qlinear-contrib-to-qdq", """
            g (uint8[2,4] a, int8[3,4] b, float bs) => (float[2,3] y) <float s = {0.1}, uint8 z = {128}> {
              y = com.microsoft.QGemm<transB = 1>(a, s, z, b, bs, ) }""", "weight scale is not a constant",
                     id="qgemm-runtime-scale"),
        pytest.param("dequantize-constant-to-float", """
            g (float[4] x) => (float[4] y) <int8[4] w = {1, -2, 3, -4}, float s = {0.1}> {
              d = DequantizeLinear(w, s)  y = Add(x, d) }""", "TensorRT 10.15 imports it", id="int8-symmetric-weight"),
        pytest.param("dequantize-constant-to-float", """
            g (uint8[4] q) => (float[4] y) <float s = {0.1}, uint8 z = {128}> { y = DequantizeLinear(q, s, z) }""",
                     "not a constant", id="runtime-data"),
    ],
)
def test_quantization_rewrites_leave_alone_what_they_cannot_replace(rewrite, text, reason):
    model = onnx.parser.parse_model(_MS_OPSET + text)
    outcome = get_rewrite(rewrite).apply(model, RewriteContext(target=Target.make("10.15")))
    assert not outcome.changed
    assert any(reason in s for s in outcome.skipped), outcome.skipped


def test_qdq_to_symmetric_int8_inside_an_if_branch():
    """An asymmetric Q/DQ pair inside a branch, its scale and zero point in the main graph."""
    then = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                              helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
                              helper.make_node("Relu", ["d"], ["yt"])], "then", [],
                             [helper.make_tensor_value_info("yt", TensorProto.FLOAT, [2, 8])])
    other = helper.make_graph([helper.make_node("Relu", ["x"], ["ye"])], "else", [],
                              [helper.make_tensor_value_info("ye", TensorProto.FLOAT, [2, 8])])
    graph = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8]),
                               helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
                              [numpy_helper.from_array(np.array(0.05, np.float32), "s"), numpy_helper.from_array(np.array(3, np.int8), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    outcome = get_rewrite("qdq-to-symmetric-int8").apply(model, RewriteContext(target=Target.make("10.15")))
    assert len(outcome.changes) == 1, (outcome.changes, outcome.skipped)
    onnx.checker.check_model(outcome.model, full_check=True)
    branch = outcome.model.graph.node[0].attribute[0].g if outcome.model.graph.node[0].attribute[0].name == "then_branch" \
        else outcome.model.graph.node[0].attribute[1].g
    assert [n.op_type for n in branch.node] == ["Add", "QuantizeLinear", "DequantizeLinear", "Sub", "Relu"]
    feeds = {"x": np.linspace(-12, 12, 16, dtype=np.float32).reshape(2, 8) + 0.013, "c": np.array(True)}
    proof = prove.compare(prove.run(model, feeds), prove.run(outcome.model, feeds), atol=1e-6, rtol=1e-6)
    assert proof.passed, proof.summary()
