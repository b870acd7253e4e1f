"""GRF402 dead-node."""

from __future__ import annotations

import operator

from ..._proto import body_reads, has_body
from ...findings import Severity
from ...rule import Context, Rule


class DeadNode(Rule):
    """A node none of whose outputs reaches a graph output.

    ## What it does
    Walks backwards from the outputs of every graph (the main graph, control-flow bodies, local
    functions) through producers, and reports each node that the walk never reaches. A value that
    an `If`/`Loop`/`Scan` body reads from the enclosing scope counts as used by that node.

    ## Why it breaks TensorRT
    The parser imports dead nodes like any other: an unsupported op, dtype or attribute in dead
    code still fails the parse (`UNSUPPORTED_NODE`), and dead branches keep their weights in the
    file. The builder removes dead layers only after a successful parse.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[4] x) => (float[4] y) {
          y = Relu(x)
          unused = Sigmoid(x)
        }

    ## How to fix
    Remove the nodes; `onnxdoctor fix` does it (`cleanup`, like onnx-graphsurgeon's `cleanup()`),
    together with the initializers only they read.

    ## Fix safety
    `cleanup` is safe: graph outputs do not depend on the removed nodes.

    ## TensorRT versions
    All releases.

    ## Sources
    onnx-tensorrt `ModelImporter.cpp` (`importModel` imports every node in topological order);
    onnx-graphsurgeon `Graph.cleanup`.
    """

    code = "GRF402"
    name = "dead-node"
    severity = Severity.INFO
    summary = "node whose outputs reach no graph output"
    release_independent = True

    def check(self, ctx: Context):
        for g in ctx.model.graphs:
            nodes = g.nodes
            live = _live_nodes(g)
            if len(live) == len(nodes):
                continue
            for i, node in enumerate(nodes):
                if i in live:
                    continue
                outs = [o for o in g.node_outputs[i] if o]
                what = "its outputs reach" if len(outs) > 1 else "its output reaches"
                yield self.finding(
                    ctx, f"{node.op_type} is dead: {what} no graph output",
                    node=g.ref(i), tensor=outs[0] if outs else None, versions=ctx.kb.versions,
                    hint="onnxdoctor fix removes it",
                )


_first = operator.itemgetter(0)


def _live_nodes(g) -> set[int] | range:
    """Indices of the nodes whose outputs reach a graph output (or a subgraph that reads them)."""
    nodes, ins, outs = g.nodes, g.node_inputs, g.node_outputs
    # The common case first: every node has an output that a node reads or that is a graph output
    # (`consumers` lists those names). Then every node is live: in an acyclic graph, a path along
    # such outputs ends at a graph output.
    consumers = g.consumers
    if "" not in consumers and all(outs):  # no output-less node, no graph output named ""
        # each node's first output alone, tested in one C-level pass: enough in the usual graph
        if all(map(consumers.__contains__, map(_first, outs))):
            return range(len(nodes))
    for os_ in outs:
        for o in os_:
            if o and o in consumers:
                break
        else:
            break  # a node whose outputs nothing reads: the walk below decides
    else:
        return range(len(nodes))
    nests = g.may_nest
    live: set[int] = set()
    if g.topo_sorted:  # one backward pass: a node is live when something live (or an output) reads it
        needed = set(g.outputs)
        for i in range(len(nodes) - 1, -1, -1):
            for o in outs[i]:
                if o in needed:
                    break
            else:
                continue
            live.add(i)
            needed.update(ins[i])
            if nests and has_body(nodes[i]):
                needed.update(body_reads(nodes[i]))
        return live
    stack = [g.producers[o][0] for o in g.outputs if o in g.producers]
    while stack:
        i = stack.pop()
        if i in live:
            continue
        live.add(i)
        reads = ins[i]
        if nests and has_body(nodes[i]):
            reads = [*reads, *body_reads(nodes[i])]
        for inp in reads:
            hit = g.producers.get(inp)
            if hit is not None and hit[0] not in live:
                stack.append(hit[0])
    return live
