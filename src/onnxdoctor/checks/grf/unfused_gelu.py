"""GRF412 unfused-gelu."""

from __future__ import annotations

from ...findings import Severity
from ...patterns import decomposed as patterns
from ...rule import Context, Rule
from ._util import fused_op_available, matches, opset_note

OPSET = 20


class UnfusedGelu(Rule):
    """A GELU activation written out with Erf or with the Tanh approximation.

    ## What it does
    Matches, at each `Erf` or `Tanh`, the elementwise GELU forms exporters emit:
    `x · 0.5 · (1 + erf(x / √2))` (division by √2 or multiplication by 1/√2; the 0.5 applied
    to x, to the (1 + erf) factor, or to the product — TorchScript and dynamo place it differently)
    and the tanh approximation `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))` (x³ as
    `Pow(x, 3)` or `x·x·x`), as in GPT-2's `gelu_new`. Constants are checked against their exact
    values. Reported (info) when the target release imports `Gelu` (10.0 and later, opset 20).

    ## Why it breaks TensorRT
    The decomposed form runs as 5-8 elementwise layers that the builder does not always fuse into
    one kernel; `Gelu` imports to a single activation layer (`kGELU_ERF` / `kGELU_TANH`), which is
    faster and keeps FP16 intermediates such as `x³` from overflowing.

    ## Example
        <ir_version: 8, opset_import: ["" : 14]>
        g (float[2,8] x) => (float[2,8] y) <float r2 = {1.4142135}, float one = {1.0}, float half = {0.5}> {
          a = Div(x, r2)
          e = Erf(a)
          p = Add(e, one)
          m = Mul(x, p)
          y = Mul(m, half)
        }

    ## How to fix
    Let `onnxdoctor fix` replace the pattern with `Gelu` (`approximate="none"` for the Erf form,
    `"tanh"` for the Tanh form), upgrading the opset to 20 when needed, or export with opset ≥ 20.

    ## Fix safety
    `fuse-gelu` is safe for both forms: `Gelu(approximate="tanh")` is defined by exactly the tanh
    formula above, so this is not an approximation of the model — it is the same function.

    ## TensorRT versions
    Fusion available from 10.0 (first release with a `Gelu` importer and opset 20).

    ## Sources
    ONNX `Gelu` (opset 20) spec; onnx-tensorrt `onnxOpImporters.cpp`
    (`DEFINE_BUILTIN_OP_IMPORTER(Gelu)`, 10.0); Hendrycks & Gimpel, "Gaussian Error Linear Units";
    HF transformers `activations.py` (`NewGELUActivation`).
    """

    code = "GRF412"
    name = "unfused-gelu"
    severity = Severity.INFO
    summary = "GELU decomposed into Erf or Tanh elementwise nodes"

    def check(self, ctx: Context):
        if not fused_op_available(ctx.release, "Gelu", OPSET):
            return ()
        # The same findings on every release that has the fused op: made once per model.
        return ctx.model_memo((self.code, "findings"), lambda: list(self._findings(ctx)))

    def _findings(self, ctx: Context):
        note = opset_note(ctx.model, OPSET)
        versions = ctx.kb.versions_where(lambda r: fused_op_available(r, "Gelu", OPSET))
        for m in matches(ctx, patterns.match_gelu):
            yield self.finding(
                ctx,
                f"GELU decomposed into {len(m.nodes)} nodes ({m.form}): one Gelu(approximate=\"{m.approximate}\") "
                f"is faster and computes the same function{note}",
                node=m.nodes[-1], tensor=m.output, versions=versions,
                hint="onnxdoctor fix fuses it (fuse-gelu)",
            )
