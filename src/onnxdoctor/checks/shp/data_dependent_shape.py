"""SHP203 data-dependent-shape."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule
from ._analysis import CONST, DATA, value_classes


class DataDependentShape(Rule):
    """An operator whose output shape depends on tensor values, not only on input shapes.

    ## What it does
    Flags, on releases that import the op:

    - `NonZero`, `Unique`, `Compress` (unless their data input, or `Compress`'s condition, is a
      build-time constant) and `NonMaxSuppression`;
    - `TopK` whose `K` is computed from tensor values;
    - `Range` whose `start`, `limit` or `delta` is computed from tensor values.

    `TopK` and `Range` whose inputs come from `Shape`/`Size` and constants are not flagged: their
    output shape follows the input shapes, which TensorRT handles as ordinary dynamic shapes.

    ## Why it breaks TensorRT
    The engine builds, but the output size is only known after the layer has run. TensorRT then
    needs an `IOutputAllocator` for network outputs of unknown size (trtexec and Polygraphy provide
    one; hand-written runtimes that pre-allocate outputs from `getTensorShape` break), inserts
    synchronization to learn the size, and cannot specialize the following layers for the
    optimization profile, which is slower.

    ## Example
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N] x) => (int64[1,?] y) { y = NonZero(x) }

    ## How to fix
    Prefer formulations with a fixed output size: masks (`Where`, `Mul` by a 0/1 mask) instead of
    `NonZero`/`Compress`; a constant `K`; the `EfficientNMS_TRT` plugin (fixed `max_output_boxes`)
    instead of `NonMaxSuppression`. Otherwise give the runtime an output allocator.

    ## Fix safety
    No automatic fix: the replacements change what the model returns.

    ## TensorRT versions
    Every release that imports the op (NonZero and NonMaxSuppression from 8.5, all releases in the
    knowledge base); `Unique` and `Compress` have no importer, `TRT101` reports those instead.

    ## Sources
    TensorRT developer guide, "Dynamically shaped output" (`IOutputAllocator`,
    data-dependent shapes); onnx-tensorrt `importNonZero`, `importNonMaxSuppression`,
    `importTopK`, `importRange`; TensorRT OSS sample `dds_faster_rcnn` (changelog 11.1).
    """

    code = "SHP203"
    name = "data-dependent-shape"
    severity = Severity.WARNING
    summary = "output shape depends on tensor values"

    def check(self, ctx: Context):
        for node in ctx.nodes_of("NonZero", "NonMaxSuppression", "Unique", "Compress", "TopK", "Range"):
            op = node.op_type
            if not ctx.release.has_importer(op):
                continue  # TRT101 reports the missing importer
            vc = value_classes(ctx, node.graph)
            cls = lambda i: vc.class_of(node.input(i)) if node.input(i) else CONST  # noqa: E731
            if op in ("NonZero", "Unique"):
                if cls(0) == CONST:
                    continue
                why = f"the number of {'non-zero elements' if op == 'NonZero' else 'unique values'} of {node.input(0)!r}"
            elif op == "Compress":
                if cls(1) == CONST:
                    continue
                why = f"the condition {node.input(1)!r}"
            elif op == "NonMaxSuppression":
                if all(cls(i) == CONST for i in range(len(node.node.input))):
                    continue
                why = "how many boxes survive suppression"
            elif op == "TopK":
                if not node.input(1) or cls(1) != DATA:
                    continue
                why = f"K ({node.input(1)!r}), which is computed from tensor values"
            else:  # Range
                bad = [node.input(i) for i in range(3) if node.input(i) and cls(i) == DATA]
                if not bad:
                    continue
                why = f"{', '.join(repr(b) for b in bad)}, computed from tensor values"
            yield self.finding(
                ctx,
                f"{op} {node.name!r}: output shape depends on {why}; the engine builds, but needs an output "
                "allocator at runtime and cannot specialize the layers after it (slower)",
                node=node, tensor=node.output(0) or None,
                hint="use a fixed-size formulation (mask with Where, constant K, EfficientNMS_TRT) where possible",
            )
