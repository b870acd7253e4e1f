"""TRT131 opset-above-supported."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule


class OpsetAboveSupported(Rule):
    """The model's `ai.onnx` opset is newer than the release documents.

    ## What it does
    Compares the model's default-domain opset with the highest opset the release's parser
    documents (17 for 8.6, 19 for 9.x, 20 for 10.0/10.1, 24 for 10.14-11.1, 25 for 11.5).

    ## Why it breaks TensorRT
    It may not: the parser has no global opset gate. But importers implement the op versions they
    know; a newer op version can change attributes or inputs (e.g. GridSample-20 renamed modes,
    GroupNormalization-21 changed scale/bias shapes) and then fails, or imports with the old
    semantics. Hence a warning, not an error.

    ## Example
    A model exported with `opset_version=21` checked against TensorRT 8.6 (documented up to 17).

    ## How to fix
    Export with an opset at or below the documented maximum, or target a newer release.

    ## Fix safety
    Display-only advice (converting opsets downwards is not always possible).

    ## TensorRT versions
    Per release, from `opset_max` in `rules/trt/releases.toml`.

    ## Sources
    Header of each release's `docs/operators.md` ("supports operators in the inclusive range of
    opset 9 to opset N"); `ModelImporter::importModel` (no opset check, only a warning below 7).
    """

    code = "TRT131"
    name = "opset-above-supported"
    severity = Severity.WARNING
    summary = "opset above the release's documented maximum"

    def check(self, ctx: Context):
        opset = ctx.model.opset
        rel = ctx.release
        if opset and opset > rel.opset_max:
            yield self.finding(
                ctx,
                f"model uses ai.onnx opset {opset}; TensorRT {rel.version} documents opsets up to {rel.opset_max}",
                versions=ctx.kb.versions_where(lambda r: opset > r.opset_max),
                hint=f"export with opset <= {rel.opset_max}, or target a newer TensorRT",
            )
