"""GRF405 noop-node."""

from __future__ import annotations

from ...findings import Severity
from ...model import dtype_name
from ...patterns.noops import PASS_THROUGH, needed, noop
from ...rule import Context, Rule


class NoopNode(Rule):
    """A node that passes its input through unchanged: Identity, inference Dropout, same-type Cast.

    ## What it does
    Reports `Identity` nodes, `Dropout` nodes in inference mode (no `training_mode` input, or a
    constant false one; opsets before 7 need `is_test=1`) whose mask output is unused, and `Cast`
    nodes whose target type equals their input's type. A no-op that gives a graph output its name
    and whose input is not computed in the same graph (a graph input, an initializer, an outer-scope
    value: an `Identity` forwarding it to a control-flow body output) or is itself a graph output is
    needed and not reported: no producer can be renamed in its place.

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
        for node in ctx.nodes_of(*PASS_THROUGH):
            n = noop(model, node)
            g = node.graph
            if n is None or n.kind not in _MESSAGES or needed(g, n.input, n.output):
                continue
            what = _MESSAGES[n.kind].format(t=dtype_name(n.src))
            if n.output in g.outputs:
                what += " (its output is a graph output: the fix renames the producer's output)"
            yield self.finding(ctx, what, node=node, tensor=n.output, versions=ctx.kb.versions,
                               hint="onnxdoctor fix removes it")


_MESSAGES = {"identity": "Identity is a no-op", "dropout": "Dropout in inference mode is a no-op",
             "cast": "Cast to {t} of a tensor that is already {t} is a no-op"}
