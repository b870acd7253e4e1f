"""Shape passes: freezing input shapes given with --shape."""

from __future__ import annotations

import onnx

from ..findings import Applicability
from ..shapes import freeze_inputs
from ._gs import node_count
from .control_flow import fold_and_inline
from .base import Outcome, Rewrite, RewriteContext


class FreezeShapes(Rewrite):
    """Fix dynamic input dimensions to the values given with `--shape`, then fold what became constant.

    ## What it does
    Writes the `--shape` dimensions into the graph inputs, re-runs shape inference and folds the
    shape computations (Shape -> Gather -> Concat -> Reshape chains) that are now constant, in the
    main graph and in control-flow bodies. An `If` whose condition became constant (`Shape(x)[0] == 1`)
    is replaced by the branch that runs, as `inline-constant-if` does: the other branch may not even
    be valid for the frozen shapes.

    ## When it applies
    Findings SHP204 (shape computation constant once inputs are fixed), SHP206 (Expand/Tile shape
    known only at runtime, constant once inputs are fixed) and SHP202 (dynamic input), only when
    `--shape` is given; otherwise it explains that it needs `--shape`.

    ## Example
    `onnxdoctor fix model.onnx -o fixed.onnx --shape input_ids:1x128` turns the model static.

    ## Safety
    Safe for inputs of exactly those shapes — the result accepts no other shapes. The proof runs
    with the frozen shapes.

    ## Resolves
    SHP202, SHP204, SHP206
    """

    name = "freeze-shapes"
    phase = 10
    summary = "fix input dimensions from --shape and fold shape computations"
    applicability = Applicability.SAFE
    resolves = ("SHP202", "SHP204", "SHP206")

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        if not ctx.shapes:
            return Outcome(model, skipped=["needs --shape NAME:DIMS to know which input shapes to freeze"])
        out = onnx.ModelProto()
        out.CopyFrom(model)
        todo = {}
        for vi in out.graph.input:
            if vi.name in ctx.shapes:
                dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
                if dims != list(ctx.shapes[vi.name]):
                    todo[vi.name] = ctx.shapes[vi.name]
        if not todo:
            return Outcome(model, skipped=["inputs already have the --shape dimensions"])
        frozen = freeze_inputs(out, todo, "model")
        del out.graph.value_info[:]
        out = onnx.shape_inference.infer_shapes(out)
        before = node_count(out)
        # Conditions on shapes (`Shape(x)[k] == 1`) become constant: their If is inlined here, because
        # the branch not taken may not even type-check for the frozen shapes.
        out, inlined = fold_and_inline(out, ctx.max_constant_bytes)
        changes = [f"froze {name} to {'x'.join(map(str, todo[name]))}" for name in frozen]
        changes += inlined
        if node_count(out) < before:
            changes.append(f"folded {before - node_count(out)} shape node(s)" + (" (and inlined branches)" if inlined else ""))
        return Outcome(out, changes)


REWRITES = (FreezeShapes,)
