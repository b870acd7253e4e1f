"""MOD505 undefined-opset-version."""

from __future__ import annotations

from ... import _onnx
from ...findings import Severity
from ...rule import Context, Rule

# Domains ONNX itself defines ('' is ai.onnx).
_ONNX_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training", "ai.onnx.preview")


class UndefinedOpsetVersion(Rule):
    """The model imports a version of an ONNX operator set that no ONNX release defines.

    ## What it does
    Compares each `opset_import` of an ONNX domain (`ai.onnx`, `ai.onnx.ml`, ...) with the range of
    versions the installed `onnx` package defines (its `schema_version_map`): a version below 1 or
    above the newest (for example `ai.onnx` 99) names operator semantics that do not exist.

    ## Why it breaks TensorRT
    Every operator's meaning (inputs, attributes, type constraints) is looked up by opset version;
    for a version no release defines there is nothing to look up. ONNX Runtime refuses to load
    such a model; the TensorRT parser imports ops by their current semantics, so whatever it builds
    is a guess. Usually the exporter wrote a corrupt or made-up version.

    ## Example
    `opset_import: [{domain: "", version: 99}]`.

    ## How to fix
    Re-export with a real opset (`torch.onnx.export(..., opset_version=17)`), or, if the graph was
    built by hand, set the version its operators were written for. If a newer ONNX release defines
    it, upgrade the `onnx` package onnxdoctor runs with.

    ## Fix safety
    No automatic fix: the intended version is not in the model.

    ## TensorRT versions
    All releases.

    ## Sources
    `onnx.defs.schema_version_map()` and `onnx.helper.VERSION_TABLE` (opset versions per ONNX
    release); ONNX Runtime `model_load_utils.h` (`ValidateOpsetForDomain`).
    """

    code = "MOD505"
    name = "undefined-opset-version"
    severity = Severity.ERROR
    release_independent = True
    summary = "an ONNX operator set version that no ONNX release defines"

    def check(self, ctx: Context):
        ranges = _onnx.extension().defs.schema_version_map()
        for o in ctx.model.proto.opset_import:
            domain = "" if o.domain == "ai.onnx" else o.domain
            if domain not in _ONNX_DOMAINS or domain not in ranges:
                continue
            low, high = ranges[domain]
            version = int(o.version)
            if low <= version <= high:
                continue
            shown = o.domain or "ai.onnx"
            yield self.finding(
                ctx, f"the model imports {shown} opset {version}; ONNX defines {shown} opsets {low} to {high} "
                     f"(onnx {_onnx_version()})",
                versions=ctx.kb.versions, hint=f"re-export with an {shown} opset between {low} and {high}",
            )


def _onnx_version() -> str:
    try:
        from importlib.metadata import version

        return version("onnx")
    except Exception:  # noqa: BLE001
        return "installed"
