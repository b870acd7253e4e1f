"""MOD502 missing-external-data."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule


class MissingExternalData(Rule):
    """An initializer's external data file is missing or too short.

    ## What it does
    Checks, without reading any weights, that every external-data file an initializer refers to
    exists beside the model and is long enough for the tensor's `offset` + `length`. (A location
    outside the model's folder is refused when the model is loaded: exit code 2.)

    ## Why it breaks TensorRT
    The parser reads the weights while building the network; a missing file fails the import
    (`Failed to open file`), often only after the model was copied without its `.data` file.

    ## Example
    `model.onnx` copied to another machine without `model.onnx.data`.

    ## How to fix
    Copy the data file next to the model (same relative path as `location`), or re-save the model
    with `onnx.save_model(..., save_as_external_data=True)`.

    ## Fix safety
    No automatic fix.

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX external data specification (`location`, `offset`, `length`); onnx-tensorrt weight
    import (`ModelImporter.cpp`, `WeightsContext`).
    """

    code = "MOD502"
    name = "missing-external-data"
    severity = Severity.ERROR
    summary = "external weights file missing or too short"
    release_independent = True

    def check(self, ctx: Context):
        for tensor, problem in ctx.model.external_problems:
            yield self.finding(ctx, f"initializer {tensor!r}: {problem}", tensor=tensor, versions=ctx.kb.versions,
                               hint="copy the data file next to the model")
