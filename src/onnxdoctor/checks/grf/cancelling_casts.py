"""GRF406 cancelling-casts."""

from __future__ import annotations

from ...findings import Severity
from ...model import dtype_name
from ...patterns.noops import needed, noop
from ...rule import Context, Rule


class CancellingCasts(Rule):
    """Two Casts in a row that convert a tensor to a wider type and back, exactly.

    ## What it does
    Reports a `Cast` whose input is another `Cast`'s output and whose target type is the original
    type, when the intermediate type holds every value of the original exactly (FLOAT → DOUBLE →
    FLOAT, FLOAT16 → FLOAT → FLOAT16, INT32 → INT64 → INT32, BOOL → INT32 → BOOL). Round trips through
    a narrower type (FLOAT → FLOAT16 → FLOAT rounds; INT64 → INT32 → INT64 wraps) change values and are
    not reported.
    As for every no-op (GRF405), a graph output computed from a graph input, an initializer or an
    outer-scope value keeps the node: it gives the output its name, and is not reported.

    ## Why it breaks TensorRT
    The round trip costs two cast layers and, through DOUBLE or INT64, a type TensorRT does not have
    natively (DOUBLE is cast down with a warning; INT64 needs 10.x). Exporters produce these around
    ops whose PyTorch implementation upcasts.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[4] x) => (float[4] y) {
          d = Cast<to = 11>(x)
          f = Cast<to = 1>(d)
          y = Relu(f)
        }

    ## How to fix
    Read the original tensor directly; `onnxdoctor fix` does it (`remove-noops`), and removes the
    first Cast too when nothing else reads it.

    ## Fix safety
    `remove-noops` is safe here: the round trip is exact for every value.

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX Cast spec (conversion rules); IEEE 754 binary16/32/64 and bfloat16 formats.
    """

    code = "GRF406"
    name = "cancelling-casts"
    severity = Severity.INFO
    summary = "Cast to a wider type and back"
    release_independent = True

    def check(self, ctx: Context):
        for node in ctx.nodes_of("Cast"):
            n = noop(ctx.model, node)
            g = node.graph
            if n is None or n.kind != "cast-round-trip" or needed(g, n.input, n.output):
                continue
            first = g.nodes[n.first]
            both = len(g.consumers.get(first.output[0], ())) == 1 and first.output[0] not in g.outputs
            tail = "both Casts can be removed" if both else "the second Cast can be removed (the first has other readers)"
            src, via = dtype_name(n.src), dtype_name(n.via)
            yield self.finding(
                ctx, f"Cast {src} → {via} → {src} is an exact round trip: {tail}",
                node=node, tensor=n.output, versions=ctx.kb.versions, hint="onnxdoctor fix removes it",
            )
