"""MOD504 duplicate-tensor-definition."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule


class DuplicateTensorDefinition(Rule):
    """Two nodes write the same tensor, or a node writes a graph input or an initializer.

    ## What it does
    Checks, in the main graph, every control-flow body and every local function, that each tensor
    name has one definition: at most one node output, and no node output that is also a graph
    input or an initializer of the same graph (ONNX graphs are in static single assignment form).

    ## Why it breaks TensorRT
    The parser registers every tensor by name and stops at the second definition (`ONNX graph has
    duplicate tensor name`); ONNX Runtime refuses the model too (`Duplicate definition of name`).
    Which of the two writers a consumer means is not defined, so no tool can repair it safely.

    ## Example
    `y = Relu(x)` and `y = Neg(x)` in the same graph; or a node writing `x`, the graph's input.

    ## How to fix
    Rename one of the outputs (and the consumers that meant it) in the exporter or with
    onnx-graphsurgeon; `onnx.checker.check_model` names the first duplicate too.

    ## Fix safety
    No automatic fix: which definition each consumer means is not in the model.

    ## TensorRT versions
    All releases.

    ## Sources
    onnx-tensorrt `ImporterContext::registerTensor` ("ONNX graph has duplicate tensor name");
    ONNX IR specification (names are unique within a graph: SSA); `onnx.checker` ("Graph must be
    in single static assignment (SSA) form").
    """

    code = "MOD504"
    name = "duplicate-tensor-definition"
    severity = Severity.ERROR
    release_independent = True
    summary = "a tensor is defined twice (two writers, or a node writing an input or initializer)"

    def check(self, ctx: Context):
        for g in ctx.model.graphs:
            outs = g.node_outputs
            # Cheap test first: with one producer-table entry per output slot, no name is written
            # twice and none is omitted (""); then only a written input or initializer is left.
            producers = g.producers
            defined = set(g.inputs) | set(g.initializers)
            if sum(map(len, outs)) == len(producers) and producers.keys().isdisjoint(defined):
                continue
            first: dict[str, int] = {}
            for i, names in enumerate(outs):
                for o in names:
                    if not o:
                        continue
                    if o in first or o in defined:
                        ref = g.ref(i)
                        if o in first:
                            other = g.ref(first[o])
                            message = (f"tensor {o!r} is written by {other.name!r} ({other.op_type}) and again by "
                                       f"{ref.name!r} ({ref.op_type})")
                        else:
                            what = "a graph input" if o in g.inputs else "an initializer"
                            message = f"tensor {o!r} is {what} and is also written by {ref.name!r} ({ref.op_type})"
                        yield self.finding(ctx, message, node=ref, tensor=o, versions=ctx.kb.versions,
                                           hint="rename one definition (and the consumers that mean it)")
                    else:
                        first[o] = i
