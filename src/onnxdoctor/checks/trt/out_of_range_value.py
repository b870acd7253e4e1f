"""TRT125 out-of-range-value."""

from __future__ import annotations

from ...findings import Severity
from ._constraint_rule import ConstraintRule


class OutOfRangeValue(ConstraintRule):
    """A constant input whose value the importer or the layer rejects.

    ## What it does
    Evaluates the `value` constraints on inputs whose values are known at analysis time: e.g.
    `TopK` K above 3840 (10.1+), a non-zero Q/DQ zero point (TensorRT quantization is symmetric),
    `Dropout` with `training_mode = true`.

    ## Why it breaks TensorRT
    The importer asserts on the value (`shiftIsAllZeros(zeroPoint)`), or the layer it creates
    refuses it when the engine is built (`ITopKLayer` K limit).

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,10000] x) => (float[1,5000] v, int64[1,5000] i) {
          k = Constant<value = int64[1] {5000}>()
          v, i = TopK(x, k)
        }

    ## How to fix
    For TopK, split the selection (e.g. TopK per chunk then TopK of the candidates); for
    quantization, re-quantize symmetrically (zero point 0), or let `onnxdoctor fix` rewrite it
    (the activation rewrite needs `--unsafe-fixes`).

    `Dropout` with `training_mode` true draws a random mask on every run: no equivalent graph of
    imported ops exists that a proof could compare, so `fix` leaves it. Export in inference mode
    (`model.eval()`), or set the `training_mode` input to false if inference is what you want.

    ## Fix safety
    Non-zero Q/DQ zero points have rewrites: a `DequantizeLinear` of constants is folded to its
    FLOAT value (`dequantize-constant-to-float`, safe; a lookup `DequantizeLinear(Gather(table, i))`
    of a constant table, ONNX Runtime's quantized embeddings, becomes a `Gather` from the
    dequantized table); an activation Q/DQ pair is rewritten as
    symmetric INT8 around a shift (`qdq-to-symmetric-int8`, unsafe: proven within tolerance). Other
    values have no automatic fix.

    ## TensorRT versions
    Per constraint, listed in each finding.

    ## Sources
    Each constraint's `source` field.
    """

    code = "TRT125"
    name = "out-of-range-value"
    severity = Severity.ERROR
    summary = "constant input value the importer rejects"
    kinds = frozenset({"value"})
    hint_text = "change the constant to a supported value"
