"""convert-precision: the rewrite that reaches the mixed-precision converter (onnxdoctor.mixed_precision)
through PRC303 when `fix --precision fp16|bf16` asks for it."""

from __future__ import annotations

import onnx

from ..findings import Applicability
from ..mixed_precision.builder import _carries_low_precision
from ..mixed_precision.decisions import TARGETS
from ..mixed_precision.emulation import proof_model
from ..mixed_precision.stage import convert
from .base import Outcome, Rewrite, RewriteContext


class ConvertPrecision(Rewrite):
    """Convert an FP32 model to mixed FP16/BF16 precision for strongly typed TensorRT.

    ## What it does
    Converts float tensors, initializers and constants to the `--precision` type (fp16 or bf16), keeping
    in FP32 the nodes that evidence says need it, each with its reason: constants beyond the target's
    range (attention masks of -1e9) and everything they reach up to a bounded op such as Softmax;
    constants that flush to zero (epsilons); large reductions; Exp/Log on unknown ranges; activations
    that a reference run in ONNX Runtime sees beyond `max_abs` (8192 for FP16); and, where that run
    observed nothing, decomposed LayerNorm/RMSNorm statistics and Pow. Casts are inserted at the boundaries of FP32 regions (one per tensor and
    type, widen-narrow pairs cancelled); graph inputs and outputs keep their types. `If`/`Loop`/`Scan`
    bodies convert too, each keeping its interface (inputs, outputs, outer-scope values) FP32. The result is proven
    layer by layer against the FP32 model; if outputs leave the tolerance, the FP32 set widens around the
    first divergence and the conversion is retried (at most 4 times).

    ## When it applies
    Findings PRC303 (FP32-only model on a strongly typed release) when `--precision fp16` or `bf16` is
    given. A model that already carries FP16/BF16 tensors is left alone. It runs once, as the fix
    pipeline's final stage, after every other rewrite, and its own layerwise proof is the one reported.

    ## Example
    `MatMul(x, W) -> Add(mask=-1e9) -> Softmax` becomes `Cast(x, fp16) -> MatMul(x16, W16) -> Cast(fp32)
    -> Add(mask) -> Softmax -> Cast(fp16) -> ...`: the masked Add and Softmax stay FP32.

    ## Safety
    Unsafe: every converted value is rounded to the target type. Proven against the original within
    atol/rtol 1e-2 (FP16; BF16 by emulation, 5e-2).

    ## Resolves
    PRC303
    """

    name = "convert-precision"
    reads_weights = True  # the fix pipeline gives it the model with its weights
    final_stage = True  # after the rewrite loop, proven by its own layerwise proof (not a second one)
    phase = 70
    summary = "convert FP32 to mixed FP16/BF16 with Casts around the regions that must stay FP32"
    applicability = Applicability.UNSAFE
    resolves = ("PRC303",)
    atol = 1e-2
    rtol = 1e-2

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        target = ctx.target.precision
        if target not in TARGETS:
            return Outcome(model, skipped=[f"--precision is {target or 'not given'}: convert-precision needs fp16 or bf16"])
        if _carries_low_precision(model.graph):
            return Outcome(model, skipped=["the model already carries FP16/BF16 tensors"])
        # Options from the CLI (--keep-io-types, --keep-fp32, --max-abs, --data) when the pipeline passes them.
        opts = dict(ctx.precision_options or {})
        opts.setdefault("tolerance", (self.atol, self.rtol) if target == "fp16" else None)
        opts.setdefault("fold_constants", True)
        res = convert(model, target, shapes=ctx.shapes, **opts)
        if not any(not d.kept_fp32 and d.kind in ("compute", "movement") for d in res.decisions):
            return Outcome(model, skipped=[f"every node stays FP32 ({len(res.kept)} kept with a reason)"]
                           + [f"kept FP32: {d.node} ({d.op_type}): {d.reason}" for d in res.kept] + res.notes)
        changes = [f"converted to {target}: {len(res.kept)} compute node(s) kept FP32 ({res.fp32_fraction:.1%} of compute), "
                   f"{res.casts_inserted} Cast(s) inserted" + (f", {res.retries} retr{'y' if res.retries == 1 else 'ies'}" if res.retries else "")]
        changes += [f"kept FP32: {d.node} ({d.op_type}): {d.reason}" for d in res.kept]
        return Outcome(res.model, changes, res.notes, details=res.to_dict(), proof=res.proof_result())

    def tolerances(self, ctx: RewriteContext) -> tuple[float | None, float | None]:
        # BF16 keeps 8 mantissa bits: its storage rounding alone reaches a few 1e-2.
        return (5e-2, 5e-2) if ctx.target.precision == "bf16" else (self.atol, self.rtol)

    def proof_model(self, candidate: onnx.ModelProto, ctx: RewriteContext) -> onnx.ModelProto:
        # ONNX Runtime's CPU provider has no BF16 kernels for most ops: prove by emulation.
        return proof_model(candidate) if ctx.target.precision == "bf16" else candidate



REWRITES = (ConvertPrecision,)
