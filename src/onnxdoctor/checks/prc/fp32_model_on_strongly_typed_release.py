"""PRC303 fp32-model-on-strongly-typed-release."""

from __future__ import annotations

from ..._onnx import TensorProto

from ...findings import Severity
from ...rule import Context, Rule
from ._qdq import any_qdq

REDUCED = frozenset(
    {TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E5M2,
     TensorProto.FLOAT8E4M3FNUZ, TensorProto.FLOAT8E5M2FNUZ, TensorProto.INT8, TensorProto.INT4,
     getattr(TensorProto, "FLOAT4E2M1", 23)}
)
_FLOATS = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE})


class Fp32ModelOnStronglyTypedRelease(Rule):
    """An FP32-only model on TensorRT 11, where it will build and run in FP32/TF32.

    ## What it does
    On strongly typed releases (11.x) reports, once per model, a graph whose floating-point tensors
    are all FP32 (or DOUBLE) and that carries no FP16, BF16, FP8, INT8, INT4 or FP4 tensor and no
    Q/DQ node. It is an info finding; it becomes a warning when `--precision fp16`, `bf16` or `fp8`
    states an intent the graph does not carry. (`--precision int8` is PRC304's business.)

    ## Why it breaks TensorRT
    TensorRT 11 builds every network strongly typed: the ONNX tensor types fix each layer's precision,
    and the builder flags that let TensorRT pick FP16/INT8 kernels on its own (`--fp16`, `--int8`,
    `--bf16`, `kFP16`, ...) are gone. A model that 10.x built with `--fp16` now builds in FP32/TF32:
    it still works, but can be several times slower and use twice the memory. Nothing fails, so the
    regression goes unnoticed.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,16] x) => (float[1,16] y) <float[16,16] w = {...}> { y = MatMul(x, w) }

    ## How to fix
    Convert the model to mixed precision before parsing: NVIDIA ModelOpt AutoCast
    (`python -m modelopt.onnx.autocast --onnx_path model.onnx --low_precision_type fp16`), or
    `onnxdoctor fix --precision fp16 --unsafe-fixes`; for INT8/FP8, quantize with Q/DQ (ModelOpt
    quantization). Keep FP32 only where range matters (see PRC301). If FP32 is what you want, ignore
    this rule.

    ## Fix safety
    `convert-precision` (unsafe: values change within a tolerance) runs only when you ask for a
    precision with `onnxdoctor fix --precision fp16|bf16 --unsafe-fixes`; it keeps sensitive
    regions in FP32 and proves the result against the FP32 model layer by layer.

    ## TensorRT versions
    Strongly typed releases (11.0 and later).

    ## Sources
    shared/trt-operators/VERSIONS.md §2.2 (11.0: strongly typed only; BuilderFlags kFP16, kINT8, kFP8,
    kBF16, kINT4, kFP4 removed; "an FP32 ONNX model builds FP32 in 11.x"; ModelOpt AutoCast as the
    replacement); NVIDIA "Migrating from TensorRT 10.x to 11.x" guide; TensorRT 11.0 release notes.
    """

    code = "PRC303"
    name = "fp32-model-on-strongly-typed-release"
    severity = Severity.INFO
    summary = "FP32-only model builds in FP32/TF32 on TensorRT 11"

    def check(self, ctx: Context):
        if not ctx.release.strongly_typed or ctx.target.precision == "int8":
            return
        elems = {e for g in ctx.model.graphs for kind, e in g.type_summary[0] if kind == "tensor"}
        if not elems & _FLOATS or elems & REDUCED or any_qdq(ctx):
            return
        versions = ctx.kb.versions_where(lambda r: r.strongly_typed)
        wanted = ctx.target.precision
        if wanted in ("fp16", "bf16", "fp8"):
            yield self.finding(
                ctx,
                f"--precision {wanted} was asked for, but every float tensor is FP32: TensorRT "
                f"{ctx.release.version} is strongly typed (no --{wanted} builder flag), so this model builds in FP32/TF32",
                severity=Severity.WARNING,
                versions=versions,
                hint="convert the graph first: ModelOpt AutoCast, or `onnxdoctor fix --precision fp16 --unsafe-fixes`"
                if wanted != "fp8" else "quantize to FP8 with Q/DQ nodes (ModelOpt)",
            )
            return
        yield self.finding(
            ctx,
            f"every float tensor is FP32: TensorRT {ctx.release.version} is strongly typed and has no --fp16 "
            "flag, so this model builds and runs in FP32/TF32",
            versions=versions,
            hint="for FP16/BF16 convert the graph to mixed precision (ModelOpt AutoCast, or `onnxdoctor fix "
            "--precision fp16 --unsafe-fixes`); ignore PRC303 if FP32 is intended",
        )
