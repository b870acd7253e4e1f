"""TRT123 unsupported-optional-io."""

from __future__ import annotations

from ...findings import Severity
from ._constraint_rule import ConstraintRule


class UnsupportedOptionalIo(ConstraintRule):
    """An optional input or output that the op's TensorRT importer does not support.

    ## What it does
    Evaluates the `input_absent` and `output_absent` constraints: e.g. `MaxPool` `Indices`,
    `LayerNormalization` `Mean`/`InvStdDev` outputs, `Attention` `past_key`/`past_value` inputs and
    `present_*` outputs. An optional output only counts when it is consumed or is a graph output.

    ## Why it breaks TensorRT
    The importer only produces (or reads) the documented tensors and asserts on the others.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,1,4,4] x) => (float[1,1,2,2] y, int64[1,1,2,2] idx) {
          y, idx = MaxPool<kernel_shape = [2, 2], strides = [2, 2]>(x)
        }

    ## How to fix
    Drop the optional tensor from the graph (do not consume it), or compute it with separate
    supported ops.

    ## Fix safety
    Exact (safe) rewrites compute the statistics outputs separately: `LayerNormalization`
    `Mean`/`InvStdDev` (`layer-norm-stats-to-reductions`) and the running statistics of a
    training-mode `BatchNormalization` (`batch-norm-training-to-reductions`); an `Attention` with a
    KV cache or `qk_matmul_output` is replaced by its ONNX function body (`op-to-function-body`).
    `MaxPool` indices have no automatic fix.

    ## TensorRT versions
    Per constraint, listed in each finding.

    ## Sources
    Each constraint's `source` field.
    """

    code = "TRT123"
    name = "unsupported-optional-io"
    severity = Severity.ERROR
    summary = "optional input/output the importer rejects"
    kinds = frozenset({"input_absent", "output_absent"})
    hint_text = "remove the optional tensor from the graph"
