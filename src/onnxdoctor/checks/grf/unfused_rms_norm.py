"""GRF413 unfused-rms-norm."""

from __future__ import annotations

from ...findings import Severity
from ...patterns import decomposed as patterns
from ...rule import Context, Rule
from ._util import fused_op_available, matches, opset_note

OPSET = 23


class UnfusedRmsNorm(Rule):
    """An RMSNorm written out as Pow/ReduceMean/Add/Sqrt/Div (or Reciprocal)/Mul nodes.

    ## What it does
    Matches, at each `Sqrt`, the decomposed root-mean-square normalization of Llama-style models:
    `Pow(x, 2) → ReduceMean → Add(ε) → Sqrt → Div(1, ·) → Mul(x, ·) → Mul(γ)` (TorchScript), the
    dynamo exporter's `Sqrt → Reciprocal → Mul` (rsqrt) form, and `Div(x, Sqrt)`; same-type `Cast`
    nodes before the γ multiplication (HF's `LlamaRMSNorm` casts back to the input dtype) are part
    of the pattern. The matcher checks trailing-axis reduction, exponent 2, constant ε, and that the
    squared tensor is not centred (that would be a LayerNorm). Reported (info) when the target
    release imports `RMSNormalization` (10.15 and later, opset 23).

    ## Why it breaks TensorRT
    The decomposed form runs as 6-8 layers whose FP16 `Pow`/`ReduceMean` overflow for large
    activations; `RMSNormalization` imports to TensorRT's fused normalization layer, which
    accumulates in FP32 and is faster.

    ## Example
        <ir_version: 8, opset_import: ["" : 18]>
        g (float[2,8] x) => (float[2,8] y) <float two = {2.0}, float eps = {1e-6}, int64[1] ax = {-1}, float[8] w = {1,1,1,1,1,1,1,1}> {
          p = Pow(x, two)
          v = ReduceMean(p, ax)
          ve = Add(v, eps)
          s = Sqrt(ve)
          r = Reciprocal(s)
          n = Mul(x, r)
          y = Mul(w, n)
        }

    ## How to fix
    Let `onnxdoctor fix` replace the pattern with `RMSNormalization` (`fuse-rms-norm`, upgrading the
    opset to 23), or export with opset ≥ 23.

    ## Fix safety
    `fuse-rms-norm` is safe: `RMSNormalization` computes x / √(mean(x²) + ε) · γ, the same formula.

    ## TensorRT versions
    Fusion available from 10.15 (first release with a `RMSNormalization` importer).

    ## Sources
    ONNX `RMSNormalization` (opset 23) spec; onnx-tensorrt 10.15 `docs/operators.md` and
    `onnxOpImporters.cpp` (`DEFINE_BUILTIN_OP_IMPORTER(RMSNormalization)`); HF transformers
    `modeling_llama.py` (`LlamaRMSNorm`).
    """

    code = "GRF413"
    name = "unfused-rms-norm"
    severity = Severity.INFO
    summary = "RMSNorm decomposed into elementwise and reduce nodes"

    def check(self, ctx: Context):
        if not fused_op_available(ctx.release, "RMSNormalization", OPSET):
            return ()
        # The same findings on every release that has the fused op: made once per model.
        return ctx.model_memo((self.code, "findings"), lambda: list(self._findings(ctx)))

    def _findings(self, ctx: Context):
        note = opset_note(ctx.model, OPSET)
        versions = ctx.kb.versions_where(lambda r: fused_op_available(r, "RMSNormalization", OPSET))
        for m in matches(ctx, patterns.match_rms_norm):
            yield self.finding(
                ctx,
                f"RMSNorm decomposed into {len(m.nodes)} nodes ({m.describe()}; {m.form}) over axis {m.axis}, "
                f"epsilon {m.epsilon:g}: one RMSNormalization is faster and more accurate in FP16{note}",
                node=m.nodes[-1], tensor=m.output, versions=versions,
                hint="onnxdoctor fix fuses it (fuse-rms-norm)",
            )
