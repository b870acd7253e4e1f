"""TRT102 custom-domain-operator."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule
from ._substitutes import node_fix
from ._support import Resolution, resolve, versions_resolving


class CustomDomainOperator(Rule):
    """An operator from a custom domain (e.g. `com.microsoft`) that TensorRT cannot import as intended.

    ## What it does
    Flags nodes whose domain is not `ai.onnx`:
    - as an **error** when the parser has no importer for the op type and no plugin of that name is
      built in or named with `--plugin` (e.g. `com.microsoft::FusedMatMul`, `SkipLayerNormalization`,
      left behind by ONNX Runtime's transformer optimizer);
    - as a **warning** when an ONNX op of the same name exists: the parser ignores the domain and
      imports the node with the *standard* op's importer, whose semantics may differ from the custom
      op's (`com.microsoft::Attention` reaches the ONNX `Attention` importer and fails its checks;
      `com.microsoft::Gelu` happens to match).

    ## Why it breaks TensorRT
    ONNX Runtime contrib ops exist only in ONNX Runtime. TensorRT's parser resolves nodes by
    `op_type` alone, then falls back to a plugin of that name, which must be registered when the
    model is parsed.

    ## Example
        <ir_version: 8, opset_import: ["" : 17, "com.microsoft" : 1]>
        g (float[2,4] a, float[4,3] b) => (float[2,3] y) { y = com.microsoft.FusedMatMul<alpha = 1.0>(a, b) }

    ## How to fix
    Export without ONNX Runtime's graph optimizations (optimize for TensorRT, not for ORT), or let
    `onnxdoctor fix` replace the contrib op with standard ONNX ops; or load a plugin with that name
    and pass `--plugin NAME`. A model quantized by ONNX Runtime (`quantize_dynamic`,
    `quantize_static` in the QOperator format, `MatMulNBitsQuantizer`) is repaired by
    `onnxdoctor fix --unsafe-fixes`; without the flag the fix report says which unsafe rewrites
    would apply.

    ## Fix safety
    Replacements of contrib ops by standard ops are exact (safe) where a rewrite exists. Those of
    ONNX Runtime's quantization ops are unsafe (proven within tolerance, need `--unsafe-fixes`):
    the dynamic ones (`DynamicQuantizeMatMul`, `MatMulIntegerToFloat`, `DynamicQuantizeLSTM`) and
    the weight-only `MatMulNBits` become float ops with the weights dequantized when fix runs (their
    activation scale is computed at run time, which TensorRT's Q/DQ cannot express); the static
    QOperator ops (`QLinearAdd`, `QLinearMul`, `QLinearConcat`, `QLinearSigmoid`,
    `QLinearLeakyRelu`, `QLinearGlobalAveragePool`, `QLinearAveragePool`, `QGemm`) become explicit
    Q/DQ around the float op, which TensorRT imports and runs in INT8.

    ## TensorRT versions
    All. From 10.10 the parser also tries the node's domain as plugin namespace.

    ## Sources
    onnx-tensorrt `ModelImporter.cpp` (importer lookup by op type; `importFallbackPluginImporter`),
    TensorRT CHANGELOG 10.10 (domain used as plugin namespace); docs/research/parser-facts.md.
    """

    code = "TRT102"
    name = "custom-domain-operator"
    severity = Severity.ERROR
    summary = "custom-domain operator without an importer or plugin"

    def check(self, ctx: Context):
        custom = [ref for (domain, _), refs in ctx.op_index().items() if domain for ref in refs]
        for node in custom:
            domain = node.domain
            how = resolve(ctx.release, ctx.target, ctx.model, node)
            op = node.op_type
            if how is Resolution.NONE:
                yield self.finding(
                    ctx,
                    f"{domain}::{op} has no TensorRT importer and no plugin named {op!r}",
                    node=node,
                    hint=f"replace it with standard ONNX ops, or load a plugin and pass --plugin {op}",
                    versions=versions_resolving(ctx.target, ctx.model, node, {Resolution.NONE}),
                    fix=node_fix(self.code, node),
                )
            elif how is Resolution.BUILTIN and domain != "trt":
                yield self.finding(
                    ctx,
                    f"{domain}::{op} will be imported by the standard ONNX {op} importer (the parser ignores the domain); "
                    "its semantics may differ from the custom op's",
                    node=node,
                    severity=Severity.WARNING,
                    hint=f"replace it with the standard ai.onnx {op} (check attributes and inputs match)",
                    versions=versions_resolving(ctx.target, ctx.model, node, {Resolution.BUILTIN}),
                    fix=node_fix(self.code, node),
                )
