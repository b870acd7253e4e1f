"""TRT101 unsupported-operator."""

from __future__ import annotations

from ...findings import Fix, Severity
from ...rule import Context, Rule
from ._substitutes import no_equivalent_hint, node_fix
from ._support import Resolution, first_supporting, groups_resolving


class UnsupportedOperator(Rule):
    """A standard ONNX operator for which the target's ONNX parser has no importer.

    ## What it does
    Flags every node in the default (`ai.onnx`) domain whose op type has no built-in importer in
    the chosen TensorRT release, is not a model-local function the parser can inline, and does not
    name a built-in plugin.

    ## Why it breaks TensorRT
    The onnx-tensorrt parser looks importers up by `op_type`. Without one, the node goes to the
    plugin fallback importer, which fails when no plugin of that name is registered:
    `In node 12 (importFallbackPluginImporter): UNSUPPORTED_NODE: Assertion failed: creator &&
    "Plugin not found"`. The engine is never built.

    ## Example
    `Hardmax` has an importer from TensorRT 9.2; on 8.6 the model below fails to parse:

        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2,5] x) => (float[2,5] y) { y = Hardmax<axis = 1>(x) }

    ## How to fix
    Upgrade to a release that supports the op (the message names the first one), replace the op by
    an equivalent subgraph of supported ops (`onnxdoctor fix` does this where a rewrite exists), or
    implement a TensorRT plugin with the op's name and pass `--plugin NAME`.

    Some ops have no equivalent graph of imported ops, so neither `fix` nor a re-export helps:
    `Unique` (its output's length and order depend on the values), the string ops
    (`StringNormalizer`, `StringSplit`, `StringConcat`, `RegexFullMatch`: TensorRT has no string
    tensors), `ImageDecoder`, the random draws `Bernoulli` and `Multinomial` (no rewrite can be
    proven equal to a random draw), `BitCast` and `Det`. Keep them outside the engine (pre- or
    post-processing), or implement a TensorRT plugin of that name and pass `--plugin NAME`; the
    finding's hint says which.

    ## Fix safety
    Op substitutions are exact (safe) where a rewrite exists; `Attention`, `RotaryEmbedding`,
    `CenterCropPad` and the training losses are replaced by the function body ONNX defines for
    them (`op-to-function-body`); the bit operators (`BitwiseAnd/Or/Xor/Not` on 8- to 32-bit
    integers, `BitShift` on UINT8/UINT16) become INT32 arithmetic. ONNX Runtime's dynamic quantization
    (`DynamicQuantizeLinear`, `MatMulInteger`, `ConvInteger`, also inside `If`/`Loop`/`Scan`
    bodies) is replaced by float ops with dequantized weights (activations are no longer rounded to
    8 bits), and the static `QLinearConv`/`QLinearMatMul` by explicit Q/DQ around the float op; both
    are unsafe (proven within tolerance, need `--unsafe-fixes`). An op whose inputs are all build-time constants (a
    `HannWindow` or `MelWeightMatrix` of constant size, a `DFT` of a constant) is folded into an
    initializer by `fold-constants` (safe: ONNX Runtime computes the values). Otherwise no
    automatic fix.

    ## TensorRT versions
    Every release; the verdict per release comes from `rules/trt/operators/` and `releases.toml`.

    ## Sources
    onnx-tensorrt `docs/operators.md` support matrix of each release; importer registrations
    (`DEFINE_BUILTIN_OP_IMPORTER`) in `builtin_op_importers.cpp` (≤ 9.3) / `onnxOpImporters.cpp`
    (≥ 10.0); `ModelImporter.cpp` (importer lookup by op type, plugin fallback).
    """

    code = "TRT101"
    name = "unsupported-operator"
    severity = Severity.ERROR
    summary = "ONNX operator without an importer in this TensorRT release"

    def check(self, ctx: Context):
        for op, refs, versions in groups_resolving(ctx, Resolution.NONE, standard_only=True):
            yield from self._report(ctx, op, refs, versions)

    def _report(self, ctx: Context, op: str, refs, versions):
        first = first_supporting(ctx.target, op)
        if op in ctx.release.removed_plugins:
            msg = f"{op} has no importer, and the plugin of that name was removed in TensorRT {ctx.release.version.split('.')[0]}.x"
            hint = "use the equivalent ONNX operators, or build and load the plugin yourself (--plugin)"
        elif first and ctx.kb.release(first).key > ctx.release.key:
            msg = f"{op} has no importer in TensorRT {ctx.release.version}; supported from {first}"
            hint = f"target TensorRT >= {first}, or replace {op} with supported operators"
        elif first:
            msg = f"{op} has no importer in TensorRT {ctx.release.version} (it had one up to an earlier release)"
            hint = f"replace {op} with supported operators"
        else:
            msg = f"{op} is not supported by any TensorRT release's ONNX parser"
            hint = no_equivalent_hint(op) or f"replace {op} with supported operators, or provide a plugin named {op} (--plugin {op})"
        for node in refs:
            yield self.finding(ctx, msg, node=node, hint=hint, versions=versions, fix=node_fix(self.code, node) or _fold_fix(self, ctx, node))


# Ops whose output is not a function of their inputs: never folded.
_NONDETERMINISTIC = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"})


def _fold_fix(rule: Rule, ctx: Context, node) -> Fix | None:
    """An op the release cannot import whose inputs are all build-time constants (a window or
    mel-weight matrix of constant size, a DFT of a constant): folding it away is the fix."""
    ins = [i for i in node.node.input if i]
    if node.op_type in _NONDETERMINISTIC or not ins or any(True for a in node.node.attribute if a.type in (5, 10)):
        return None  # 5, 10: GRAPH, GRAPHS attributes (control flow)
    cv = ctx.model.constants(node.graph)
    return rule.fix_by("fold-constants") if all(cv.is_constant(i) for i in ins) else None
