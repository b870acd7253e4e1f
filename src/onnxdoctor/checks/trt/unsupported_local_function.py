"""TRT104 unsupported-local-function."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule
from ._support import Resolution, groups_resolving


class UnsupportedLocalFunction(Rule):
    """A call to a model-local ONNX function on a release that cannot inline local functions.

    ## What it does
    Flags nodes that call a function defined in the model's `functions` list when the target
    release predates local-function support (TensorRT 8.6). Nodes *inside* function bodies are
    checked by the other rules as usual (their location starts with `function:`).

    ## Why it breaks TensorRT
    Local functions are imported (inlined) by the parser's `LocalFunctionImporter` from TensorRT
    9.0. Before that, a function call is an unknown op type and goes to the plugin fallback, which
    fails.

    ## Example
    A model exported with `torch.onnx.export(..., export_modules_as_functions=True)` calls
    functions such as `MyBlock` from the main graph.

    ## How to fix
    Inline the functions before deployment (`onnx.inliner.inline_local_functions`), or target
    TensorRT 9.0 or later.

    ## Fix safety
    Inlining is exact (safe): `onnxdoctor fix` inlines every local function
    (`inline-local-functions`).

    ## TensorRT versions
    8.6 (releases with `local_functions = false` in `rules/trt/releases.toml`).

    ## Sources
    onnx-tensorrt changelog 9.0 EA ("ONNX local functions"), `LocalFunctionImporter` in
    `ModelImporter.cpp` @ 9.0; docs/research/parser-facts.md.
    """

    code = "TRT104"
    name = "unsupported-local-function"
    severity = Severity.ERROR
    summary = "local function call on a release without local-function import"

    def check(self, ctx: Context):
        if not ctx.model.local_functions:
            return
        for op, refs, versions in groups_resolving(ctx, Resolution.FUNCTION_UNSUPPORTED):
            for node in refs:
                yield self.finding(
                    ctx,
                    f"calls local function {op!r}, which TensorRT {ctx.release.version} cannot import (local functions need 9.0+)",
                    node=node,
                    hint="inline local functions (onnx.inliner.inline_local_functions) or target TensorRT >= 9.0",
                    versions=versions,
                    fix=self.fix_by("inline-local-functions"),
                )
