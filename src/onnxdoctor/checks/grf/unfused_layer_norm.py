"""GRF411 unfused-layer-norm."""

from __future__ import annotations

from ...findings import Severity
from ...patterns import decomposed as patterns
from ...rule import Context, Rule
from ._util import fused_op_available, matches, opset_note

OPSET = 17


class UnfusedLayerNorm(Rule):
    """A LayerNorm written out as ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add nodes.

    ## What it does
    Matches, at each `Sqrt`, the decomposed layer normalization that the TorchScript exporter emits
    below opset 17 — `ReduceMean → Sub → Pow(2) → ReduceMean → Add(ε) → Sqrt → Div → Mul(γ) →
    Add(β)` — and its variants: `x·x` for the square, `Mul` by `Reciprocal(Sqrt)` or by
    `Div(1, Sqrt)` (the rsqrt form of newer exporters), ReduceMean axes as an input (opset 18),
    `x - mean` computed twice, either operand order, and no γ/β. The matcher checks that both
    reductions are over the same trailing axes, the exponent is exactly 2, ε is a constant scalar,
    γ/β vary only along the normalized axes, and no intermediate tensor is read elsewhere.
    Reported (info) when the target release has a `LayerNormalization` importer and parses opset 17.

    ## Why it breaks TensorRT
    TensorRT has a fused normalization layer (`INormalizationLayer`) that `LayerNormalization`
    imports to; the decomposed form runs as 8-9 separate layers, is slower, and in FP16 its
    `Pow`/`ReduceMean` overflow or lose precision — TensorRT's builder warns "Running layernorm
    after self-attention in FP16 may cause overflow" for exactly this pattern.

    ## Example
        <ir_version: 8, opset_import: ["" : 14]>
        g (float[2,8] x) => (float[2,8] y) <float two = {2.0}, float eps = {1e-5}> {
          m = ReduceMean<axes = [-1]>(x)
          d = Sub(x, m)
          p = Pow(d, two)
          v = ReduceMean<axes = [-1]>(p)
          ve = Add(v, eps)
          s = Sqrt(ve)
          y = Div(d, s)
        }

    ## How to fix
    Export with opset ≥ 17 (the TorchScript and dynamo exporters then emit `LayerNormalization`), or
    let `onnxdoctor fix` replace the pattern (`fuse-layer-norm`, upgrading the opset to 17 when
    needed).

    ## Fix safety
    `fuse-layer-norm` is safe: `LayerNormalization` computes the same formula (with FP32 stash).

    ## TensorRT versions
    Fusion available on every release with a `LayerNormalization` importer (8.6 and later).

    ## Sources
    ONNX `LayerNormalization` (opset 17) spec; onnx-tensorrt `onnxOpImporters.cpp`
    (`DEFINE_BUILTIN_OP_IMPORTER(LayerNormalization)` → `addNormalization`); TensorRT developer
    guide, "Normalization layer" and the FP16 layernorm overflow warning; PyTorch
    `torch/onnx/symbolic_opset9.py` (`native_layer_norm` decomposition).
    """

    code = "GRF411"
    name = "unfused-layer-norm"
    severity = Severity.INFO
    summary = "LayerNorm decomposed into elementwise and reduce nodes"

    def check(self, ctx: Context):
        if not fused_op_available(ctx.release, "LayerNormalization", OPSET):
            return ()
        # The same findings on every release that has the fused op: made once per model.
        return ctx.model_memo((self.code, "findings"), lambda: list(self._findings(ctx)))

    def _findings(self, ctx: Context):
        note = opset_note(ctx.model, OPSET)
        versions = ctx.kb.versions_where(lambda r: fused_op_available(r, "LayerNormalization", OPSET))
        for m in matches(ctx, patterns.match_layer_norm):
            yield self.finding(
                ctx,
                f"LayerNorm decomposed into {len(m.nodes)} nodes ({m.describe()}; {m.form}) over axis {m.axis}, "
                f"epsilon {m.epsilon:g}: one LayerNormalization is faster and more accurate in FP16{note}",
                node=m.nodes[-1], tensor=m.output, versions=versions,
                hint="onnxdoctor fix fuses it (fuse-layer-norm)",
            )
