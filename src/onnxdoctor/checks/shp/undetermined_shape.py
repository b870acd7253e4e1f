"""SHP201 undetermined-shape."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule
from .._ranks import length_cause, rank_of

# op type -> index of the input whose *length* decides the output rank
_SHAPE_INPUTS = {"Reshape": 1, "Expand": 1, "Tile": 1, "ConstantOfShape": 0, "Resize": 3}


class UndeterminedShape(Rule):
    """A tensor whose rank TensorRT needs at build time, but no analysis can determine.

    ## What it does
    Reports a graph input declared without a shape (unknown rank), and a `Reshape`, `Expand`,
    `ConstantOfShape` or `Resize` (`sizes`) whose output rank is unknown because the length of
    its shape input is — only when ONNX shape inference *and* onnxdoctor's own derivation leave it
    missing. onnxdoctor derives ranks from op semantics where inference gave up (an `Einsum`
    output, `Slice(Shape(x))`, `Concat`/`Gather`/`Unsqueeze` of shape values, broadcasting,
    reductions, `If` branches that agree) and lengths of shape tensors from them.

    What remains is split by cause, because TensorRT knows every rank that follows from ranks:

    - **warning**: the length depends on something TensorRT cannot know at build time either: a
      graph input of dynamic length (`int64[N]`) or a data-dependent op upstream (`NonZero`,
      `Range` with runtime bounds, `Unique`, `Compress`, `NonMaxSuppression`);
    - **info** ("onnxdoctor could not infer"): nothing of the kind upstream; onnxdoctor's analysis
      is missing an op's semantics, TensorRT will know the rank, and rules that need it were skipped.

    Models whose shape inference failed are left to `MOD501`; local function bodies are skipped.

    ## Why it breaks TensorRT
    Every tensor in a TensorRT network has a rank fixed at build time; only dimension *values* may
    be dynamic. A shape tensor must therefore be 0-D or 1-D with a build-time length. A network
    input with no declared shape is imported with rank 0, which then fails or silently misbehaves
    in the first layer that reads it.

    ## Example
    The output rank of this Reshape depends on the runtime length of `shape` (warning):

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
    release_independent = True

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
            if g.shape_of(out) is not None:
                continue  # inference knows the output rank
            if rank_of(ctx.model, g, out) is not None:
                continue  # the op's semantics give it (Slice of Shape of a tensor of known rank, ...)
            what = "sizes" if node.op_type == "Resize" else "repeats" if node.op_type == "Tile" else "shape"
            cause = length_cause(ctx.model, g, shape_in)
            if cause is not None:
                yield self.finding(
                    ctx,
                    f"{node.op_type} {node.name!r}: the length of its {what} input {shape_in!r} depends on {cause}, "
                    f"so the rank of {out!r} is unknown at build time",
                    node=node, tensor=out,
                    hint="compute the shape from Shape() of a tensor of known rank and constants, or give it a fixed length",
                )
            else:
                yield self.finding(
                    ctx,
                    f"{node.op_type} {node.name!r}: onnxdoctor could not infer the length of its {what} input "
                    f"{shape_in!r}, so it does not know the rank of {out!r}; TensorRT determines it when it builds, "
                    "and rules that need this rank were skipped",
                    node=node, tensor=out, severity=Severity.INFO,
                    hint="nothing to do unless TensorRT reports a rank problem here; --shape NAME:DIMS may let the "
                         "analysis through",
                )
