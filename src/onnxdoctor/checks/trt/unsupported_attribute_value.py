"""TRT121 unsupported-attribute-value."""

from __future__ import annotations

from ...findings import Severity
from ...model import dtype_name
from ._constraint_rule import ConstraintRule
from ._substitutes import small_int_fix


class UnsupportedAttributeValue(ConstraintRule):
    """An attribute value that the op's TensorRT importer rejects (or silently ignores).

    ## What it does
    Evaluates the `attr` and `attr_absent` constraints of `rules/trt/constraints.toml` for the
    target release: e.g. Resize `coordinate_transformation_mode=tf_crop_and_resize`, Resize
    `antialias=1` (10.0+), `ScatterND` `reduction`, pooling `dilations` other than 1, LSTM
    `layout=1`. Absent attributes are judged by their ONNX default. Attributes the parser silently
    ignores (changing the result) are warnings.

    ## Why it breaks TensorRT
    The importer or the static checker (`onnxOpCheckers.cpp`, 9.1+) fails the node with
    `UNSUPPORTED_NODE_ATTR` / an assertion such as `Assertion failed: mode != "tf_crop_and_resize"`.

    ## Example
        <ir_version: 8, opset_import: ["" : 18]>
        g (float[1,3,8,8] x, float[4] s) => (float[1,3,16,16] y) {
          y = Resize<mode = "linear", antialias = 1>(x, , s)
        }

    ## How to fix
    Re-export with a supported setting (the message lists the accepted values), or replace the
    node with an equivalent construction.

    ## Fix safety
    Where the same computation can be written with supported attributes or ops, an exact (safe)
    rewrite does it: `BatchNormalization` in training mode (`batch-norm-training-to-reductions`),
    `LpPool` with p other than 1, 2 (`lp-pool-to-pow-average-pool`), `Resize`
    `tf_crop_and_resize` with a full roi and `half_pixel_symmetric` with whole output sizes
    (`resize-equivalent-coordinate-mode`), a `Cast` to INT16, UINT16 or UINT32 inside the network
    (computed in INT32/INT64 with explicit wrap-around by `small-int-to-int32`). Otherwise no
    automatic fix: a different attribute value changes the result.

    ## TensorRT versions
    Per constraint (`since`/`until` in `rules/trt/constraints.toml`), listed in each finding.

    ## Sources
    Each constraint's `source` field: importer assertions in `onnxOpImporters.cpp` /
    `builtin_op_importers.cpp`, static checkers in `onnxOpCheckers.cpp`, and the Restrictions
    column of `docs/operators.md`.
    """

    code = "TRT121"
    name = "unsupported-attribute-value"
    severity = Severity.ERROR
    summary = "attribute value the importer rejects"
    kinds = frozenset({"attr", "attr_absent"})
    hint_text = "re-export with a supported attribute value"

    def fix_for(self, ctx, v):
        if v.constraint.op == "Cast" and v.constraint.params.get("attr") == "to":
            to = v.node.attr("to")
            name = dtype_name(to) if isinstance(to, int) else ""
            out = v.node.output(0)
            role = "output" if not v.node.graph.path and out in v.node.graph.outputs else "value"
            fix = small_int_fix(self.code, ctx.release, name, role, ctx.model.opset)
            if fix is not None:
                return fix
        return super().fix_for(ctx, v)
