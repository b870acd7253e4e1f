"""GRF407 duplicate-node."""

from __future__ import annotations

from ...findings import Severity
from ...patterns.duplicates import duplicates
from ...rule import Context, Rule


class DuplicateNode(Rule):
    """A node that computes exactly what an earlier node computes: same op, attributes and inputs.

    ## What it does
    Walks each graph in topological order and keys every node of the standard domain by its op type,
    its attributes and its inputs; a node whose key was seen before is a duplicate. Inputs count as
    the same when they are the same value, the outputs of nodes already found to be duplicates of
    each other, or small initializers (up to 4 KiB) with the same type, shape and bytes. Random ops
    and `Dropout` are never duplicates, nor nodes with subgraphs or of other domains. A duplicate
    whose output is a graph output is kept (the output needs its name).

    ## Why it breaks TensorRT
    Each copy becomes its own layer: TorchScript exports recompute the same
    `Shape → Gather → Unsqueeze → Concat` chain for Q, K and V of every attention layer and the same
    mask in every layer, so a BERT-base export carries over a hundred redundant nodes. The builder
    may merge some of them, but the parser imports them all and shape-tensor chains stay on the host.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2,4] x) => (float[2,4] y) {
          a = Relu(x)
          b = Relu(x)
          y = Add(a, b)
        }

    `b` is `a` computed a second time.

    ## How to fix
    Let the readers of the duplicate read the original and delete the duplicate; `onnxdoctor fix`
    does it (`dedupe-nodes`, common-subexpression elimination as onnxslim and onnxsim do).

    ## Fix safety
    `dedupe-nodes` is safe: a deterministic op given the same inputs and attributes computes the same
    values.

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX operator specs (the Random* ops, Multinomial, Bernoulli and training-mode Dropout are the
    standard ops whose outputs are not a function of their inputs); onnxslim `find_and_remove_replaceable_nodes`.
    """

    code = "GRF407"
    name = "duplicate-node"
    severity = Severity.INFO
    summary = "node that computes the same as an earlier one"
    release_independent = True

    def check(self, ctx: Context):
        for g in ctx.model.graphs:
            if len(g.nodes) < 2 or g.function is not None:
                continue
            for d in duplicates(ctx.model, g):
                node, orig = g.ref(d.index), g.ref(d.original)
                yield self.finding(
                    ctx, f"{node.op_type} computes the same as {orig.name!r} (same op, attributes and inputs)",
                    node=node, tensor=node.output(0) or None, versions=ctx.kb.versions,
                    hint=f"read {orig.output(0)!r} instead",
                )
