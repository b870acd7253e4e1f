"""GRF403 unused-initializer."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule
from ...dtype_limits import ITEMSIZE
from ._util import human_bytes, nested_uses, type_text


class UnusedInitializer(Rule):
    """An initializer that no node, graph output or subgraph reads.

    ## What it does
    Reports each initializer of a graph that is not an input of any node, not a graph output, and
    not read by name from a nested `If`/`Loop`/`Scan` body.

    ## Why it breaks TensorRT
    Unused weights are dead bytes: they inflate the model file and the parser still converts them
    (`trtexec --onnx` loads them all), and an unused initializer that is also listed as a graph
    input becomes a network input TensorRT asks you to bind. Exporters leave them behind after
    graph surgery or when a module is traced but not used.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[4] x) => (float[4] y) <float[4] w = {1, 2, 3, 4}> { y = Relu(x) }

    ## How to fix
    Delete the initializer; `onnxdoctor fix` does it (`cleanup`). Initializers read only by dead
    nodes are removed together with those nodes (`dead-node`).

    ## Fix safety
    `cleanup` is safe: nothing reads the tensor.

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX IR spec (initializers, graph inputs with defaults); onnx-graphsurgeon `Graph.cleanup`
    (`remove_unused_graph_inputs`).
    """

    code = "GRF403"
    name = "unused-initializer"
    severity = Severity.INFO
    summary = "initializer nothing reads"
    release_independent = True

    def check(self, ctx: Context):
        for g in ctx.model.graphs:
            if not g.initializers:
                continue
            outputs = set(g.outputs)
            nested = None
            for name, t in g.initializers.items():
                if g.consumers.get(name) or name in outputs:
                    continue
                if nested is None:
                    nested = nested_uses(ctx, g)
                if name in nested:
                    continue
                n = 1
                for d in t.dims:
                    n *= int(d)
                extra = " (also a graph input)" if name in g.inputs else ""
                size = human_bytes(n * ITEMSIZE.get(t.data_type, 1))
                yield self.finding(
                    ctx, f"initializer {name!r} ({type_text(t.data_type, t.dims)}, {size}) is never used{extra}",
                    tensor=name, subgraph=g.path, versions=ctx.kb.versions, hint="onnxdoctor fix removes it",
                )
