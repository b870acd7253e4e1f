"""GRF405 noop-node."""

from __future__ import annotations

from ...findings import Severity
from ...model import dtype_name
from ...rule import Context, Rule


class NoopNode(Rule):
    """A node that passes its input through unchanged: Identity, inference Dropout, same-type Cast.

    ## What it does
    Reports `Identity` nodes, `Dropout` nodes in inference mode (no `training_mode` input, or a
    constant false one; opsets before 7 need `is_test=1`) whose mask output is unused, and `Cast`
    nodes whose target type equals their input's type. An `Identity` that forwards an outer-scope
    value to a control-flow body output is needed and not reported.

    ## Why it breaks TensorRT
    Each no-op becomes an identity layer or a copy unless the builder proves it away; they also hide
    patterns from fusion (a Cast between the halves of an RMSNorm) and from the parser's
    "input must be an initializer" checks, which look at the direct producer only: a Reshape shape
    behind an Identity is not an initializer.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[4] x) => (float[4] y) {
          a = Identity(x)
          y = Relu(a)
        }

    ## How to fix
    Remove the node and let its readers read its input; `onnxdoctor fix` does it (`remove-noops`).
    When the node's output is a graph output, the rewrite renames the producer's output so the
    graph output keeps its name.

    ## Fix safety
    `remove-noops` is safe: the values are identical.

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX operator specs (Identity; Dropout: "if training_mode is false, the output is the input";
    Cast); onnx-tensorrt `onnxOpImporters.cpp` (Dropout imported as identity, `is_weights` checks
    on direct producers).
    """

    code = "GRF405"
    name = "noop-node"
    severity = Severity.INFO
    summary = "Identity, inference Dropout or same-type Cast"
    release_independent = True

    def check(self, ctx: Context):
        model = ctx.model
        for node in ctx.nodes_of("Identity", "Dropout", "Cast"):
            op = node.op_type
            g = node.graph
            x, y = node.input(0), node.output(0)
            if not x or not y:
                continue
            if op == "Identity":
                if g.outer is not None and y in g.outputs and not (x in g.producers or x in g.inputs or x in g.initializers):
                    continue  # forwards an outer-scope value out of a body: needed
                what = "Identity is a no-op"
            elif op == "Dropout":
                mask = node.output(1)
                if mask and g.is_used(mask):
                    continue
                if not _inference(model, node):
                    continue
                what = "Dropout in inference mode is a no-op"
            else:
                src = g.elem_type_of(x)
                if not src or node.attr("to") != src:
                    continue
                what = f"Cast to {dtype_name(src)} of a tensor that is already {dtype_name(src)} is a no-op"
            if y in g.outputs:
                what += " (its output is a graph output: the fix renames the producer's output)"
            yield self.finding(ctx, what, node=node, tensor=y, versions=ctx.kb.versions,
                               hint="onnxdoctor fix removes it")


def _inference(model, node) -> bool:
    if model.op_version(node) < 7:
        return node.attr("is_test", 0) == 1
    tm = node.input(2)
    if not tm:
        return True
    v = model.constants(node.graph).value(tm)
    return v is not None and v.size == 1 and not bool(v.reshape(-1)[0])
