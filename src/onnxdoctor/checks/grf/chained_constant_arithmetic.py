"""GRF415 chained-constant-arithmetic."""

from __future__ import annotations

from ...findings import Severity
from ...patterns.constant_arithmetic import ADDITIVE, MULTIPLICATIVE, arithmetic_chains
from ...rule import Context, Rule


class ChainedConstantArithmetic(Rule):
    """Consecutive additions (or multiplications) of constants that one node can do.

    ## What it does
    Reports chains like `(x + c1) - c2` or `(x * c1) / c2` — each node `Add`/`Sub` (or `Mul`/`Div`)
    of the previous result and a constant (the constant second for `Sub` and `Div`), every
    intermediate read only by the next — when the constants' values are known: one `Add` of
    `c1 - c2` (one `Mul` of `c1 / c2`) computes the same. Integer chains are reported for `Add`, `Sub`
    and `Mul` only (integer division does not compose).

    ## Why it breaks TensorRT
    Each step is an elementwise layer; exporters produce such chains from normalization constants,
    scale factors applied twice, and decomposed ops. TensorRT fuses some elementwise chains, not all.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[4] x) => (float[4] y) <float a = {2.0}, float b = {0.5}> {
          t = Mul(x, a)
          y = Mul(t, b)
        }

    ## How to fix
    Compute the merged constant and apply it once; `onnxdoctor fix` does it (`merge-constant-arithmetic`).

    ## Fix safety
    `merge-constant-arithmetic` is safe: the same arithmetic, reassociated — values differ only by
    floating-point rounding (exact for integers).

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX `Add`, `Sub`, `Mul`, `Div` (multidirectional broadcasting; integer division truncates);
    onnxslim's elementwise constant folding.
    """

    code = "GRF415"
    name = "chained-constant-arithmetic"
    severity = Severity.INFO
    summary = "consecutive additions or multiplications of constants that one node can do"
    release_independent = True

    def check(self, ctx: Context):
        if not any(ctx.nodes_of(op) for op in (*ADDITIVE, *MULTIPLICATIVE)):
            return
        for g in ctx.model.graphs:
            if g.function is not None:
                continue
            for c in arithmetic_chains(ctx.model, g):
                yield self.finding(ctx, c.text, node=g.ref(c.nodes[-1]), tensor=c.y, versions=ctx.kb.versions,
                                   hint="onnxdoctor fix merges the constants")
