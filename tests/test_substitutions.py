"""Op substitutions (rewrites/substitutions): each one removes its op, passes the full ONNX check,
gives ONNX Runtime's outputs of the original within 1e-5, uses only ops every release from 8.6
imports, and makes the TRT101/TRT102 finding that named it disappear — on every release where the
op is missing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnx.parser
import pytest

import onnxdoctor
from onnxdoctor import prove
from onnxdoctor.rewrites import RewriteContext, all_rewrites, get_rewrite
from onnxdoctor.rewrites.substitutions import REWRITES
from onnxdoctor.rule_fixes import SUBSTITUTIONS, substitution_for
from onnxdoctor.target import Target

ROOT = Path(__file__).resolve().parent.parent
MS = "com.microsoft"


def H(opset: int, ms: bool = False) -> str:
    extra = f', "{MS}" : 1' if ms else ""
    return f'<ir_version: {10 if opset >= 21 else 8}, opset_import: ["" : {opset}{extra}]>\n'


@dataclass
class Case:
    id: str
    rewrite: str
    op: tuple[str, str]  # (domain, op_type) that must disappear
    text: str
    releases: tuple[str, ...]
    code: str = "TRT101"
    # Reference outputs when ONNX Runtime has no CPU kernel for the original op.
    reference: Callable[[dict], dict] | None = None
    feeds: Callable[[onnx.ModelProto], dict] | None = None
    extra_ops: set = field(default_factory=set)


def _gelu(x):
    from math import erf, sqrt

    return 0.5 * x * (1 + np.vectorize(erf)(x / sqrt(2)))


CASES = [
    Case("hardmax-13", "hardmax-to-argmax-onehot", ("", "Hardmax"),
         H(13) + "g (float[2,5] x) => (float[2,5] y) { y = Hardmax<axis = 1>(x) }", ("8.6", "9.0", "9.1")),
    Case("hardmax-13-default-axis-3d", "hardmax-to-argmax-onehot", ("", "Hardmax"),
         H(13) + "g (float[2,3,4] x) => (float[2,3,4] y) { y = Hardmax(x) }", ("8.6",)),
    Case("hardmax-11-coerced-2d", "hardmax-to-argmax-onehot", ("", "Hardmax"),
         H(11) + "g (float[2,3,4] x) => (float[2,3,4] y) { y = Hardmax<axis = 1>(x) }", ("8.6", "9.1")),
    Case("castlike-f16", "castlike-to-cast", ("", "CastLike"),
         H(15) + "g (float[2,3] x, float16[1] f) => (float16[2,3] y) { y = CastLike(x, f) }", ("8.6", "9.0")),
    Case("castlike-19-int", "castlike-to-cast", ("", "CastLike"),
         H(19) + "g (float[2,3] x, int32[1] f) => (int32[2,3] y) { y = CastLike(x, f) }", ("9.0",)),
    Case("gelu-erf", "gelu-to-erf", ("", "Gelu"),
         H(20) + "g (float[2,8] x) => (float[2,8] y) { y = Gelu(x) }", ("8.6", "9.3")),
    Case("gelu-tanh", "gelu-to-erf", ("", "Gelu"),
         H(20) + 'g (float[2,8] x) => (float[2,8] y) { y = Gelu<approximate = "tanh">(x) }', ("8.6", "9.3")),
    Case("mish", "mish-to-softplus-tanh", ("", "Mish"),
         H(18) + "g (float[2,8] x) => (float[2,8] y) { y = Mish(x) }", ("8.6", "9.3")),
    Case("swish-alpha", "swish-to-sigmoid-mul", ("", "Swish"),
         H(24) + "g (float[2,8] x) => (float[2,8] y) { y = Swish<alpha = 1.5>(x) }", ("10.14", "10.16")),
    Case("swish-default", "swish-to-sigmoid-mul", ("", "Swish"),
         H(24) + "g (float[2,8] x) => (float[2,8] y) { y = Swish(x) }", ("10.16",)),
    Case("rms-norm-last", "rms-normalization-to-reductions", ("", "RMSNormalization"),
         H(23) + "g (float[2,3,8] x, float[8] s) => (float[2,3,8] y) { y = RMSNormalization<epsilon = 1e-6>(x, s) }",
         ("10.14",)),
    Case("rms-norm-axis1", "rms-normalization-to-reductions", ("", "RMSNormalization"),
         H(23) + "g (float[2,3,8] x, float[3,8] s) => (float[2,3,8] y) { y = RMSNormalization<axis = 1>(x, s) }",
         ("10.14",)),
    Case("ort-simplified-layer-norm", "simplified-layer-norm-to-reductions", ("", "SimplifiedLayerNormalization"),
         H(17) + "g (float[2,3,8] x, float[8] s) => (float[2,3,8] y) { y = SimplifiedLayerNormalization<epsilon = 1e-6>(x, s) }",
         ("8.6", "10.16", "11.1")),
    Case("compress-axis", "compress-to-gather-nonzero", ("", "Compress"),
         H(13) + "g (float[4,5] x, bool[5] c) => (float[4,?] y) { y = Compress<axis = 1>(x, c) }", ("8.6", "10.16", "11.1")),
    Case("compress-flat", "compress-to-gather-nonzero", ("", "Compress"),
         H(11) + "g (float[4,5] x, bool[20] c) => (float[?] y) { y = Compress(x, c) }", ("8.6",)),
    Case("bitwise-and-int32", "bitwise-and-to-arithmetic", ("", "BitwiseAnd"),
         H(18) + "g (int32[6] a, int32[6] b) => (int32[6] y) { y = BitwiseAnd(a, b) }", ("8.6", "10.15")),
    Case("bitwise-or-int8", "bitwise-or-to-arithmetic", ("", "BitwiseOr"),
         H(18) + "g (int8[6] a, int8[6] b) => (int8[6] y) { y = BitwiseOr(a, b) }",
         ("10.15",)),
    Case("bitwise-xor-uint16", "bitwise-xor-to-arithmetic", ("", "BitwiseXor"),
         H(18) + "g (uint16[6] a, uint16[6] b) => (uint16[6] y) { y = BitwiseXor(a, b) }",
         ("10.15",)),
    Case("bitwise-not-int32", "bitwise-not-to-sub", ("", "BitwiseNot"),
         H(18) + "g (int32[6] a) => (int32[6] y) { y = BitwiseNot(a) }", ("8.6", "10.15")),
    Case("bit-shift-left-uint8", "bit-shift-to-arithmetic", ("", "BitShift"),
         H(11) + 'g (uint8[6] a, uint8[6] s) => (uint8[6] y) { y = BitShift<direction = "LEFT">(a, s) }', ("8.6", "10.15")),
    Case("bit-shift-right-uint16", "bit-shift-to-arithmetic", ("", "BitShift"),
         H(11) + 'g (uint16[6] a, uint16[6] s) => (uint16[6] y) { y = BitShift<direction = "RIGHT">(a, s) }',
         ("10.15",)),
    Case("fused-matmul-plain", "fused-matmul-to-matmul", (MS, "FusedMatMul"),
         H(17, True) + f"g (float[2,4] a, float[4,3] b) => (float[2,3] y) {{ y = {MS}.FusedMatMul(a, b) }}",
         ("8.6", "10.15"), code="TRT102"),
    Case("fused-matmul-alpha-transB", "fused-matmul-to-matmul", (MS, "FusedMatMul"),
         H(17, True) + f"g (float[2,3,5,4] a, float[2,3,6,4] b) => (float[2,3,5,6] y) {{ y = {MS}.FusedMatMul<alpha = 0.125, transB = 1>(a, b) }}",
         ("8.6", "10.15"), code="TRT102"),
    Case("fused-matmul-transA", "fused-matmul-to-matmul", (MS, "FusedMatMul"),
         H(13, True) + f"g (float[4,2] a, float[4,3] b) => (float[2,3] y) {{ y = {MS}.FusedMatMul<transA = 1>(a, b) }}",
         ("10.15",), code="TRT102"),
    Case("fused-matmul-transBatch", "fused-matmul-to-matmul", (MS, "FusedMatMul"),
         H(17, True) + f"g (float[3,2,4] a, float[5,2,4] b) => (float[2,3,5] y) {{ y = {MS}.FusedMatMul<transBatchA = 1, transBatchB = 1, transB = 1>(a, b) }}",
         ("10.15",), code="TRT102"),
    Case("fused-matmul-transBatchA-transA", "fused-matmul-to-matmul", (MS, "FusedMatMul"),
         H(17, True) + f"g (float[4,2,3] a, float[2,4,5] b) => (float[2,3,5] y) {{ y = {MS}.FusedMatMul<transBatchA = 1, transA = 1>(a, b) }}",
         ("10.15",), code="TRT102"),
    Case("contrib-gelu", "contrib-gelu-to-erf", (MS, "Gelu"),
         H(17, True) + f"g (float[2,8] x) => (float[2,8] y) {{ y = {MS}.Gelu(x) }}", ("8.6", "9.3"), code="TRT102"),
    Case("contrib-gelu-warning-10", "contrib-gelu-to-erf", (MS, "Gelu"),
         H(17, True) + f"g (float[2,8] x) => (float[2,8] y) {{ y = {MS}.Gelu(x) }}", ("10.15",), code="TRT102"),
    Case("bias-gelu", "bias-gelu-to-add-erf", (MS, "BiasGelu"),
         H(17, True) + f"g (float[2,3,8] x, float[8] b) => (float[2,3,8] y) {{ y = {MS}.BiasGelu(x, b) }}",
         ("8.6", "10.15", "11.1"), code="TRT102"),
    Case("fast-gelu", "fast-gelu-to-tanh", (MS, "FastGelu"),
         H(17, True) + f"g (float[2,3,8] x) => (float[2,3,8] y) {{ y = {MS}.FastGelu(x) }}", ("8.6", "10.15"), code="TRT102"),
    Case("fast-gelu-bias", "fast-gelu-to-tanh", (MS, "FastGelu"),
         H(17, True) + f"g (float[2,3,8] x, float[8] b) => (float[2,3,8] y) {{ y = {MS}.FastGelu(x, b) }}",
         ("10.15",), code="TRT102"),
    Case("quick-gelu", "quick-gelu-to-sigmoid-mul", (MS, "QuickGelu"),
         H(17, True) + f"g (float[2,8] x) => (float[2,8] y) {{ y = {MS}.QuickGelu(x) }}", ("8.6", "10.15"), code="TRT102"),
    Case("quick-gelu-alpha", "quick-gelu-to-sigmoid-mul", (MS, "QuickGelu"),
         H(17, True) + f"g (float[2,8] x) => (float[2,8] y) {{ y = {MS}.QuickGelu<alpha = 1.0>(x) }}", ("10.15",), code="TRT102"),
    # ONNX Runtime has no CPU kernel for BiasAdd: the reference is its definition.
    Case("bias-add", "bias-add-to-add", (MS, "BiasAdd"),
         H(17, True) + f"g (float[2,4,8] x, float[8] b, float[2,4,8] s) => (float[2,4,8] y) {{ y = {MS}.BiasAdd(x, b, s) }}",
         ("8.6", "10.15"), code="TRT102", reference=lambda f: {"y": f["x"] + f["b"] + f["s"]}),
    Case("skip-layer-norm", "skip-layer-norm-to-add-layer-norm", (MS, "SkipLayerNormalization"),
         H(17, True) + f"g (float[2,3,8] x, float[2,3,8] s, float[8] w, float[8] b) => (float[2,3,8] y) "
         f"{{ y = {MS}.SkipLayerNormalization<epsilon = 1e-5>(x, s, w, b) }}", ("8.6", "10.15"), code="TRT102"),
    Case("skip-layer-norm-bias-sum", "skip-layer-norm-to-add-layer-norm", (MS, "SkipLayerNormalization"),
         H(17, True) + f"g (float[2,3,8] x, float[2,3,8] s, float[8] w, float[8] b, float[8] bias) => (float[2,3,8] y, float[2,3,8] sum) "
         f"{{ y, m, v, sum = {MS}.SkipLayerNormalization<epsilon = 1e-5>(x, s, w, b, bias) }}", ("10.15",), code="TRT102"),
    Case("skip-layer-norm-opset13", "skip-layer-norm-to-add-layer-norm", (MS, "SkipLayerNormalization"),
         H(13, True) + f"g (float[2,3,8] x, float[2,3,8] s, float[8] w, float[8] b) => (float[2,3,8] y) "
         f"{{ y = {MS}.SkipLayerNormalization<epsilon = 1e-5>(x, s, w, b) }}", ("8.6",), code="TRT102"),
    Case("skip-layer-norm-no-beta", "skip-layer-norm-to-add-layer-norm", (MS, "SkipLayerNormalization"),
         H(13, True) + f"g (float[2,3,8] x, float[2,3,8] s, float[8] w) => (float[2,3,8] y) "
         f"{{ y = {MS}.SkipLayerNormalization<epsilon = 1e-5>(x, s, w) }}", ("8.6",), code="TRT102"),
    Case("skip-simplified-layer-norm", "skip-simplified-layer-norm-to-add-rms", (MS, "SkipSimplifiedLayerNormalization"),
         H(17, True) + f"g (float[2,3,8] x, float[2,3,8] s, float[8] w) => (float[2,3,8] y) "
         f"{{ y = {MS}.SkipSimplifiedLayerNormalization<epsilon = 1e-6>(x, s, w) }}", ("8.6", "10.15"), code="TRT102"),
    Case("skip-simplified-layer-norm-bias-sum", "skip-simplified-layer-norm-to-add-rms", (MS, "SkipSimplifiedLayerNormalization"),
         H(18, True) + f"g (float[2,3,8] x, float[2,3,8] s, float[8] w, float[8] bias) => (float[2,3,8] y, float[2,3,8] sum) "
         f"{{ y, m, v, sum = {MS}.SkipSimplifiedLayerNormalization<epsilon = 1e-6>(x, s, w, bias) }}", ("10.15",), code="TRT102"),
    Case("fused-conv-relu", "fused-conv-to-conv-activation", (MS, "FusedConv"),
         H(17, True) + f"g (float[1,2,5,5] x, float[3,2,3,3] w, float[3] b) => (float[1,3,3,3] y) "
         f'{{ y = {MS}.FusedConv<activation = "Relu">(x, w, b) }}', ("8.6", "10.15"), code="TRT102"),
    Case("fused-conv-leaky-z", "fused-conv-to-conv-activation", (MS, "FusedConv"),
         H(17, True) + f"g (float[1,2,5,5] x, float[3,2,3,3] w, float[3] b, float[1,3,5,5] z) => (float[1,3,5,5] y) "
         f'{{ y = {MS}.FusedConv<activation = "LeakyRelu", activation_params = [0.2], pads = [1, 1, 1, 1]>(x, w, b, z) }}',
         ("10.15",), code="TRT102"),
    Case("fused-conv-clip", "fused-conv-to-conv-activation", (MS, "FusedConv"),
         H(17, True) + f"g (float[1,2,5,5] x, float[3,2,3,3] w) => (float[1,3,2,2] y) "
         f'{{ y = {MS}.FusedConv<activation = "Clip", activation_params = [-0.5, 0.5], strides = [2, 2]>(x, w) }}',
         ("10.15",), code="TRT102"),
    Case("fused-conv-hardsigmoid", "fused-conv-to-conv-activation", (MS, "FusedConv"),
         H(17, True) + f"g (float[1,2,5,5] x, float[3,2,3,3] w, float[3] b) => (float[1,3,3,3] y) "
         f'{{ y = {MS}.FusedConv<activation = "HardSigmoid", activation_params = [0.3, 0.4]>(x, w, b) }}',
         ("10.15",), code="TRT102"),
    Case("contrib-attention", "contrib-attention-to-matmul-softmax", (MS, "Attention"),
         H(17, True) + f"g (float[2,4,16] x, float[16,48] w, float[48] b) => (float[2,4,16] y) "
         f"{{ y = {MS}.Attention<num_heads = 2>(x, w, b) }}", ("8.6", "10.13", "10.15"), code="TRT102"),
    Case("contrib-attention-raw-mask", "contrib-attention-to-matmul-softmax", (MS, "Attention"),
         H(17, True) + f"g (float[2,4,16] x, float[16,48] w, float[48] b) => (float[2,4,16] y) "
         f"<int32[2,4] m = {{1, 1, 1, 0, 1, 1, 0, 0}}> {{ y = {MS}.Attention<num_heads = 4>(x, w, b, m) }}", ("10.15",), code="TRT102"),
    Case("contrib-attention-mask-index", "contrib-attention-to-matmul-softmax", (MS, "Attention"),
         H(17, True) + f"g (float[2,4,16] x, float[16,48] w, float[48] b) => (float[2,4,16] y) "
         f"<int32[2] m = {{3, 2}}> {{ y = {MS}.Attention<num_heads = 2>(x, w, b, m) }}", ("10.15",), code="TRT102"),
    Case("contrib-attention-causal-scale-sizes", "contrib-attention-to-matmul-softmax", (MS, "Attention"),
         H(17, True) + f"g (float[1,5,8] x, float[8,40] w, float[40] b) => (float[1,5,24] y) "
         f"{{ y = {MS}.Attention<num_heads = 2, unidirectional = 1, scale = 0.2, qkv_hidden_sizes = [8, 8, 24]>(x, w, b) }}",
         ("10.15",), code="TRT102"),
    Case("contrib-attention-bias", "contrib-attention-to-matmul-softmax", (MS, "Attention"),
         H(17, True) + f"g (float[1,4,16] x, float[16,48] w, float[48] b, float[1,2,4,4] ab) => (float[1,4,16] y) "
         f"{{ y = {MS}.Attention<num_heads = 2>(x, w, b, , , ab) }}", ("10.15",), code="TRT102"),
    Case("fused-gemm-leaky", "fused-gemm-to-gemm-activation", (MS, "FusedGemm"),
         H(17, True) + f"g (float[2,4] a, float[3,4] w, float[3] c) => (float[2,3] y) "
         f'{{ y = {MS}.FusedGemm<activation = "LeakyRelu", activation_alpha = 0.1, transB = 1, alpha = 0.5, beta = 2.0>(a, w, c) }}',
         ("8.6", "10.15"), code="TRT102"),
    Case("fused-gemm-relu", "fused-gemm-to-gemm-activation", (MS, "FusedGemm"),
         H(17, True) + f"g (float[2,4] a, float[4,3] w) => (float[2,3] y) "
         f'{{ y = {MS}.FusedGemm<activation = "Relu">(a, w) }}', ("10.15",), code="TRT102"),
]


def _ops(model: onnx.ModelProto) -> list[tuple[str, str]]:
    return [("" if n.domain == "ai.onnx" else n.domain, n.op_type) for n in model.graph.node]


def _findings(model: onnx.ModelProto, release: str, code: str) -> list:
    report = onnxdoctor.check(model, trt=release, config=False)
    return [f for m in report.models for f in m.findings if f.code == code]


def _apply(case: Case, release: str):
    model = onnx.parser.parse_model(case.text)
    rewrite = get_rewrite(case.rewrite)
    return model, rewrite.apply(model, RewriteContext(target=Target.make(release)))


def _params():
    for case in CASES:
        for release in case.releases:
            yield pytest.param(case, release, id=f"{case.id}-on-{release}")


@pytest.mark.parametrize(("case", "release"), list(_params()))
def test_substitution(case: Case, release: str):
    model, outcome = _apply(case, release)
    result = outcome.model

    # The finding names this rewrite on this release, and the op is there before.
    before = [f for f in _findings(model, release, case.code) if f.location.op_type == case.op[1]]
    assert before, f"{case.code} does not report {case.op} on {release}"
    assert {f.fix.rewrite for f in before if f.fix} == {case.rewrite}
    assert case.op in _ops(model)

    # The op is gone, the result is valid ONNX, graph outputs keep their names.
    assert outcome.changed, outcome.skipped
    assert case.op not in _ops(result), _ops(result)
    onnx.checker.check_model(result, full_check=True)
    assert [o.name for o in result.graph.output] == [o.name for o in model.graph.output]
    names = [n.name for n in result.graph.node]
    assert len(names) == len(set(names))

    # Every op it emits is imported by every release from 8.6 (that is the point of substituting).
    kb = Target.make(release).kb
    emitted = {op for dom, op in _ops(result)}
    for v in kb.versions:
        missing = emitted - set(kb.release(v).ops)
        assert not missing, f"{case.rewrite} emits {missing}, which TensorRT {v} cannot import"

    # Same outputs in ONNX Runtime on random inputs.
    feeds = prove.generate_inputs(model, seed=7)
    feeds = {k: (v * 2 if v.dtype.kind == "f" else v) for k, v in feeds.items()}
    reference = case.reference(feeds) if case.reference else prove.run(model, feeds)
    got = prove.run(result, feeds)
    proof = prove.compare(reference, got, atol=1e-5, rtol=1e-5)
    assert proof.passed, proof.summary()

    # Re-checked, the finding is gone.
    after = [f for f in _findings(result, release, case.code) if f.location.op_type == case.op[1]]
    assert not after, [f.message for f in after]


def test_at_least_twelve_substitutions_each_named_by_a_finding():
    assert len(REWRITES) >= 12
    names = {r.name for r in all_rewrites()}
    by_finding = [cls for cls in REWRITES if cls.resolves != ("TRT126",)]
    assert len(by_finding) >= 12
    for cls in by_finding:
        assert cls.name in names
        assert cls.phase == 30
        assert SUBSTITUTIONS[(cls.domain, cls.op_type)] == cls.name
        # A substitution may also resolve a constraint finding on its op (TRT126: hardmax-to-argmax-onehot
        # for a dynamic axis dimension); its first code is the missing-importer one.
        assert set(cls.resolves) <= {"TRT101", "TRT102", "TRT126"}
        assert cls.resolves[0] == ("TRT102" if cls.domain else "TRT101")
    assert substitution_for("TRT101", "Hardmax", "ai.onnx").rewrite == "hardmax-to-argmax-onehot"
    assert substitution_for("TRT101", "Relu", "") is None
    assert substitution_for("TRT102", "Gelu", "com.example") is None


def test_every_substitution_is_tested():
    assert {c.rewrite for c in CASES} | {"einsum-lowercase-labels"} == {cls.name for cls in REWRITES}


@pytest.mark.parametrize("release", ["9.1", "9.3", "10.15", "11.1"])
def test_einsum_uppercase_labels_are_relabelled(release):
    model = onnx.parser.parse_model(
        H(13) + 'g (float[2,3,5,4] q, float[2,3,6,4] k) => (float[2,3,5,6] y) { y = Einsum<equation = "BHQD,BHKD->BHQK">(q, k) }'
    )
    def labels(m):
        return [f for f in _findings(m, release, "TRT126") if "Einsum" in f.message and "character" in f.message]
    assert labels(model)
    out = get_rewrite("einsum-lowercase-labels").apply(model, RewriteContext(target=Target.make(release))).model
    eq = onnx.helper.get_attribute_value(out.graph.node[0].attribute[0]).decode()
    assert eq == "abcd,abed->abce"
    onnx.checker.check_model(out, full_check=True)
    assert not labels(out)
    feeds = prove.generate_inputs(model, seed=3)
    assert prove.compare(prove.run(model, feeds), prove.run(out, feeds), 1e-5, 1e-5).passed
    assert substitution_for("TRT101", "Einsum", "") is None  # TRT101 never reports Einsum


def test_standard_ops_substituted_are_missing_somewhere():
    """Derived from the knowledge base: a TRT101 substitution is for an op some release lacks."""
    kb = Target.make("10.15").kb
    for cls in REWRITES:
        if cls.resolves != ("TRT101",):
            continue
        lacking = [v for v in kb.versions if cls.op_type not in kb.release(v).ops]
        assert lacking, f"{cls.op_type} is imported by every release; {cls.name} is never needed"


def test_versions_where_the_op_is_supported_get_no_fix():
    model = onnx.parser.parse_model(H(13) + "g (float[2,5] x) => (float[2,5] y) { y = Hardmax<axis = 1>(x) }")
    assert _findings(model, "9.2", "TRT101") == []
    assert _findings(model, "9.1", "TRT101")[0].fix.rewrite == "hardmax-to-argmax-onehot"


def test_contrib_gelu_becomes_onnx_gelu_when_the_target_imports_it():
    model = onnx.parser.parse_model(H(20, True) + f"g (float[2,8] x) => (float[2,8] y) {{ y = {MS}.Gelu(x) }}")
    new = get_rewrite("contrib-gelu-to-erf").apply(model, RewriteContext(target=Target.make("10.15"))).model
    assert _ops(new) == [("", "Gelu")]
    old = get_rewrite("contrib-gelu-to-erf").apply(model, RewriteContext(target=Target.make("9.3"))).model
    assert ("", "Erf") in _ops(old) and ("", "Gelu") not in _ops(old)


def test_constants_are_shared_not_duplicated():
    model = onnx.parser.parse_model(
        H(17, True) + f"g (float[2,8] x) => (float[2,8] y) {{ a = {MS}.Gelu(x) \n y = {MS}.Gelu(a) }}"
    )
    out = get_rewrite("contrib-gelu-to-erf").apply(model, RewriteContext(target=Target.make("8.6"))).model
    assert len(out.graph.initializer) == 3  # 1/sqrt(2), 1, 0.5 once each
    assert not _findings(out, "8.6", "GRF404")


def test_substitution_inside_a_subgraph():
    model = onnx.parser.parse_model(H(13) + """
        g (bool c, float[2,5] x) => (float[2,5] y) {
            y = If(c) <
                then_branch = t () => (float[2,5] a) { a = Hardmax<axis = 1>(x) },
                else_branch = e () => (float[2,5] b) { b = Identity(x) }
            >
        }""")
    out = get_rewrite("hardmax-to-argmax-onehot").apply(model, RewriteContext(target=Target.make("8.6"))).model
    then = out.graph.node[0].attribute[0].g if out.graph.node[0].attribute[0].name == "then_branch" else out.graph.node[0].attribute[1].g
    assert "Hardmax" not in [n.op_type for n in then.node]
    onnx.checker.check_model(out, full_check=True)
    feeds = {"c": np.array(True), "x": np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)}
    assert prove.compare(prove.run(model, feeds), prove.run(out, feeds), 0, 0).passed


@pytest.mark.parametrize(
    ("rewrite", "text", "reason"),
    [
        pytest.param("hardmax-to-argmax-onehot", H(10) + "g (float[2,3,N] x) => (float[2,3,N] y) { y = Hardmax<axis = 1>(x) }",
                     "CumSum opset 11", id="hardmax-10-dynamic-tail"),
        pytest.param("castlike-to-cast", H(15) + "g (float[2,3] x) => (float[2,3] y) { f = Identity(x) \n y = CastLike(x, z) }",
                     "unknown", id="castlike-unknown-type"),
        pytest.param("skip-layer-norm-to-add-layer-norm",
                     H(17, True) + f"g (float[2,3,8] x, float[2,3,8] s, float[8] w) => (float[2,3,8] y, float[2,3,1] m) "
                     f"{{ y, m = {MS}.SkipLayerNormalization(x, s, w) }}", "mean / inv_std_var", id="skip-layer-norm-mean-used"),
        pytest.param("fused-matmul-to-matmul",
                     H(17, True) + f"g (float[2,4] a, b) => (float[2,3] y) {{ y = {MS}.FusedMatMul<transB = 1>(a, b) }}",
                     "rank is unknown", id="fused-matmul-unknown-rank"),
        pytest.param("fused-gemm-to-gemm-activation",
                     H(17, True) + f"g (float[2,4] a, float[4,3] w) => (float[2,3] y) "
                     f'{{ y = {MS}.FusedGemm<activation = "Gelu">(a, w) }}', "no exact ONNX equivalent", id="fused-gemm-unknown-activation"),
        pytest.param("contrib-attention-to-matmul-softmax",
                     H(17, True) + f"g (float[1,1,16] x, float[16,48] w, float[48] b, float[2,1,2,3,8] past) => (float[1,1,16] y, float[2,1,2,4,8] present) "
                     f"{{ y, present = {MS}.Attention<num_heads = 2>(x, w, b, , past) }}", "past/present", id="contrib-attention-kv-cache"),
        pytest.param("rms-normalization-to-reductions",
                     H(23) + "g (x, float[8] s) => (y) { y = RMSNormalization<axis = 1>(x, s) }",
                     "rank is unknown", id="rms-norm-axis-unknown-rank"),
    ],
)
def test_skips_with_a_reason(rewrite, text, reason):
    model = onnx.parser.parse_model(text)
    outcome = get_rewrite(rewrite).apply(model, RewriteContext(target=Target.make("8.6")))
    assert not outcome.changed
    assert outcome.model is model
    assert any(reason in s for s in outcome.skipped), outcome.skipped


def test_bert_ort_optimized_through_the_pipeline():
    from onnxdoctor.fix import FixOptions, fix_model

    model = onnx.load(str(ROOT / "fixtures/models/real/bert-ort-optimized.onnx"))
    assert sum(1 for n in model.graph.node if n.domain == MS) == 6
    before = _findings(model, "10.15", "TRT102")
    assert {f.location.op_type for f in before} == {"SkipLayerNormalization", "BiasGelu"}
    result = fix_model(model, FixOptions(trt="10.15"))
    applied = {s.rewrite for s in result.steps if s.status == "applied"}
    assert {"skip-layer-norm-to-add-layer-norm", "bias-gelu-to-add-erf"} <= applied
    assert not [n for n in result.model.graph.node if n.domain]
    assert not [f for f in result.after if f.code in ("TRT101", "TRT102")]
    assert not _findings(result.model, "10.15", "TRT102")
    assert result.proof is not None and result.proof.passed, result.proof.summary()
    # No new findings of any other code either (e.g. duplicate constants).
    codes_before = {}
    for f in result.before:
        codes_before[f.code] = codes_before.get(f.code, 0) + 1
    for f in result.after:
        if f.code != "GRF412":  # the Erf-form GELU is reported as fusable, for the fusion pass
            assert codes_before.get(f.code, 0) > 0, f"new finding {f.code}: {f.message}"
    onnx.checker.check_model(result.model, full_check=True)
