"""TRT132 opset-below-supported."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule


class OpsetBelowSupported(Rule):
    """The model's `ai.onnx` opset is older than the release officially supports.

    ## What it does
    Compares the model's default-domain opset with the lowest documented one (9 from TensorRT
    10.0; before that the parser only warns below opset 7).

    ## Why it breaks TensorRT
    Old op versions (e.g. opset-8 `Upsample`, `BatchNormalization` with `spatial`) are handled by
    legacy importer paths that are no longer tested; NVIDIA supports opset 9 and above.

    ## Example
    A model with `opset_import: ["" : 8]` checked against TensorRT 10.15.

    ## How to fix
    Convert the model to a newer opset (`onnx.version_converter.convert_version(model, 17)`).

    ## Fix safety
    `upgrade-opset` (safe) converts the model with the ONNX version converter to the release's
    minimum opset; the result is proven in ONNX Runtime like every rewrite.

    ## TensorRT versions
    Per release, from `opset_min` in `rules/trt/releases.toml`.

    ## Sources
    `docs/operators.md` 10.0+ ("inclusive range of opset 9 to ..."); NVIDIA ONNX opset guide
    ("Minimum opset 9"); `ModelImporter::importModel` (warning below 7).
    """

    code = "TRT132"
    name = "opset-below-supported"
    severity = Severity.WARNING
    summary = "opset below the release's documented minimum"

    def check(self, ctx: Context):
        opset = ctx.model.opset
        rel = ctx.release
        if opset and opset < rel.opset_min:
            yield self.finding(
                ctx,
                f"model uses ai.onnx opset {opset}; TensorRT {rel.version} supports opsets from {rel.opset_min}",
                versions=ctx.kb.versions_where(lambda r: opset < r.opset_min),
                hint=f"convert the model to opset >= {rel.opset_min} (onnx.version_converter)",
            )
