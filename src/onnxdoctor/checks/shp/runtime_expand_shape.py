"""SHP206 runtime-expand-shape."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule
from ._analysis import CONST, DATA, FREEZABLE, value_classes


class RuntimeExpandShape(Rule):
    """An Expand or Tile whose target shape or repeats are only known at runtime.

    ## What it does
    Flags `Expand` (input `shape`) and `Tile` (input `repeats`) when that input is not a build-time
    constant:

    - warning when it is computed from tensor *values* (not only from shapes and constants);
    - info when it is computed from input shapes (`Shape`/`Size`); when those are dims of graph
      inputs, the finding names `freeze-shapes`.

    ## Why it breaks TensorRT
    The importer turns `Expand` and `Tile` into a slice layer whose output size and strides come
    from the shape/repeats tensor. With a constant the layer is fully known at build time. Computed
    from shapes, TensorRT evaluates it as a shape tensor on every inference and the output dims are
    unknown at build time, so the following layers are tuned for a range instead of one shape.
    Computed from tensor values, the value must still serve as a shape tensor: the output shape
    becomes data-dependent, which the builder may reject or handle only with runtime output
    allocation.

    ## Example
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4] x, float[3] n) => (float[?,?] y) {
          s = Cast<to = 7>(n)
          y = Expand(x, s)
        }

    ## How to fix
    Use a constant target shape where the model allows it. For shape-derived targets, freeze the
    input shapes (`--shape NAME:DIMS`, rewrite `freeze-shapes`) when the engine runs with fixed
    shapes, and fold constants. A shape computed from data usually means the model should use
    broadcasting (an elementwise op) instead of `Expand`.

    ## Fix safety
    `freeze-shapes` is exact for the given shapes (the frozen model accepts only those shapes).
    No automatic fix for data-derived shapes.

    ## TensorRT versions
    Every release.

    ## Sources
    onnx-tensorrt `importExpand` and `importTile` (slice layer with runtime start/size/stride
    computed from the shape tensor); TensorRT developer guide, "Execution tensors vs. shape
    tensors" and "Dynamically shaped output".
    """

    code = "SHP206"
    name = "runtime-expand-shape"
    severity = Severity.INFO
    summary = "Expand/Tile shape known only at runtime"
    release_independent = True

    def check(self, ctx: Context):
        for node in ctx.nodes_of("Expand", "Tile"):
            op = node.op_type
            if node.graph.function is not None:
                continue
            src = node.input(1)
            if not src:
                continue
            c = value_classes(ctx, node.graph).class_of(src)
            if c == CONST:
                continue
            what = "target shape" if op == "Expand" else "repeats"
            if c == DATA:
                yield self.finding(
                    ctx,
                    f"{op} {node.name!r}: its {what} {src!r} is computed from tensor values, so the output shape is "
                    "data-dependent; TensorRT needs it as a shape tensor",
                    node=node, tensor=src, severity=Severity.WARNING,
                    hint="broadcast with an elementwise op, or compute the shape from Shape() and constants",
                )
                continue
            freezable = c == FREEZABLE
            yield self.finding(
                ctx,
                f"{op} {node.name!r}: its {what} {src!r} is computed from input shapes at runtime, so its output dims "
                "are unknown at build time" + ("; it becomes constant once the input shapes are fixed" if freezable else ""),
                node=node, tensor=src,
                fix=self.fix_by("freeze-shapes") if freezable else None,
                hint="if the engine runs with fixed shapes, pass --shape NAME:DIMS" if freezable else None,
            )
