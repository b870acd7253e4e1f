"""The rewrites that TRT101 (unsupported-operator), TRT102 (custom-domain-operator) and TRT113
(uint8-inside-network) findings name as their fix, by the (domain, op_type) of the node.

Kept as data here so that `check` does not import the rewrites (they import onnx and
onnx-graphsurgeon); tests/test_substitutions.py checks it against every rewrite's own `ops`."""

from __future__ import annotations

from ...findings import Applicability, Fix

_SAFE = Applicability.SAFE
_UNSAFE = Applicability.UNSAFE
_MS = "com.microsoft"

SUBSTITUTES: dict[tuple[str, str], tuple[str, Applicability]] = {
    ("", "Attention"): ("op-to-function-body", _SAFE),
    ("", "CastLike"): ("castlike-to-cast", _SAFE),
    ("", "CenterCropPad"): ("op-to-function-body", _SAFE),
    ("", "Compress"): ("compress-to-gather-nonzero", _SAFE),
    ("", "ConvInteger"): ("dynamic-quantization-to-float", _UNSAFE),
    ("", "DynamicQuantizeLinear"): ("dynamic-quantization-to-float", _UNSAFE),
    ("", "Gelu"): ("gelu-to-erf", _SAFE),
    ("", "Hardmax"): ("hardmax-to-argmax-onehot", _SAFE),
    ("", "MatMulInteger"): ("dynamic-quantization-to-float", _UNSAFE),
    ("", "Mish"): ("mish-to-softplus-tanh", _SAFE),
    ("", "NegativeLogLikelihoodLoss"): ("op-to-function-body", _SAFE),
    ("", "RMSNormalization"): ("rms-normalization-to-reductions", _SAFE),
    ("", "RotaryEmbedding"): ("op-to-function-body", _SAFE),
    ("", "SimplifiedLayerNormalization"): ("simplified-layer-norm-to-reductions", _SAFE),
    ("", "SoftmaxCrossEntropyLoss"): ("op-to-function-body", _SAFE),
    ("", "Swish"): ("swish-to-sigmoid-mul", _SAFE),
    (_MS, "BiasAdd"): ("bias-add-to-add", _SAFE),
    (_MS, "BiasGelu"): ("bias-gelu-to-add-erf", _SAFE),
    (_MS, "DynamicQuantizeLSTM"): ("dynamic-quantize-lstm-to-lstm", _UNSAFE),
    (_MS, "DynamicQuantizeMatMul"): ("dynamic-quantize-matmul-to-matmul", _UNSAFE),
    (_MS, "FastGelu"): ("fast-gelu-to-tanh", _SAFE),
    (_MS, "FusedConv"): ("fused-conv-to-conv-activation", _SAFE),
    (_MS, "FusedGemm"): ("fused-gemm-to-gemm-activation", _SAFE),
    (_MS, "FusedMatMul"): ("fused-matmul-to-matmul", _SAFE),
    (_MS, "Gelu"): ("contrib-gelu-to-erf", _SAFE),
    (_MS, "MatMulIntegerToFloat"): ("dynamic-quantization-to-float", _UNSAFE),
    (_MS, "QuickGelu"): ("quick-gelu-to-sigmoid-mul", _SAFE),
    (_MS, "SkipLayerNormalization"): ("skip-layer-norm-to-add-layer-norm", _SAFE),
    (_MS, "SkipSimplifiedLayerNormalization"): ("skip-simplified-layer-norm-to-add-rms", _SAFE),
}


INLINE = Fix("inline-local-functions", _SAFE)


def substitute_fix(op_type: str, domain: str = "") -> Fix | None:
    """The fix a finding on a (`domain`, `op_type`) node names, if a rewrite replaces that op."""
    hit = SUBSTITUTES.get(("" if domain == "ai.onnx" else domain or "", op_type))
    return Fix(*hit) if hit else None


def node_fix(node) -> Fix | None:
    """`substitute_fix` for a node (a model.NodeRef); inside a local function's body, where the
    substitutions do not reach, the fix is to inline the function first."""
    fix = substitute_fix(node.op_type, node.domain)
    if fix is None:
        return None
    graph = node.graph
    while graph is not None:
        if graph.function is not None:
            return INLINE
        graph = graph.outer
    return fix


SMALL_INT = Fix("small-int-to-int32", _SAFE)
_SMALL_INTS = {"UINT8", "INT16", "UINT16", "UINT32"}


def small_int_fix(release, type_name: str, role: str, opset: int) -> Fix | None:
    """`small-int-to-int32` for a UINT8/INT16/UINT16/UINT32 value inside the network (not a main-graph
    input or output): computed in INT32 (UINT32: INT64, when the release's Mod takes INT64)."""
    if type_name not in _SMALL_INTS or role in ("input", "output") or opset < 10:
        return None
    if type_name == "UINT32" and "INT64" not in release.ops.get("Mod", ()):
        return None
    return SMALL_INT
