"""MOD501 shape-inference-failed."""

from __future__ import annotations

import re

from ...findings import Severity
from ...rule import Context, Rule
from ...rule_fixes import fix_for

# onnx's message when an annotation (value_info, a graph output's shape) contradicts the inferred shape
_ANNOTATION_CONFLICT = re.compile(r"Inferred shape and existing shape differ")


class ShapeInferenceFailed(Rule):
    """ONNX shape inference failed on the model.

    ## What it does
    Reports the error raised by `onnx.shape_inference.infer_shapes`, in strict mode and with type
    checking: inconsistent shapes, and an input type outside its operator's type constraints (INT32
    `Hardmax`, BOOL `Add`), which makes the model invalid ONNX. The analysis continues with what a
    lenient pass infers, so checks that need more stay silent (fewer findings, not wrong ones).

    ## Why it breaks TensorRT
    A failure usually means the graph is inconsistent (mismatched shapes or types, an invalid
    attribute) — the kind of problem TensorRT's parser also trips on, with a less clear message.

    ## Example
    A `MatMul` of `float[2,3]` by `float[4,5]`.

    ## How to fix
    Read the message; run `python -c "import onnx; onnx.checker.check_model('model.onnx',
    full_check=True)"` for details, and fix the export. When the failure is an annotation the
    graph contradicts ("Inferred shape and existing shape differ": a value_info entry or a declared
    output shape the exporter got wrong), `onnxdoctor fix` corrects it (`correct-annotations`).

    ## Fix safety
    `correct-annotations` is safe (it changes annotations only, and only for that failure); the
    other failures have no automatic fix.

    ## TensorRT versions
    All releases.

    ## Sources
    `onnx.shape_inference.infer_shapes` (strict mode and type checking on, data propagation off).
    """

    code = "MOD501"
    name = "shape-inference-failed"
    severity = Severity.WARNING
    summary = "ONNX shape inference failed"
    release_independent = True

    def check(self, ctx: Context):
        err = ctx.model.shape_inference_error
        if err:
            yield self.finding(ctx, f"ONNX shape inference failed: {err}", versions=ctx.kb.versions,
                               hint="fix the inconsistency; shape-dependent checks were skipped",
                               fix=fix_for(self.code, "correct-annotations") if _ANNOTATION_CONFLICT.search(err) else None)
