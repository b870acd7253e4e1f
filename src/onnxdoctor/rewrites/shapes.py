"""Shape passes: freezing input shapes given with --shape, folding shape computations whose values are known."""

from __future__ import annotations

import math

import onnx

from ..findings import Applicability
from ..shapes import freeze_inputs
from .._proto import node_count, unique_name
from ._gs import cleaned
from .control_flow import fold_and_inline
from .base import Outcome, Rewrite, RewriteContext


class FreezeShapes(Rewrite):
    """Fix dynamic input dimensions to the values given with `--shape`, then fold what became constant.

    ## What it does
    Writes the `--shape` dimensions into the graph inputs, re-runs shape inference and folds the
    shape computations (Shape -> Gather -> Concat -> Reshape chains) that are now constant, in the
    main graph and in control-flow bodies. An `If` whose condition became constant (`Shape(x)[0] == 1`)
    is replaced by the branch that runs, as `inline-constant-if` does: the other branch may not even
    be valid for the frozen shapes.

    ## When it applies
    Findings SHP204 (shape computation constant once inputs are fixed), SHP206 (Expand/Tile shape
    known only at runtime, constant once inputs are fixed) and SHP202 (dynamic input), only when
    `--shape` is given; otherwise it explains that it needs `--shape`. Refused, with the reason,
    when the frozen shapes make a control-flow branch invalid (a branch that runs only for other
    input sizes or values, such as another sample rate): ONNX Runtime would no longer load the model.

    ## Example
    `onnxdoctor fix model.onnx -o fixed.onnx --shape input_ids:1x128` turns the model static.

    ## Safety
    Safe for inputs of exactly those shapes — the result accepts no other shapes. The proof runs
    with the frozen shapes.

    ## Resolves
    SHP202, SHP204, SHP206
    """

    name = "freeze-shapes"
    phase = 10
    summary = "fix input dimensions from --shape and fold shape computations"
    applicability = Applicability.SAFE
    resolves = ("SHP202", "SHP204", "SHP206")

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        if not ctx.shapes:
            return Outcome(model, skipped=["needs --shape NAME:DIMS to know which input shapes to freeze"])
        out = onnx.ModelProto()
        out.CopyFrom(model)
        todo = {}
        for vi in out.graph.input:
            if vi.name in ctx.shapes:
                dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
                if dims != list(ctx.shapes[vi.name]):
                    todo[vi.name] = ctx.shapes[vi.name]
        if not todo:
            return Outcome(model, skipped=["inputs already have the --shape dimensions"])
        frozen = freeze_inputs(out, todo, "model")
        del out.graph.value_info[:]
        out = onnx.shape_inference.infer_shapes(out)
        before = node_count(out)
        # Conditions on shapes (`Shape(x)[k] == 1`) become constant: their If is inlined here, because
        # the branch not taken may not even type-check for the frozen shapes.
        out, inlined = fold_and_inline(out, ctx.max_constant_bytes)
        invalid = _branch_invalid_for(out)
        if invalid:
            shapes = ", ".join(f"{name}:{'x'.join(map(str, dims))}" for name, dims in todo.items())
            return Outcome(model, skipped=[
                f"with {shapes} a control-flow branch no longer type-checks ({invalid}): it runs only for other "
                "input shapes or values (another sample rate, another batch size), so freezing would make the "
                "model fail to load; freeze shapes that every branch accepts, or export the variant you deploy"])
        changes = [f"froze {name} to {'x'.join(map(str, todo[name]))}" for name in frozen]
        changes += inlined
        if node_count(out) < before:
            changes.append(f"folded {before - node_count(out)} shape node(s)" + (" (and inlined branches)" if inlined else ""))
        return Outcome(out, changes)


class FoldShapeComputations(Rewrite):
    """Replace shape computations whose values are known without running the model by constants.

    ## What it does
    Runs ONNX shape inference with data propagation (so the dims behind computed reshapes are known
    too), then replaces what GRF409 reports: a value computed from `Shape` whose every element is a
    number becomes an initializer; a `Reshape` whose computed shape is numbers and its input's own
    dims becomes a `Reshape` to a constant with 0 for those dims; an `Expand` to the input's own
    shape is removed. Repeats while that makes more dims known (at most 4 rounds), in every graph.
    What only the replaced chains used is removed by the cleanup that follows.

    ## When it applies
    GRF409 findings. No `--shape` needed: named dims stay dynamic.

    ## Example
    `Reshape(x, Concat(Shape(x)[0], Shape(x)[1], [12], [64]))` with `x: [batch, seq, 768]` becomes
    `Reshape(x, [0, 0, 12, 64])`; `Shape(x)[-1:]` becomes `[768]`.

    ## Safety
    Safe: every constant is the value the chain computes for every input the model accepts.

    ## Resolves
    GRF409
    """

    name = "fold-shape-computations"
    phase = 20
    summary = "replace shape computations known without running the model by constants"
    applicability = Applicability.SAFE
    resolves = ("GRF409",)

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        from ..patterns.shape_values import known_shape_actions
        from .._proto import graph_protos, rename_reads as _rename_inputs, taken_names

        counts = {"constant": 0, "reshape": 0, "expand": 0}
        current = model
        for _ in range(4):
            view = _propagated_view(current)
            out = onnx.ModelProto()
            out.CopyFrom(current)
            protos = graph_protos(out)
            taken = taken_names(out)
            done = 0
            for g in view.graphs:
                gp = protos.get(g.path)
                if gp is None or g.function is not None:
                    continue
                actions = known_shape_actions(view, g)
                if not actions:
                    continue
                mapping: dict[str, str] = {}
                drop: set[int] = set()
                for a in actions:
                    if a.kind == "expand":
                        mapping[a.tensor] = a.node.input(0)
                        drop.add(a.node.index)
                    else:
                        name = unique_name(taken, f"{a.tensor}_value")
                        gp.initializer.append(onnx.numpy_helper.from_array(a.value, name))
                        if a.kind == "constant":
                            mapping[a.tensor] = name
                        else:
                            gp.node[a.node.index].input[1] = name
                    counts[a.kind] += 1
                    done += 1
                if drop:
                    keep = [n for i, n in enumerate(gp.node) if i not in drop]
                    del gp.node[:]
                    gp.node.extend(keep)
                if mapping:
                    _rename_inputs(gp, mapping)
                    vis = [vi for vi in gp.value_info if vi.name not in mapping]
                    del gp.value_info[:]
                    gp.value_info.extend(vis)
            if not done:
                break
            current = cleaned(out)
        if current is model:
            return Outcome(model, skipped=["no shape computation with a known value"])
        changes = []
        if counts["constant"]:
            changes.append(f"replaced {counts['constant']} computed shape value(s) by constants")
        if counts["reshape"]:
            changes.append(f"gave {counts['reshape']} Reshape(s) a constant shape (0 copies the input's dim)")
        if counts["expand"]:
            changes.append(f"removed {counts['expand']} Expand(s) to the input's own shape")
        return Outcome(current, changes)


def _branch_invalid_for(model: onnx.ModelProto) -> str | None:
    """The type-inference error of a control-flow body when frozen shapes make one invalid, as ONNX
    Runtime reports it when loading the model (onnx's own inference does not descend into it)."""
    if not any(n.op_type in ("If", "Loop", "Scan") for n in model.graph.node):
        return None
    try:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 4
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - any load error; only a body's inference error is ours to explain
        msg = " ".join(str(e).split())
        if "Graph attribute inferencing failed" in msg:
            return msg.rsplit("Graph attribute inferencing failed:", 1)[-1].strip()[:200]
    return None


# onnx's data propagation allocates per element of 1-D tensors: not on models with big integer constants.
_DATA_PROP_MAX_ELEMENTS = 1 << 16


def _propagated_view(model: onnx.ModelProto):
    """The checked view of `model`, typed by ONNX shape inference with data propagation when that is
    cheap (no big integer initializers), else by the plain inference."""
    from ..model import from_proto

    big_ints = any(t.data_type in (6, 7, 12, 13) and t.data_location != onnx.TensorProto.EXTERNAL
                   and math.prod(t.dims) > _DATA_PROP_MAX_ELEMENTS for t in model.graph.initializer)
    if big_ints:
        return from_proto(model)
    view = from_proto(model, infer_shapes=False)
    try:
        view.attach_types(onnx.shape_inference.infer_shapes(model, data_prop=True))
    except Exception:  # noqa: BLE001 - the plain inference types what it can
        return from_proto(model)
    return view


REWRITES = (FreezeShapes, FoldShapeComputations)
