"""GRF416 redundant-layout-chain."""

from __future__ import annotations

from ...findings import Severity
from ...patterns.layout_chains import VIEW_OPS, layout_chains
from ...rule import Context, Rule


class RedundantLayoutChain(Rule):
    """Consecutive reshapes or transposes that one node (or none) can replace.

    ## What it does
    Follows chains of `Reshape`/`Flatten`/`Squeeze`/`Unsqueeze` (which keep the order of the
    elements) and chains of `Transpose`, where each intermediate result has no other reader, and
    reports a chain when:

    - its output has the same shape as its input (every dim equal: static, or the same named dim),
      or it is a single `Transpose` with the identity permutation — it does nothing;
    - it is two or more `Transpose`s: one with the composed permutation replaces them;
    - it is two or more `Unsqueeze`, or of `Squeeze`, with constant axes: one node with the combined
      axes;
    - otherwise, its output shape can be written as one constant `Reshape` target (static dims, or
      the input's own dim at the same position as 0), or its last node is a `Reshape` to a constant
      shape whose 0s can be resolved.

    ## Why it breaks TensorRT
    Every reshape or transpose is a layer (a shuffle) between the layers that compute; exporters
    emit `Squeeze`→`Unsqueeze` round trips, reshape pairs around linear layers and transpose pairs in
    attention. TensorRT's optimizer merges some shuffles, but only those it can prove equal, and the
    rest cost copies.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2,3,4] x) => (float[2,3,4] y) {
          t = Transpose<perm = [0, 2, 1]>(x)
          r = Relu(t)
          y = Transpose<perm = [0, 2, 1]>(r)
          a = Transpose<perm = [1, 0, 2]>(x)
          b = Transpose<perm = [1, 0, 2]>(a)
        }

    `a → b` is two transposes that cancel (and `b` is dead); the pair around `Relu` is not a chain.

    ## How to fix
    Replace the chain by the one node, or let the readers read its input; `onnxdoctor fix` does it
    (`collapse-layout-chains`).

    ## Fix safety
    `collapse-layout-chains` is safe: the elements and their order are the same.

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX `Reshape` (0 copies the input dim, -1 inferred), `Flatten`, `Squeeze`, `Unsqueeze`,
    `Transpose` specs; onnxslim's reshape and transpose chain eliminations.
    """

    code = "GRF416"
    name = "redundant-layout-chain"
    severity = Severity.INFO
    summary = "consecutive reshapes or transposes one node (or none) can replace"
    release_independent = True

    def check(self, ctx: Context):
        if not any(ctx.nodes_of(op) for op in (*VIEW_OPS, "Transpose")):
            return
        for g in ctx.model.graphs:
            if g.function is not None:
                continue
            for c in layout_chains(ctx.model, g):
                yield self.finding(ctx, c.text, node=g.ref(c.nodes[-1]), tensor=c.y, versions=ctx.kb.versions,
                                   hint="onnxdoctor fix collapses it")
