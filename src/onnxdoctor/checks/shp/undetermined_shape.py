"""SHP201 undetermined-shape."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule
from ._analysis import shape_length

# op type -> index of the input whose *length* decides the output rank
_SHAPE_INPUTS = {"Reshape": 1, "Expand": 1, "Tile": 1, "ConstantOfShape": 0, "Resize": 3}


class UndeterminedShape(Rule):
    """A tensor whose rank TensorRT needs at build time, but no analysis can determine.

    ## What it does
    Reports two cases, and only when ONNX shape inference *and* onnxdoctor's own propagation
    through constants and shape operations (Shape, Concat, Gather, Unsqueeze, elementwise ops)
    leave the information missing:

    - a `Reshape`, `Expand`, `Tile`, `ConstantOfShape` or `Resize` (`sizes`) whose shape input has
      an unknown length, so the rank of its output is unknown (for example a shape read from a
      graph input `int64[N]`, or computed from a data-dependent op such as `NonZero`);
    - a graph input declared without a shape (unknown rank).

    Models whose shape inference failed are left to `MOD501`; local function bodies are skipped.

    ## Why it breaks TensorRT
    Every tensor in a TensorRT network has a rank fixed at build time; only dimension *values* may
    be dynamic. A shape tensor must therefore be 0-D or 1-D with a build-time length. A network
    input with no declared shape is imported with rank 0, which then fails or silently misbehaves
    in the first layer that reads it.

    ## Example
    The output rank of this Reshape depends on the runtime length of `shape`:

        <ir_version: 8, opset_import: ["" : 13]>
        g (float[6] x, int64[N] shape) => (float y) { y = Reshape(x, shape) }

    ## How to fix
    Give the shape a fixed length: compute it from `Shape` of a tensor of known rank and
    constants, or declare the graph input with a fixed length (`int64[2]`). Declare the shape of
    every graph input. Where the missing information comes from an unknown input dim,
    `--shape NAME:DIMS` freezes it for the analysis.

    ## Fix safety
    No automatic fix: the model itself must state the rank.

    ## TensorRT versions
    Every release.

    ## Sources
    TensorRT developer guide, "Working with dynamic shapes" (ranks are build-time; shape tensors
    are 0-D/1-D with build-time length); onnx-tensorrt `importReshape`/`importExpand`/`importTile`
    (output rank taken from the shape tensor's length), `importInput` in `ModelImporter.cpp`
    (dims converted from the declared shape).
    """

    code = "SHP201"
    name = "undetermined-shape"
    severity = Severity.WARNING
    summary = "rank TensorRT needs at build time is unknown"

    def check(self, ctx: Context):
        model = ctx.model
        main = model.main
        for name in main.inputs:
            if name in main.initializers:
                continue
            t = main.types.get(name)
            if t is not None and t.kind == "tensor" and t.shape is None and main.is_used(name):
                yield self.finding(
                    ctx, f"graph input {name!r} has no declared shape: TensorRT needs the rank of every network input",
                    tensor=name, hint="declare the input's shape (symbolic names for dynamic dims)",
                )
        if model.shape_inference_error:
            return
        for node in ctx.nodes_of(*_SHAPE_INPUTS):
            idx = _SHAPE_INPUTS[node.op_type]
            if node.graph.function is not None:
                continue
            g = node.graph
            shape_in = node.input(idx)
            out = node.output(0)
            if not shape_in or not out:
                continue
            ot = g.type_of(out)
            if ot is not None and ot.shape is not None:
                continue  # inference knows the output rank
            if node.op_type == "Resize":
                xt = g.type_of(node.input(0))
                if xt is not None and xt.shape is not None:
                    continue  # the output rank is the input's
            if shape_length(ctx, g, shape_in) is not None:
                continue
            what = "sizes" if node.op_type == "Resize" else "repeats" if node.op_type == "Tile" else "shape"
            yield self.finding(
                ctx,
                f"{node.op_type} {node.name!r}: the length of its {what} input {shape_in!r} is unknown, so the rank of "
                f"{out!r} is unknown at build time",
                node=node, tensor=out,
                hint="compute the shape from Shape() of a tensor of known rank and constants, or give it a fixed length",
            )
