"""MOD503 unused-suppression."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule


class UnusedSuppression(Rule):
    """A suppression in the model's metadata that suppresses nothing.

    ## What it does
    Models can silence findings in their own metadata (`metadata_props` key `onnxdoctor:ignore`,
    value `CODE[,CODE...]` for the whole model or `NODE_GLOB:CODE` for matching nodes, entries
    separated by commas or whitespace). An entry that matched no finding in this run is reported,
    so stale suppressions do not pile up (like ruff's `RUF100`); so is an entry naming no known
    rule. Entries for known rules that did not run (`--select`/`--ignore`) are not reported.

    ## Why it breaks TensorRT
    It does not; an unused suppression hides nothing today but will silently hide a future,
    possibly real, problem.

    ## Example
    `onnxdoctor:ignore = "TRT101, attn/*:TRT125"` on a model whose TopK nodes under `attn/` were
    fixed: the `TRT125` entry is now unused.

    ## How to fix
    Remove the entry from the model's `metadata_props` (e.g. with `onnx.helper.set_model_props`).

    ## Fix safety
    Display-only advice.

    ## TensorRT versions
    All releases (an entry may be used on one release and unused on another: check the release you deploy).

    ## Sources
    onnxdoctor's suppression mechanism (docs/suppression.md).
    """

    code = "MOD503"
    name = "unused-suppression"
    severity = Severity.INFO
    summary = "suppression in the model's metadata that matched nothing"

    def check(self, ctx: Context):
        # The engine applies suppressions after all rules ran and reports unused ones through
        # `report_unused`; there is nothing to compute from the graph alone.
        return ()

    def report_unused(self, ctx: Context, entries) -> list:
        return [
            self.finding(ctx, f"suppression {e.text!r} in metadata 'onnxdoctor:ignore' matched no finding",
                         versions=(ctx.target.trt,), hint="remove it from the model's metadata_props")
            for e in entries
        ]
