"""GRF414 unfolded-batch-norm."""

from __future__ import annotations

from ...findings import Severity
from ...patterns.batch_norm import batch_norm_fold
from ...rule import Context, Rule


class UnfoldedBatchNorm(Rule):
    """An inference `BatchNormalization` right after a Conv, ConvTranspose, Gemm or MatMul with constant weights.

    ## What it does
    Reports a `BatchNormalization` in inference mode (only its `Y` output used, `spatial` not 0)
    whose input is the only use of the output of a `Conv`, a `ConvTranspose` (group 1), a `Gemm`, or
    a `MatMul` with a 2-D output (optionally followed by an `Add` of a constant bias), when that
    layer's weights, bias and the normalization's scale, bias, mean and variance are all constants.

    ## Why it breaks TensorRT
    The normalization is an affine map per output channel, which the layer's weights and bias can
    absorb: the folded model runs one layer instead of two. TensorRT's builder folds Conv+BN itself
    in many cases, but not Gemm/MatMul+BN, not in strongly typed networks where the folding would
    change precision, and not when a Q/DQ pair or a shuffle sits between them after other rewrites.
    Models exported in eval mode from PyTorch, Paddle or Keras usually keep every BatchNorm.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,3,8,8] x) => (float[1,4,8,8] y) <float[4,3,3,3] w = {...}, float[4] s = {1, 2, 3, 4},
            float[4] b = {0, 0, 0, 0}, float[4] m = {0, 1, 0, 1}, float[4] v = {1, 1, 4, 4}> {
          c = Conv<pads = [1, 1, 1, 1]>(x, w)
          y = BatchNormalization(c, s, b, m, v)
        }

    ## How to fix
    Scale the weights by `scale / sqrt(var + epsilon)` per output channel and set the bias to
    `(bias - mean) * scale / sqrt(var + epsilon) + B`; `onnxdoctor fix` does it (`fold-batch-norm`).

    ## Fix safety
    `fold-batch-norm` is safe: the folded layer computes the same affine map; the values differ only
    by floating-point rounding (well inside the proof's tolerance).

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX `BatchNormalization` (inference: Y = scale * (X - mean) / sqrt(var + epsilon) + B), `Conv`,
    `ConvTranspose` (weight layout [C_in, C_out/group, k...]), `Gemm` specs; onnxslim and
    onnx-simplifier Conv+BN fusion; PyTorch `torch.nn.utils.fusion.fuse_conv_bn_eval`.
    """

    code = "GRF414"
    name = "unfolded-batch-norm"
    severity = Severity.INFO
    summary = "BatchNormalization that the Conv/Gemm/MatMul before it can absorb"
    release_independent = True

    def check(self, ctx: Context):
        for bn in ctx.nodes_of("BatchNormalization"):
            f = batch_norm_fold(ctx.model, bn)
            if f is None:
                continue
            what = f.layer.op_type + ("+Add" if f.add is not None else "")
            yield self.finding(ctx, f"BatchNormalization after {what} {f.layer.name!r} can be folded into its weights",
                               node=bn, tensor=bn.output(0), versions=ctx.kb.versions,
                               hint="onnxdoctor fix folds it")
