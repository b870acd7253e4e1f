"""PRC304 implicit-int8-quantization-removed."""

from __future__ import annotations

from ...findings import Severity
from ...kb import version_key
from ...rule import Context, Rule
from ._qdq import any_qdq


class ImplicitInt8QuantizationRemoved(Rule):
    """INT8 is wanted, but the model has no Q/DQ nodes and the release has no calibration any more.

    ## What it does
    When `--precision int8` is given and no QuantizeLinear/DequantizeLinear node exists anywhere in
    the model: an error on TensorRT 11.x, where implicit quantization is removed; an info finding on
    10.1–10.x, where it is deprecated.

    ## Why it breaks TensorRT
    Implicit quantization — an FP32 model plus the `kINT8` builder flag and an `IInt8Calibrator`
    (`trtexec --int8 --calib=...`) — is gone in TensorRT 11.0: `BuilderFlag::kINT8`,
    `setInt8Calibrator` and the calibrator classes were removed, and networks are strongly typed.
    A model without Q/DQ nodes therefore cannot run in INT8 at all; the build script fails on the
    missing API, or the engine silently runs in FP32.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,3,8,8] x) => (float[1,4,8,8] y) <float[4,3,3,3] w = {...}> {
          y = Conv<pads = [1,1,1,1]>(x, w)
        }

    ## How to fix
    Quantize explicitly: insert QuantizeLinear/DequantizeLinear pairs with calibrated scales, e.g.
    with NVIDIA ModelOpt (`python -m modelopt.onnx.quantization --onnx_path model.onnx
    --quantize_mode int8 --calibration_data ...`) or from quantization-aware training, then build
    without any INT8 flag.

    ## Fix safety
    No automatic fix: quantization needs calibration data.

    ## TensorRT versions
    Removed in 11.0 (error); deprecated from 10.1 (info).

    ## Sources
    shared/trt-operators/VERSIONS.md §2.3 (calibrators and `setInt8Calibrator` deprecated in 10.1,
    removed in 11.0, "use Q/DQ in the ONNX model") and §2.2 (kINT8 builder flag removed in 11.0);
    NVIDIA TensorRT 11.x migration guide; TensorRT developer guide, "Explicit Quantization" ("Use
    explicit quantization with Strong Typing. Precision-control build flags are not required").
    """

    code = "PRC304"
    name = "implicit-int8-quantization-removed"
    severity = Severity.ERROR
    summary = "INT8 intent without Q/DQ nodes; calibration removed in TensorRT 11"

    def check(self, ctx: Context):
        if ctx.target.precision != "int8" or ctx.release.key < version_key("10.1") or any_qdq(ctx):
            return
        if ctx.release.strongly_typed:
            yield self.finding(
                ctx,
                f"--precision int8 but the model has no QuantizeLinear/DequantizeLinear nodes: TensorRT "
                f"{ctx.release.version} has no INT8 calibration (implicit quantization was removed in 11.0), "
                "so this model cannot run in INT8",
                versions=ctx.kb.versions_where(lambda r: r.strongly_typed),
                hint="quantize explicitly with Q/DQ nodes (e.g. NVIDIA ModelOpt), then build without --int8",
            )
        else:
            yield self.finding(
                ctx,
                "--precision int8 without Q/DQ nodes relies on calibration (implicit quantization), deprecated "
                "since TensorRT 10.1 and removed in 11.0",
                severity=Severity.INFO,
                versions=ctx.kb.versions_where(lambda r: r.key >= version_key("10.1")),
                hint="move to explicit quantization (Q/DQ nodes, e.g. from NVIDIA ModelOpt) before upgrading to 11.x",
            )
