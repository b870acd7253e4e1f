"""GRF409 known-shape-computation."""

from __future__ import annotations

from ...findings import Severity
from ...patterns.shape_values import known_shape_actions
from ...rule import Context, Rule


class KnownShapeComputation(Rule):
    """A shape computation whose value is known without running the model.

    ## What it does
    Follows the values computed from `Shape` (through `Gather`, `Slice`, `Concat`, `Unsqueeze`,
    `Squeeze`, `Cast`, `Reshape`, `ReduceProd` and integer arithmetic) element by element, each element a number,
    a named (symbolic) input dim, or a dim of a tensor, using the dims ONNX shape inference found,
    and reports:

    - a computed value whose every element is a number: e.g. `Shape(x)[-1]` when `x`'s last dim is
      static (768) while its batch is not — a constant;
    - a `Reshape` whose computed shape has numbers and dims of the Reshape's own input at the same
      position: `Reshape(x, Concat(Shape(x)[0], Shape(x)[1], 12, 64))` is `Reshape(x, [0, 0, 12, 64])`
      (0 copies the input's dim; not with `allowzero=1`);
    - an `Expand` to a computed shape whose every element is 1 or the input's own dim at that
      position: it changes nothing.

    Shape computations that are constant as a whole (every dim static) are `constant-foldable-subgraph`'s.

    ## Why it breaks TensorRT
    TensorRT evaluates such chains as shape tensors on the host and cannot specialise the layers they
    feed: TorchScript exports compute every attention reshape this way, from dims that are static
    (the hidden size, the head size) or that Reshape could copy. With constants, the reshapes are
    static, the chains disappear (tens of nodes per layer), and other simplifications see through
    them.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[batch,seq,768] x) => (float[batch,seq,12,64] y) {
          s = Shape(x)
          i0 = Constant<value = int64 {0}>()
          i1 = Constant<value = int64 {1}>()
          b = Gather(s, i0)
          n = Gather(s, i1)
          ub = Unsqueeze(b, i0z)
          un = Unsqueeze(n, i0z)
          i0z = Constant<value = int64[1] {0}>()
          tail = Constant<value = int64[2] {12, 64}>()
          shape = Concat<axis = 0>(ub, un, tail)
          y = Reshape(x, shape)
        }

    ## How to fix
    Replace the computed values by constants (`[0, 0, 12, 64]` above) and remove what only they used;
    `onnxdoctor fix` does it (`fold-shape-computations`, which also runs ONNX shape inference with
    data propagation, so dims behind earlier computed reshapes are known too).

    ## Fix safety
    `fold-shape-computations` is safe: each constant holds the value the chain computes for every
    input the model accepts (named dims stand for the same size wherever the model names them).

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX `Reshape` (0 copies the input dim unless `allowzero=1`; -1 is inferred), `Expand`
    (bidirectional broadcasting), `Shape` (start/end); ONNX IR spec (dim_param: a named dimension
    variable); onnxslim and onnx-simplifier (shape-chain folding through symbolic shape inference).
    """

    code = "GRF409"
    name = "known-shape-computation"
    severity = Severity.INFO
    summary = "shape computation whose value is known without running the model"
    release_independent = True

    def check(self, ctx: Context):
        if not ctx.nodes_of("Shape"):
            return
        for g in ctx.model.graphs:
            if g.function is not None:
                continue
            for a in known_shape_actions(ctx.model, g):
                yield self.finding(ctx, a.text, node=a.node, tensor=a.tensor, versions=ctx.kb.versions,
                                   hint="onnxdoctor fix replaces it by a constant")
