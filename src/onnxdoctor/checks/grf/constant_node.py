"""GRF410 constant-node."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...findings import Severity
from ...rule import Context, Rule

if TYPE_CHECKING:
    from ..._onnx import NodeProto

# Constant attributes whose value converts to an initializer as is (sparse and string values do not).
CONVERTIBLE_ATTRS = frozenset({"value", "value_float", "value_floats", "value_int", "value_ints"})


class ConstantNode(Rule):
    """`Constant` nodes whose values could be stored as initializers.

    ## What it does
    Counts, in each graph (control-flow bodies included), the `Constant` nodes with a tensor or
    numeric value whose output is not a graph output, and reports them once per graph, at the first.
    Models of IR version 3 and older are not reported: there every initializer must also be a graph
    input.

    ## Why it breaks TensorRT
    A `Constant` node is a node: the parser imports it as a layer, and checks that want "an
    initializer" (Reshape shapes, Slice starts, Resize scales, Pad pads on several releases) look at
    the producer, not through it. TorchScript exports hold hundreds (every axis, index and scalar),
    which makes graphs look twice their size and hides duplicates: equal initializers are merged by
    `dedupe-initializers`, equal `Constant` nodes only by node deduplication.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[4] x) => (float[4] y) {
          two = Constant<value = float {2.0}>()
          y = Mul(x, two)
        }

    ## How to fix
    Store each value as an initializer of the same name and delete the node; `onnxdoctor fix` does it
    (`cleanup`, which runs after every rewrite).

    ## Fix safety
    `cleanup` is safe: the tensor is the same, only where it is stored changes.

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX IR spec (initializers; IR version 3 requires them to be graph inputs); ONNX `Constant`
    operator; onnx-graphsurgeon `export_onnx` (exports constants as initializers).
    """

    code = "GRF410"
    name = "constant-node"
    severity = Severity.INFO
    summary = "Constant nodes that could be initializers"
    release_independent = True

    def check(self, ctx: Context):
        if ctx.model.proto.ir_version < 4:
            return
        for g in ctx.model.graphs:
            positions = g.op_positions.get("Constant")
            if not positions or g.function is not None:
                continue
            outs_, nodes, outputs = g.node_outputs, g.nodes, set(g.outputs)
            # a graph's Constants in one pass over their indices (no NodeRef until one is reported)
            found = [k for k in positions if _movable(outs_[k], nodes[k], outputs)]
            if not found:
                continue
            n, first = len(found), g.ref(found[0])
            where = f" in {'/'.join(g.path)}" if g.path else ""
            yield self.finding(
                ctx, f"{n} Constant node{'s' if n > 1 else ''}{where} could be {'initializers' if n > 1 else 'an initializer'}",
                node=first, tensor=first.output(0), versions=ctx.kb.versions,
                hint="onnxdoctor fix stores them as initializers",
            )


def _movable(outs: list[str], node: NodeProto, outputs: set[str]) -> bool:
    """Whether Constant `node` (writing `outs`; `outputs`: its graph's outputs) can become an
    initializer of the same name."""
    if len(outs) != 1 or not outs[0] or outs[0] in outputs:
        return False
    attrs = node.attribute
    return len(attrs) == 1 and attrs[0].name in CONVERTIBLE_ATTRS
