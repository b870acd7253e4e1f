"""GRF408 identity-arithmetic."""

from __future__ import annotations

from ...findings import Severity
from ...patterns.noops import IDENTITIES, may_be_neutral, needed, noop
from ...rule import Context, Rule


class IdentityArithmetic(Rule):
    """`x + 0`, `x - 0`, `x * 1` or `x / 1` with a constant that does not change the shape of `x`.

    ## What it does
    Reports `Add` and `Mul` with a constant operand whose every element is 0 (resp. 1), and `Sub` and
    `Div` whose second operand is such a constant, when broadcasting the constant leaves `x`'s shape
    unchanged: the constant has no more dims than `x`, and each of its dims (aligned from the right)
    is 1 or equal to `x`'s static dim there. A zero bias that would broadcast `x` to a bigger shape is
    not a no-op and is not reported.
    As for every no-op (GRF405), a graph output computed from a graph input, an initializer or an
    outer-scope value keeps the node: it gives the output its name, and is not reported.

    ## Why it breaks TensorRT
    Each one is an elementwise layer (and a weight) that computes nothing. Models built with
    zero-initialised biases or unit scales (a fresh `nn.Linear`'s bias, LayerNorm weights folded
    elsewhere, quantization leftovers) carry dozens.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2,4] x) => (float[2,4] y) <float[4] b = {0, 0, 0, 0}> {
          a = Add(x, b)
          y = Relu(a)
        }

    ## How to fix
    Read `x` directly; `onnxdoctor fix` does it (`remove-noops`).

    ## Fix safety
    `remove-noops` is safe: the values are identical (for `x + 0` the one exception is `-0.0`, which
    becomes `+0.0` and compares equal).

    ## TensorRT versions
    All releases.

    ## Sources
    IEEE 754 (x + (+0) = x except for x = -0; x * 1 and x / 1 exact); ONNX broadcasting rules
    (multidirectional broadcasting); onnxslim's elimination of `Add`/`Mul` identities.
    """

    code = "GRF408"
    name = "identity-arithmetic"
    severity = Severity.INFO
    summary = "x + 0, x - 0, x * 1 or x / 1 that leaves x unchanged"
    release_independent = True

    def check(self, ctx: Context):
        model = ctx.model
        for g in model.graphs:
            positions = [(IDENTITIES[op], g.op_positions.get(op, ())) for op in IDENTITIES]
            if not any(p for _, p in positions):
                continue
            is_constant = model.constants(g).is_constant
            ins_ = g.node_inputs
            # neutral -> constant -> may_be_neutral: a few scalars (an epsilon, a 0.5) are read by hundreds of nodes
            verdicts: dict[int, dict[str, bool]] = {0: {}, 1: {}}
            for (neutral, either), idxs in positions:
                verdict = verdicts[neutral]
                for i in idxs:
                    ins = ins_[i]
                    # most arithmetic has no constant operand, or one that is visibly not neutral (or in
                    # external data): decided here, before the no-op detector
                    if len(ins) != 2 or not (
                        is_constant(ins[1]) and _may_be_neutral(g, ins[1], neutral, verdict)
                        or either and is_constant(ins[0]) and _may_be_neutral(g, ins[0], neutral, verdict)
                    ):
                        continue
                    node = g.ref(i)
                    n = noop(model, node)
                    if n is None or needed(g, n.input, n.output):
                        continue
                    yield self.finding(ctx, f"{n.what}: the output equals {n.input!r}", node=node, tensor=n.output,
                                       versions=ctx.kb.versions, hint="onnxdoctor fix removes it")


def _may_be_neutral(g, name: str, neutral: int, verdict: dict[str, bool]) -> bool:
    """may_be_neutral(g, name, neutral), once per constant (`verdict`: the answers so far)."""
    hit = verdict.get(name)
    if hit is None:
        hit = verdict[name] = may_be_neutral(g, name, neutral)
    return hit
