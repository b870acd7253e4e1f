"""Small helpers over ONNX protos that every layer uses: the graph bodies of a node, and every graph
of a model (main graph first, then bodies in node and attribute order, depth first)."""

from __future__ import annotations

from collections.abc import Iterator

import onnx

_GRAPH, _GRAPHS = onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS


def bodies(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    """The graphs a node carries (If branches, Loop/Scan bodies, graphs of custom ops)."""
    for a in node.attribute:
        if a.type == _GRAPH:
            yield a.g
        elif a.type == _GRAPHS:
            yield from a.graphs


def graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """`graph` and every graph nested in it, preorder: the same order on every call, so two copies
    of a model (one inferred, one not) can be walked side by side."""
    stack = [graph]
    while stack:
        g = stack.pop()
        yield g
        nested = [b for n in g.node for b in bodies(n)]
        stack.extend(reversed(nested))
