"""GRF418 consecutive-slices."""

from __future__ import annotations

from ...findings import Severity
from ...patterns.slices import slice_merges
from ...rule import Context, Rule


class ConsecutiveSlices(Rule):
    """A `Slice` whose result only other `Slice`s read, or a `Slice` that keeps every element.

    ## What it does
    Reports a `Slice` with constant starts, ends, axes and steps (opset 10 and later) whose output is
    read only by `Slice`s with constant parameters that can be merged with it — on other axes, or on
    the same axis when both steps are 1 and the bounds are not negative — so that each reader can
    slice the first Slice's input directly; and a `Slice` whose every axis keeps everything (start 0,
    end past the dim, step 1).

    ## Why it breaks TensorRT
    Each Slice is a layer and a copy. Exporters emit slice-of-a-slice for `x[:, a:b][..., ::2]`-style
    indexing and full-range slices for `x[:, :]`; the STFT front end of audio models and YOLO's
    space-to-depth stem are built of them.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[4,8] x) => (float[2,4] y) <int64[1] s0 = {0}, int64[1] e2 = {2}, int64[1] a0 = {0},
            int64[1] a1 = {1}, int64[1] e4 = {4}> {
          t = Slice(x, s0, e2, a0)
          y = Slice(t, s0, e4, a1)
        }

    ## How to fix
    Slice the first input once with the combined parameters, or read the input when nothing is cut;
    `onnxdoctor fix` does it (`merge-slices`).

    ## Fix safety
    `merge-slices` is safe: the same elements are selected.

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX `Slice` (inputs starts/ends/axes/steps from opset 10; clamping of out-of-range bounds);
    onnxslim's slice-chain elimination.
    """

    code = "GRF418"
    name = "consecutive-slices"
    severity = Severity.INFO
    summary = "Slice read only by Slices it can be merged with, or a Slice that keeps everything"
    release_independent = True

    def check(self, ctx: Context):
        if not ctx.nodes_of("Slice"):
            return
        for g in ctx.model.graphs:
            if g.function is not None:
                continue
            for m in slice_merges(ctx.model, g):
                if m.noop:
                    text = "Slice keeps every element: its readers can read its input"
                else:
                    text = f"Slice read only by {len(m.readers)} Slice(s) that can slice its input directly"
                yield self.finding(ctx, text, node=m.first, tensor=m.first.output(0), versions=ctx.kb.versions,
                                   hint="onnxdoctor fix merges them")
