"""TRT122 non-constant-input."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context
from ...rule_fixes import RUNTIME_AXIS_INPUT
from ._constraint_rule import ConstraintRule


class NonConstantInput(ConstraintRule):
    """An input that TensorRT needs at build time but that is computed at runtime.

    ## What it does
    Evaluates the `input_constant` constraints: e.g. `Reduce*` `axes` (opset 18+), `Pad`/`Slice`
    `axes` on releases before 10.3/10.4, `Squeeze`/`Unsqueeze` `axes`, `OneHot` `depth`, `CumSum`
    `axis`, `Dropout` `training_mode`. A value counts as constant when it is an initializer, a
    `Constant`, `Shape`/`Size` of a tensor whose shape is fully known, or is computed from those
    by shape-style ops (Cast, Gather, Concat, Slice, Unsqueeze, arithmetic, ...).

    ## Why it breaks TensorRT
    The importer reads these values while building the network (`ASSERT(inputs.at(1).is_weights()
    && "axes must be an initializer")`), so they must be known before any data flows.

    ## Example
        <ir_version: 8, opset_import: ["" : 18]>
        g (float[2,3] x, int64[1] axes) => (float[2,1] y) { y = ReduceSum<keepdims = 1>(x, axes) }

    ## How to fix
    Make the value an initializer or `Constant` (fold constants: `onnxdoctor fix` /
    `polygraphy surgeon sanitize --fold-constants`), or freeze input shapes (`--shape`) so that
    shape computations become constant.

    A `Dropout` whose `training_mode` comes from a graph input switches a random mask on at run
    time: no equivalent graph exists; export in inference mode or make the input a constant false.

    Where the importer accepts only real weights (`is_weights()`: an initializer or a `Constant`)
    and the value is constant only after propagation (e.g. `Cast(Constant)`), the finding is a
    warning that names the `fold-constants` rewrite: folded, the model imports.

    A single axis computed at run time (the axes/axis input of `CumSum`, `Squeeze`, `Unsqueeze`,
    `Slice` or a `Reduce*` op holding one value, on data of known rank) is cured by `If`s over the
    axes it can be, each branch with a constant axis (`runtime-axis-to-if`).

    ## Fix safety
    `fold-constants` and `runtime-axis-to-if` are exact (safe). Other values computed from runtime
    inputs have no automatic fix.

    ## TensorRT versions
    Per constraint, listed in each finding.

    ## Sources
    Each constraint's `source` field (importer assertions on `is_weights()` / constant shape
    tensors, operators.md "must be an initializer" / "build-time constant").
    """

    code = "TRT122"
    name = "non-constant-input"
    severity = Severity.ERROR
    summary = "input must be a build-time constant"
    kinds = frozenset({"input_constant"})
    hint_text = "make the value an initializer/Constant (fold constants) or freeze input shapes"

    def fix_for(self, ctx: Context, v):
        pos = v.constraint.params.get("input")
        if v.fix is None and pos is not None and RUNTIME_AXIS_INPUT.get(v.node.op_type) == pos:
            t = v.node.graph.type_of(v.node.input(pos))
            data = v.node.graph.type_of(v.node.input(0))
            one = t is not None and t.shape is not None and all(isinstance(d, int) for d in t.shape) \
                and all(d == 1 for d in t.shape)
            if one and data is not None and data.rank is not None and data.rank <= 8:
                return self.fix_by("runtime-axis-to-if")
        return super().fix_for(ctx, v)
