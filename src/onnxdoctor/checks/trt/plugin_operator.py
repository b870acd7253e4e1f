"""TRT103 plugin-operator."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule
from ._support import Resolution, groups_resolving


class PluginOperator(Rule):
    """A node that TensorRT will import through a plugin rather than a built-in layer.

    ## What it does
    Reports, for information, each node whose op type names a TensorRT built-in plugin
    (e.g. `EfficientNMS_TRT`) or a plugin named with `--plugin`.

    ## Why it breaks TensorRT
    It does not, if the plugin is registered before parsing: `trtexec` and Polygraphy load the
    built-in plugin library, but an application must call `initLibNvInferPlugins` (from 10.0 the
    parser no longer registers built-in plugins itself) or load its own plugin library. Otherwise
    parsing fails with "Plugin not found".

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,100,4] boxes, float[1,100,80] scores) => (int32[1,1] n) {
          n = EfficientNMS_TRT<score_threshold = 0.25, iou_threshold = 0.45, max_output_boxes = 100>(boxes, scores)
        }

    ## How to fix
    Make sure the plugin library is loaded where the engine is built (`trtexec --staticPlugins=` /
    `--dynamicPlugins=`, or `initLibNvInferPlugins` in code).

    ## Fix safety
    Display-only advice.

    ## TensorRT versions
    All; plugin lists per release are in `rules/trt/plugins.toml` (11.0 removed several plugins).

    ## Sources
    TensorRT OSS `plugin/README.md` per release; onnx-tensorrt `importFallbackPluginImporter`;
    docs/research/parser-facts.md (plugin registration at parse time).
    """

    code = "TRT103"
    name = "plugin-operator"
    severity = Severity.INFO
    summary = "node imported through a TensorRT plugin"

    def check(self, ctx: Context):
        for op, refs, versions in groups_resolving(ctx, Resolution.PLUGIN):
            src = "named with --plugin" if op in ctx.target.plugins else "built-in"
            for node in refs:
                yield self.finding(
                    ctx,
                    f"{op} is imported through the {src} TensorRT plugin of that name; it must be registered before parsing",
                    node=node,
                    hint="trtexec loads built-in plugins; in your own code call initLibNvInferPlugins or load the plugin library",
                    versions=versions,
                )
