"""Which rewrites fix which rules' findings: the one table that findings, `onnxdoctor rules`,
`explain` and the generated rule pages read. Literal on purpose: it imports neither the rewrites nor
onnx, so `check` stays light; tests/test_rule_fixes.py checks it against every rewrite's `resolves`,
`applicability` and substituted op, so it cannot drift from them."""

from __future__ import annotations

from .findings import Applicability, Fix

_SAFE, _UNSAFE = Applicability.SAFE, Applicability.UNSAFE

# The ops whose axes/axis input runtime-axis-to-if turns into Ifs over constant axes, by the input's
# position (TRT122 names the rewrite for them).
RUNTIME_AXIS_INPUT = {"CumSum": 1, "Squeeze": 1, "Unsqueeze": 1, "Slice": 3, "ReduceSum": 1, "ReduceMean": 1,
                      "ReduceMax": 1, "ReduceMin": 1, "ReduceProd": 1, "ReduceL1": 1, "ReduceL2": 1, "ReduceLogSum": 1,
                      "ReduceLogSumExp": 1, "ReduceSumSquare": 1}

# integer-matmul-to-mul-reduce-sum on releases whose ReduceSum is float only (8.6, 9.x) sums the
# products over K with Adds, unrolled: only up to this static K (the check names the fix only then).
INTEGER_MATMUL_UNROLL_MAX_K = 64

# The rewrites that replace a node of (domain, op_type) that some TensorRT release cannot import:
# TRT101 (no importer), TRT102 (custom-domain op) and TRT113 (UINT8 inside the network) findings on
# such a node name them (each rewrite lists these in its `ops`).
_MS = "com.microsoft"
SUBSTITUTIONS: dict[tuple[str, str], str] = {
    ("", "Attention"): "op-to-function-body",
    ("", "BitShift"): "bit-shift-to-arithmetic",
    ("", "BitwiseAnd"): "bitwise-and-to-arithmetic",
    ("", "BitwiseNot"): "bitwise-not-to-sub",
    ("", "BitwiseOr"): "bitwise-or-to-arithmetic",
    ("", "BitwiseXor"): "bitwise-xor-to-arithmetic",
    ("", "CastLike"): "castlike-to-cast",
    ("", "CenterCropPad"): "op-to-function-body",
    ("", "Compress"): "compress-to-gather-nonzero",
    ("", "DFT"): "dft-to-matmul",
    ("", "DeformConv"): "deform-conv-to-grid-sample",
    ("", "ConvInteger"): "dynamic-quantization-to-float",
    ("", "DynamicQuantizeLinear"): "dynamic-quantization-to-float",
    ("", "Gelu"): "gelu-to-erf",
    ("", "Hardmax"): "hardmax-to-argmax-onehot",
    ("", "MatMulInteger"): "dynamic-quantization-to-float",
    ("", "Mish"): "mish-to-softplus-tanh",
    ("", "NegativeLogLikelihoodLoss"): "op-to-function-body",
    ("", "QLinearConv"): "qlinear-to-qdq",
    ("", "QLinearMatMul"): "qlinear-to-qdq",
    ("", "RMSNormalization"): "rms-normalization-to-reductions",
    ("", "RotaryEmbedding"): "op-to-function-body",
    ("", "SimplifiedLayerNormalization"): "simplified-layer-norm-to-reductions",
    ("", "SoftmaxCrossEntropyLoss"): "op-to-function-body",
    ("", "Swish"): "swish-to-sigmoid-mul",
    (_MS, "Attention"): "contrib-attention-to-matmul-softmax",
    (_MS, "BiasAdd"): "bias-add-to-add",
    (_MS, "BiasGelu"): "bias-gelu-to-add-erf",
    (_MS, "DynamicQuantizeLSTM"): "dynamic-quantize-lstm-to-lstm",
    (_MS, "DynamicQuantizeMatMul"): "dynamic-quantize-matmul-to-matmul",
    (_MS, "FastGelu"): "fast-gelu-to-tanh",
    (_MS, "FusedConv"): "fused-conv-to-conv-activation",
    (_MS, "FusedGemm"): "fused-gemm-to-gemm-activation",
    (_MS, "FusedMatMul"): "fused-matmul-to-matmul",
    (_MS, "Gelu"): "contrib-gelu-to-erf",
    (_MS, "MatMulIntegerToFloat"): "dynamic-quantization-to-float",
    (_MS, "MatMulNBits"): "matmul-nbits-to-matmul",
    (_MS, "QGemm"): "qlinear-contrib-to-qdq",
    (_MS, "QLinearAdd"): "qlinear-contrib-to-qdq",
    (_MS, "QLinearAveragePool"): "qlinear-contrib-to-qdq",
    (_MS, "QLinearConcat"): "qlinear-contrib-to-qdq",
    (_MS, "QLinearGlobalAveragePool"): "qlinear-contrib-to-qdq",
    (_MS, "QLinearLeakyRelu"): "qlinear-contrib-to-qdq",
    (_MS, "QLinearMul"): "qlinear-contrib-to-qdq",
    (_MS, "QLinearSigmoid"): "qlinear-contrib-to-qdq",
    (_MS, "QuickGelu"): "quick-gelu-to-sigmoid-mul",
    (_MS, "SkipLayerNormalization"): "skip-layer-norm-to-add-layer-norm",
    (_MS, "SkipSimplifiedLayerNormalization"): "skip-simplified-layer-norm-to-add-rms",
}

# Rule code -> the rewrites that resolve its findings, the rule's usual choice first.
RULE_FIXES: dict[str, tuple[str, ...]] = {
    "GRF401": ("fold-constants", "inline-constant-if"),
    "GRF402": ("cleanup",),
    "GRF403": ("cleanup",),
    "GRF404": ("dedupe-initializers",),
    "GRF405": ("remove-noops",),
    "GRF406": ("remove-noops",),
    "GRF407": ("dedupe-nodes",),
    "GRF408": ("remove-noops",),
    "GRF409": ("fold-shape-computations",),
    "GRF410": ("cleanup",),
    "GRF411": ("fuse-layer-norm",),
    "GRF412": ("fuse-gelu",),
    "GRF413": ("fuse-rms-norm",),
    "GRF414": ("fold-batch-norm",),
    "GRF415": ("merge-constant-arithmetic",),
    "GRF416": ("collapse-layout-chains",),
    "GRF417": ("fold-bias-add",),
    "GRF418": ("merge-slices",),
    "MOD501": ("correct-annotations",),  # only for an annotation the inferred shape contradicts
    "PRC301": ("clamp-fp16-constants",),
    "PRC303": ("convert-precision",),
    "SHP202": ("freeze-shapes",),  # with `fix --shape` only: the findings themselves name no fix
    "SHP204": ("fold-constants", "freeze-shapes"),
    "SHP206": ("freeze-shapes",),
    # inside a local function's body, where substitutions do not reach, the fix is to inline it first
    "TRT101": (*dict.fromkeys(name for (domain, _), name in SUBSTITUTIONS.items() if not domain), "inline-local-functions",
               "fold-constants",  # an op whose inputs are all build-time constants is folded away
               "deform-conv-3d-to-gathers"),  # a DeformConv of 3 spatial dims (deform-conv-to-grid-sample: 2)
    "TRT102": (*dict.fromkeys(name for (domain, _), name in SUBSTITUTIONS.items() if domain), "inline-local-functions"),
    "TRT104": ("inline-local-functions",),
    "TRT115": ("dequantize-constant-to-float",),
    "TRT113": ("dynamic-quantization-to-float", "qlinear-to-qdq", "small-int-to-int32", "dequantize-constant-to-float",
               "qdq-to-symmetric-int8"),
    "TRT111": ("small-int-to-int32", "densify-sparse-constants", "dequantize-constant-to-float"),
    "TRT112": ("cast-double-to-float",),
    "TRT116": ("integer-matmul-to-mul-reduce-sum", "pow-exponent-to-float", "int-relu-to-max", "abs-unsigned-to-identity",
               "resize-nearest-via-float", "small-int-to-int32"),
    "TRT121": ("small-int-to-int32", "batch-norm-training-to-reductions", "lp-pool-to-pow-average-pool",
               "resize-equivalent-coordinate-mode", "densify-sparse-constants", "op-to-function-body",
               "max-pool-dilations-to-slices", "pad-wrap-to-slices", "scatter-nd-reduction-to-dense",
               "avg-lp-pool-dilations-to-slices", "resize-keep-aspect-ratio-to-scales", "resize-antialias-to-matmul",
               "qdq-to-symmetric-int8"),
    "TRT122": ("fold-constants", "instance-norm-to-reductions", "runtime-axis-to-if"),
    "TRT123": ("batch-norm-training-to-reductions", "layer-norm-stats-to-reductions", "op-to-function-body",
               "max-pool-indices-by-argmax"),
    "TRT124": ("op-to-function-body", "collapse-reshape-chains", "instance-norm-to-reductions", "deform-conv-3d-to-gathers"),
    "TRT125": ("qdq-to-symmetric-int8", "dequantize-constant-to-float", "topk-in-rounds"),
    "TRT126": ("einsum-lowercase-labels", "einsum-explicit-form", "group-norm-to-reductions", "gru-bidirectional-split",
               "lstm-bidirectional-split", "rnn-bidirectional-split", "eyelike-to-range-equal", "deform-conv-explicit-pads",
               "hardmax-to-argmax-onehot", "resize-equivalent-coordinate-mode", "dequantize-constant-to-float",
               "drop-unused-optional-outputs"),
    "TRT127": ("max-pool-dilations-to-slices", "avg-lp-pool-dilations-to-slices"),
    "TRT132": ("upgrade-opset",),
    "TRT141": ("inline-constant-if",),
    "TRT151": ("sequences-to-tensors",),
}

# Each rewrite's safety (Rewrite.applicability), for the Fix a finding carries.
APPLICABILITY: dict[str, Applicability] = {
    **{name: _SAFE for name in SUBSTITUTIONS.values()},
    "dynamic-quantization-to-float": _UNSAFE,
    "dynamic-quantize-lstm-to-lstm": _UNSAFE,
    "dynamic-quantize-matmul-to-matmul": _UNSAFE,
    "matmul-nbits-to-matmul": _UNSAFE,
    "qlinear-to-qdq": _UNSAFE,
    "qlinear-contrib-to-qdq": _UNSAFE,
    "qdq-to-symmetric-int8": _UNSAFE,
    "dequantize-constant-to-float": _SAFE,
    "avg-lp-pool-dilations-to-slices": _SAFE,
    "deform-conv-3d-to-gathers": _SAFE,
    "batch-norm-training-to-reductions": _SAFE,
    "cast-double-to-float": _UNSAFE,
    "clamp-fp16-constants": _UNSAFE,
    "abs-unsigned-to-identity": _SAFE,
    "cleanup": _SAFE,
    "collapse-layout-chains": _SAFE,
    "collapse-reshape-chains": _SAFE,
    "convert-precision": _UNSAFE,
    "correct-annotations": _SAFE,
    "dedupe-initializers": _SAFE,
    "dedupe-nodes": _SAFE,
    "deform-conv-explicit-pads": _SAFE,
    "densify-sparse-constants": _SAFE,
    "einsum-explicit-form": _SAFE,
    "einsum-lowercase-labels": _SAFE,
    "eyelike-to-range-equal": _SAFE,
    "fold-batch-norm": _SAFE,
    "fold-bias-add": _SAFE,
    "fold-constants": _SAFE,
    "fold-shape-computations": _SAFE,
    "freeze-shapes": _SAFE,
    "fuse-gelu": _SAFE,
    "fuse-layer-norm": _SAFE,
    "fuse-rms-norm": _SAFE,
    "group-norm-to-reductions": _SAFE,
    "gru-bidirectional-split": _SAFE,
    "inline-constant-if": _SAFE,
    "int-relu-to-max": _SAFE,
    "integer-matmul-to-mul-reduce-sum": _SAFE,
    "inline-local-functions": _SAFE,
    "layer-norm-stats-to-reductions": _SAFE,
    "lp-pool-to-pow-average-pool": _SAFE,
    "lstm-bidirectional-split": _SAFE,
    "max-pool-dilations-to-slices": _SAFE,
    "max-pool-indices-by-argmax": _SAFE,
    "merge-constant-arithmetic": _SAFE,
    "merge-slices": _SAFE,
    "pad-wrap-to-slices": _SAFE,
    "pow-exponent-to-float": _SAFE,
    "remove-noops": _SAFE,
    "resize-nearest-via-float": _SAFE,
    "resize-equivalent-coordinate-mode": _SAFE,
    "resize-keep-aspect-ratio-to-scales": _SAFE,
    "drop-unused-optional-outputs": _SAFE,
    "topk-in-rounds": _SAFE,
    "resize-antialias-to-matmul": _SAFE,
    "instance-norm-to-reductions": _SAFE,
    "runtime-axis-to-if": _SAFE,
    "rnn-bidirectional-split": _SAFE,
    "scatter-nd-reduction-to-dense": _SAFE,
    "sequences-to-tensors": _SAFE,
    "small-int-to-int32": _SAFE,
    "upgrade-opset": _SAFE,
}


def fixes_for(code: str) -> tuple[Fix, ...]:
    """The fixes the table lists for a rule (none for rules it does not name, e.g. plugins')."""
    return tuple(Fix(name, APPLICABILITY[name]) for name in RULE_FIXES.get(code, ()))


def fix_for(code: str, rewrite: str) -> Fix:
    """The Fix naming `rewrite` for a finding of rule `code`; the table must list the pair."""
    if rewrite not in RULE_FIXES.get(code, ()):
        raise ValueError(f"{code} findings name rewrite {rewrite!r}, which rule_fixes.RULE_FIXES does not list for {code}")
    return Fix(rewrite, APPLICABILITY[rewrite])


def substitution_for(code: str, op_type: str, domain: str = "") -> Fix | None:
    """The rewrite replacing a (`domain`, `op_type`) node, as the fix of a finding of rule `code`
    on it: None when no rewrite replaces the op, or the one that does does not resolve `code`."""
    name = SUBSTITUTIONS.get(("" if domain == "ai.onnx" else domain, op_type))
    return fix_for(code, name) if name in RULE_FIXES.get(code, ()) else None


def describe(fixes: tuple[Fix, ...]) -> str:
    """'none', or the rewrites with their safety: "`fold-constants` (safe), `freeze-shapes` (safe)"."""
    return ", ".join(f"`{f.rewrite}` ({f.applicability})" for f in fixes) or "none"
