"""Shape passes: freezing input shapes given with --shape, folding shape computations whose values are known."""

from __future__ import annotations

import math
import os
from collections import Counter

import onnx

from .._proto import graphs, node_count, unique_name
from ..dtype_limits import INT32_MAX
from ..findings import Applicability
from ..shapes import freeze_inputs
from ._gs import cleaned
from .base import Outcome, Rewrite, RewriteContext
from .control_flow import fold_and_inline


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
    Types the graph with ONNX shape inference with data propagation (where it makes up a dim that
    the op's own arithmetic fixes, the dim is named and inference runs again: a Reshape's `-1` that
    is one input dim, as in `Reshape(x[n, 2048], [-1, 2048, 1])`, a Slice that takes an axis whole),
    and with ONNX Runtime's
    symbolic shape inference (dims keep their names through the whole graph: `batch` stays `batch`
    behind computed reshapes and position slices) where a Reshape or Expand takes a computed shape
    that ONNX's inference leaves with an element, or a dim it is compared with, that is neither a
    number nor a dim of the graph inputs (elsewhere the symbolic inference would know no more), and
    the fold such an element blocks is not ruled out on two probes (the graph typed by ONNX's
    inference with the inputs' dynamic dims set to numbers: an element that is two different
    numbers is no constant, one unequal to the dim it must equal is not that dim), then
    replaces what GRF409 reports: a value computed from `Shape` whose every element is a
    number becomes an initializer; a `Reshape` whose computed shape is numbers and its input's own
    dims becomes a `Reshape` to a constant with 0 for those dims; an `Expand` to the input's own
    shape is removed. Repeats while that makes more dims known (at most 4 rounds), in every graph.
    What only the replaced chains used is removed by the cleanup that follows.

    ## When it applies
    GRF409 findings; and in the first iteration of `fix` without one, when the ruleset selects GRF409
    (what the symbolic inference finds, `check` does not see). No `--shape` needed: named dims stay
    dynamic. The symbolic inference's results are used only when it types every value and every
    pair of dims it had to assume equal (dims that broadcast) is equal for every input that runs
    (the same name, or `Min(512, seq)` beside `seq`); else ONNX's inference is used.

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
    unprompted = True  # `check` types the graph with ONNX's inference only: it sees fewer of them

    def may_change(self, model: onnx.ModelProto) -> bool:
        return any(n.op_type == "Shape" for g in graphs(model.graph) for n in g.node)

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        from .._proto import graph_protos, taken_names
        from .._proto import rename_reads as _rename_inputs
        from ..patterns.shape_values import known_shape_actions

        if not self.may_change(model):
            return Outcome(model, skipped=["no Shape node: no shape computation"])
        counts = {"constant": 0, "reshape": 0, "expand": 0}
        current = model
        # ONNX's inference first, round after round; ONNX Runtime's symbolic inference (0.5-1 s on a
        # transformer, and sympy's import) once, when a Reshape/Expand shape computed from a Shape
        # is left, then ONNX's again for what its constants made known
        symbolic = tried = False
        for _ in range(6):
            view = _propagated_view(current, symbolic=symbolic)
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
                if symbolic or tried or not _symbolic_may_help(view, current):
                    break
                symbolic = tried = True
                continue
            symbolic = False
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
        from ..prove import onnxruntime, session_options

        onnxruntime().InferenceSession(model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - any load error; only a body's inference error is ours to explain
        msg = " ".join(str(e).split())
        if "Graph attribute inferencing failed" in msg:
            return msg.rsplit("Graph attribute inferencing failed:", 1)[-1].strip()[:200]
    return None


# onnx's data propagation allocates per element of 1-D tensors: not on models with big integer constants.
_DATA_PROP_MAX_ELEMENTS = 1 << 16


def _propagated_view(model: onnx.ModelProto, *, symbolic: bool = True):
    """The checked view of `model`, typed by ONNX Runtime's symbolic shape inference when it types the
    whole model soundly, else by ONNX shape inference with data propagation when that is cheap (no
    big integer initializers), else by the plain inference."""
    from ..model import from_proto

    big_ints = any(t.data_type in (6, 7, 12, 13) and t.data_location != onnx.TensorProto.EXTERNAL
                   and math.prod(t.dims) > _DATA_PROP_MAX_ELEMENTS for t in model.graph.initializer)
    if big_ints:
        return from_proto(model)
    view = from_proto(model, infer_shapes=False)
    # ONNX Runtime's inference (and sympy's import) is worth it where a Reshape or Expand takes a
    # computed shape: the dims it knows that ONNX's inference does not are what lets those fold
    inits = {t.name for g in graphs(model.graph) for t in g.initializer} if symbolic else set()
    computed = symbolic and any(n.op_type in ("Reshape", "Expand") and len(n.input) > 1 and n.input[1] not in inits
                   for g in graphs(model.graph) for n in g.node)
    typed = _symbolic_types(model) if symbolic and computed else None
    if typed is not None:
        view.attach_types(typed)
        return view
    try:
        view.attach_types(_inferred_with_reshape_dims(model))
    except Exception:  # noqa: BLE001 - the plain inference types what it can
        return from_proto(model)
    return view


def _inferred_with_reshape_dims(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` typed by ONNX's inference with data propagation, where the dim a Reshape's `-1` makes
    is named when it is one of the input's own dims: ONNX's inference gives it a fresh name
    (`Reshape(x[n, 2048], [-1, 2048, 1])` -> `[unk__0, 2048, 1]`), so nothing after it is known to
    have `x`'s first dim. The -1 is the element count over the other elements, a quotient of
    products; where that is one dim of the input (or a number), the output's annotation says so and
    the inference runs again from it (at most 8 times: one more such dim each): what ONNX Runtime's symbolic inference
    (sympy's import: ~0.3 s and ~33 MB) knows of these Reshapes, by the op's own arithmetic."""
    typed = onnx.shape_inference.infer_shapes(model, data_prop=True)
    named: dict[tuple[int, str], onnx.ValueInfoProto] = {}
    for _ in range(8):
        found = {key: vi for key, vi in _reshape_dims(model, typed).items()
                 if key not in named or named[key] != vi}
        if not found:
            break
        named.update(found)
        given = onnx.ModelProto()
        given.CopyFrom(model)
        protos = list(graphs(given.graph))
        for (k, name), vi in named.items():
            gp = protos[k]
            kept = [v for v in gp.value_info if v.name != name]
            del gp.value_info[:]
            gp.value_info.extend([*kept, vi])
        typed = onnx.shape_inference.infer_shapes(given, data_prop=True)
    return typed


def _reshape_dims(model: onnx.ModelProto, typed: onnx.ModelProto) -> dict[tuple[int, str], onnx.ValueInfoProto]:
    """The Reshape and Slice outputs of `typed` (graph index in `graphs()` order, name) with a dim
    ONNX's inference made up that the op's arithmetic names (_op_dims), as their annotations with
    that dim replaced. A dim named after a graph input's dim stays (it is that dim already, or
    another input's, which the op's arithmetic cannot tell apart); the other names are made up, by
    ONNX's inference or by the exporter's own (tf2onnx's `unk__2`), and say nothing of their value."""
    own = {d.dim_param for vi in model.graph.input if vi.type.HasField("tensor_type")
           for d in vi.type.tensor_type.shape.dim if d.dim_param}
    found: dict[tuple[int, str], onnx.ValueInfoProto] = {}
    outer_values: dict[str, list] = {}
    for k, g in enumerate(graphs(typed.graph)):
        infos = {vi.name: vi for vi in (*g.input, *g.value_info, *g.output) if vi.type.HasField("tensor_type")}
        values = {**outer_values, **_small_int_constants(g)}
        if k == 0:
            outer_values = values
        for n in g.node:
            if n.op_type not in ("Reshape", "Slice") or len(n.input) < 2 or not n.output:
                continue
            src, dst = infos.get(n.input[0]), infos.get(n.output[0])
            if src is None or dst is None or not src.type.tensor_type.HasField("shape") \
                    or not dst.type.tensor_type.HasField("shape"):
                continue
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in src.type.tensor_type.shape.dim]
            named = _op_dims(n, dims, values)
            out = dst.type.tensor_type.shape.dim
            vi = None
            for a, dim in named.items():
                if a >= len(out):
                    continue
                d = out[a]
                if d.HasField("dim_value") or (d.dim_param and (d.dim_param in own or d.dim_param == dim)):
                    continue
                if vi is None:
                    vi = onnx.ValueInfoProto()
                    vi.CopyFrom(dst)
                target = vi.type.tensor_type.shape.dim[a]
                if isinstance(dim, int):
                    target.dim_value = dim
                else:
                    target.dim_param = dim
            if vi is not None:
                found[(k, dst.name)] = vi
    return found


# A Slice end from which an axis is taken whole: no dim of a tensor that runs reaches a billion (TF and
# JAX exports write 10**9 for "to the end"; INT32_MAX and INT64_MAX are the other usual ones).
_WHOLE_AXIS_END = 10**9


def _op_dims(node: onnx.NodeProto, dims: list, values: dict[str, list[int]]) -> dict[int, int | str]:
    """Output dims of Reshape or Slice `node` (input dims `dims`: numbers, names, None) that its
    arithmetic fixes where ONNX's inference gives up, by axis: a Reshape's -1 (_reshape_dims_of);
    a Slice's axis taken whole (start 0, step 1, an end of _WHOLE_AXIS_END or more) keeps its dim."""
    if node.op_type == "Reshape":
        shape = values.get(node.input[1])
        if shape is None:
            return {}
        allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)
        dim = _reshape_dims_of(dims, shape, allowzero)
        return {} if dim is None else {shape.index(-1): dim}
    ins = [values.get(t) if t else None for t in node.input[1:5]]
    starts, ends = ins[0], ins[1] if len(ins) > 1 else None
    if starts is None or ends is None or len(starts) != len(ends) or not dims:
        return {}
    axes = ins[2] if len(ins) > 2 and node.input[3] else list(range(len(starts)))
    steps = ins[3] if len(ins) > 3 and node.input[4] else [1] * len(starts)
    if axes is None or steps is None or len(axes) != len(starts) or len(steps) != len(starts):
        return {}
    out: dict[int, int | str] = {}
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis + len(dims) if axis < 0 else axis
        if 0 <= axis < len(dims) and step == 1 and start == 0 and end >= _WHOLE_AXIS_END and isinstance(dims[axis], str):
            out[axis] = dims[axis]
    return out


def _small_int_constants(g: onnx.GraphProto) -> dict[str, list[int]]:
    """The 1-D integer constants of graph `g` of at most 16 elements (initializers and Constant nodes)."""
    from onnx import numpy_helper

    out: dict[str, list[int]] = {}
    tensors = [(t.name, t) for t in g.initializer]
    tensors += [(n.output[0], n.attribute[0].t) for n in g.node if n.op_type == "Constant" and n.output
                and len(n.attribute) == 1 and n.attribute[0].name == "value"]
    for name, t in tensors:
        if t.data_type in (6, 7) and len(t.dims) == 1 and t.dims[0] <= 16 and t.data_location != onnx.TensorProto.EXTERNAL:
            out[name] = [int(v) for v in numpy_helper.to_array(t)]
    return out


def _reshape_dims_of(dims: list, shape: list[int], allowzero: bool) -> int | str | None:
    """The dim a Reshape of a tensor of `dims` (numbers and names; None unknown) to the constant
    `shape` gives its `-1`: the element count over the other elements when that quotient is a number
    or one dim name alone; None otherwise (no -1, an unknown dim, a quotient of several names)."""
    if shape.count(-1) != 1 or any(d is None for d in dims) or any(s < -1 for s in shape):
        return None
    rest = []
    for a, s in enumerate(shape):
        if s == -1:
            continue
        if s == 0 and not allowzero:
            if a >= len(dims):
                return None
            rest.append(dims[a])
        else:
            rest.append(s)
    (num_coef, num_names), (den_coef, den_names) = _monomial(dims), _monomial(rest)
    if den_coef == 0 or num_coef % den_coef or den_names - num_names:
        return None
    coef, names = num_coef // den_coef, num_names - den_names
    if not names:
        return coef
    if coef == 1 and sum(names.values()) == 1:
        return next(iter(names))
    return None


def _symbolic_types(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """`model` typed by ONNX Runtime's symbolic shape inference (onnxruntime.tools.symbolic_shape_infer):
    dims named consistently through the whole graph (`batch` stays `batch` behind a computed Reshape,
    `Min(512, sequence)` where a slice clips it). None when it does not type every value, or when
    it had to assume two dims equal that a valid input could make differ (its "auto merge" of dims
    that broadcast: sound only when neither side can be 1 alone, e.g. `Min(512, s)` and `s`).

    Driven the way its `infer_shapes` does, without that function's side effect (it saves the
    partial model into the working directory when inference is incomplete)."""
    import logging

    SymbolicShapeInference = _symbolic_shape_inference()
    if SymbolicShapeInference is None or not all(hasattr(SymbolicShapeInference, a) for a in ("_preprocess", "_infer_impl", "_update_output_from_vi",
                                                            "_add_suggested_merge")):
        return None
    from .opset import _external_as_inputs, _inputs_as_external

    class Recording(SymbolicShapeInference):
        def _add_suggested_merge(self, symbols, apply=False):
            # its result is not used after an unsound merge: stop there (nudenet-320n: 2 of its 3 s)
            if not _sound_merge(list(symbols)):
                raise _UnsoundMerge
            return super()._add_suggested_merge(symbols, apply)

        def _infer_Resize(self, node):  # noqa: N802 - the name ONNX Runtime's dispatcher calls
            # Its handler runs sympy.simplify on floor(dim * scale): seconds per Resize once the dims
            # are nested floors (YOLO necks: 12.6 s of one fix). With a scale that is an integer or
            # 1/integer the floor needs no simplify (the exact rational is the float's value, and
            # sympy folds floor(k * d) for integer d itself); other Resizes keep its handler.
            dims = _resize_dims(self, node)
            if dims is None:
                return super()._infer_Resize(node)
            self._update_computed_dims(dims)
            vi = self.known_vi_[node.output[0]]
            vi.CopyFrom(onnx.helper.make_tensor_value_info(
                node.output[0], self.known_vi_[node.input[0]].type.tensor_type.elem_type,
                [int(d) if getattr(d, "is_number", False) or isinstance(d, int) else str(d) for d in dims]))

    log = logging.getLogger(SymbolicShapeInference.__module__)
    level = log.level
    log.setLevel(logging.CRITICAL)
    # The weight store's stubs go in as graph inputs of their type and dims: it reads the values of the
    # initializers an op takes (an Add's bias too), and a stub's data are not in the model (they are
    # never shape data either). ppocrv5-rec's inference failed on one.
    given, stubs, added = _external_as_inputs(model)
    try:
        inference = Recording(INT32_MAX, True, False, 0)  # int_max: "unbounded" Slice ends
        inference._preprocess(given)
        complete = False
        while inference.run_:
            complete = inference._infer_impl()
        inference._update_output_from_vi()
    except Exception:  # noqa: BLE001 - an op it does not know, a value it cannot read: the plain inference types it
        return None
    finally:
        log.setLevel(level)
    if not complete:
        return None
    return _inputs_as_external(inference.out_mp_, stubs, added)


class _UnsoundMerge(Exception):
    """ONNX Runtime's symbolic inference assumed two dims equal that a valid input could make differ."""


def _symbolic_shape_inference():
    """onnxruntime.tools.symbolic_shape_infer's SymbolicShapeInference, or None. Loaded from its file:
    the `onnxruntime.tools` package imports torch when it is installed (seconds, for nothing here)."""
    import importlib.util
    import sys

    name = "onnxdoctor._ort_symbolic_shape_infer"
    module = sys.modules.get(name)
    if module is None:
        from .._memory import release

        release()  # sympy's import (~33 MB) stays for the run: on what is freed, not beside it
        try:
            import sympy  # noqa: F401 - the module's symbolic algebra (a dependency of onnxdoctor, not of onnxruntime)

            spec = importlib.util.find_spec("onnxruntime")
            if spec is None or not spec.submodule_search_locations:
                return None
            path = os.path.join(list(spec.submodule_search_locations)[0], "tools", "symbolic_shape_infer.py")
            if not os.path.isfile(path):
                return None
            file_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(file_spec)
            sys.modules[name] = module
            file_spec.loader.exec_module(module)
        except Exception:  # noqa: BLE001 - no sympy, another layout: the plain inference types the graph
            sys.modules.pop(name, None)
            return None
    return getattr(module, "SymbolicShapeInference", None)


def _resize_dims(inference, node) -> list | None:
    """The output dims of Resize `node` in ONNX Runtime's symbolic inference, when its scales are
    constants that are each an integer k or exactly 1/k (floor(d * k), floor(d / k), as ONNX
    Runtime computes them: those floats are exact); None for any other Resize."""
    from fractions import Fraction

    import sympy

    opset = next((o.version for o in inference.out_mp_.opset_import if o.domain in ("", "ai.onnx")), None)
    attrs = {a.name: a for a in node.attribute}
    if opset is None or "axes" in attrs:
        return None
    if opset <= 10:
        scales = inference._try_get_value(node, 1)
    else:
        mode = attrs.get("coordinate_transformation_mode")
        if (mode is not None and mode.s == b"tf_crop_and_resize") or inference._try_get_value(node, 3) is not None:
            return None
        scales = inference._try_get_value(node, 2)
    if scales is None:
        return None
    try:
        scales = [float(s) for s in scales]
        shape = inference._get_sympy_shape(node, 0)
    except Exception:  # noqa: BLE001 - symbolic scales, no input shape: its own handler decides
        return None
    if len(scales) != len(shape):
        return None
    dims = []
    for d, s in zip(shape, scales):
        if s >= 1 and s == int(s):
            dims.append(sympy.floor(d * sympy.Integer(int(s))))
        elif 0 < s < 1 and Fraction(s) == Fraction(1, round(1 / s)):
            dims.append(sympy.floor(d / sympy.Integer(round(1 / s))))
        else:
            return None
    return dims


def _symbolic_may_help(view, model: onnx.ModelProto) -> bool:
    """Whether ONNX Runtime's symbolic inference could fold a shape computation that ONNX's inference
    (which typed `view`) left. It is run only where some Reshape or Expand takes a shape computed
    from a `Shape`; it is not needed when every shape value computed from a `Shape` that leaves the
    computation (read by an op the evaluator does not follow, by a Reshape or Expand as its shape,
    or a graph output) is known element by element in numbers and dims of the graph inputs, and
    every such Reshape's or Expand's data input has only such dims: the symbolic inference names the
    inputs' dims as they are and numbers are numbers, so it would know no more, and neither sympy's
    import (~0.4 s and ~35 MB) nor its run (seconds on YOLO necks) is worth it.

    Where one is not so known, the fold it would allow is tried on two probes (_Probes: the graph
    typed by ONNX's inference with every dynamic input dim set to a number, two different sets):
    an element that is a different number in the two cannot be a constant, and one that differs from
    the dim it must equal in a probe is not equal to it for every input. When every such fold fails
    on the probes, the symbolic inference (which computes the same dims as functions of the inputs'
    dims) could not make it either."""
    if not _shape_fed(model):
        return False
    named = {d.dim_param for vi in model.graph.input for d in vi.type.tensor_type.shape.dim if d.dim_param}
    probes = _Probes(model)

    def plain(item) -> bool:
        # a number or a dim of the graph inputs: what the symbolic inference knows them as too (a
        # name it derives, e.g. `floor(h/2) + 1`, may be written differently from the model's own)
        return isinstance(item, int) or (item is not None and item[0] == "p" and item[1] in named)

    for g in view.graphs:
        if g.function is not None or "Shape" not in g.op_positions:
            continue
        if g.path:
            return True  # a body: dims from the outer graph are not judged here
        sv = _wider_shape_values()(view, g)
        # what `evaluate` reached from a Shape through ops it follows, less their data outputs (a Reshape
        # of an activation by a computed shape is reached too): the shape values
        values: set[str] = set()
        for t in sv.evaluate():
            k = g.producers[t][0]
            if g.op_types[k] == "Shape" or all(not i or i in values or sv.cv.is_constant(i) for i in g.node_inputs[k]):
                values.add(t)
        outputs = set(g.outputs)
        shaped: dict[str, list[int]] = {}  # shape value -> the Reshapes and Expands reading it as their shape
        for op in ("Reshape", "Expand"):
            for k in g.op_positions.get(op, ()):
                if len(g.node_inputs[k]) > 1:
                    shaped.setdefault(g.node_inputs[k][1], []).append(k)
        for t in values:
            leaves = t in outputs or t in shaped or any(
                not g.standard[c] or g.op_types[c] not in sv.OPS for c in g.consumers.get(t, ()))
            v = sv.memo.get(t)
            if leaves and (v is None or not all(plain(i) for i in v.items)):
                if probes.may_be_constant(t) or any(probes.may_fold(g, sv, k) for k in shaped.get(t, ())):
                    return True
        # the data input's dims the fold compares with the shape's elements: a Reshape's where the
        # element is a dim (all of them beside a -1, which a static rest writes out); an Expand's
        # where the element is not 1
        for op in ("Reshape", "Expand"):
            for k in g.op_positions.get(op, ()):
                ins = g.node_inputs[k]
                v = sv.memo.get(ins[1]) if len(ins) > 1 and ins[1] in values else None
                if v is None:
                    continue
                rank = g.rank_of(ins[0])
                if rank is None:
                    return True
                dims = [sv.dim(ins[0], a) for a in range(rank)]
                if op == "Reshape":
                    axes = range(rank) if -1 in v.items else [a for a, i in enumerate(v.items) if not isinstance(i, int)]
                else:
                    axes = [rank - len(v.items) + a for a, i in enumerate(v.items) if i != 1]
                unknown = [a for a in axes if 0 <= a < rank and not plain(dims[a])]
                if not unknown:
                    continue
                if op == "Reshape" and -1 not in v.items and not _could_copy(v.items, dims, plain):
                    continue
                if probes.may_fold(g, sv, k):
                    return True
    return False


class _Probes:
    """The main graph's shape values and dims on two probes: the model typed by ONNX's inference
    with data propagation after every dynamic dim of the graph inputs is set to a number (the same
    name, the same number; the two probes give every dim a different one). Built when first asked;
    a probe ONNX's inference cannot type answers "may" to everything."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self._probes: list | None = None

    def _built(self) -> list:
        if self._probes is None:
            self._probes = []
            for first in (64, 96):
                try:
                    view = _propagated_view(_with_input_dims(self.model, first), symbolic=False)
                    sv = _wider_shape_values()(view, view.main)
                    sv.evaluate()
                except Exception:  # noqa: BLE001 - no probe: nothing is ruled out
                    self._probes = []
                    break
                self._probes.append(sv)
        return self._probes

    @staticmethod
    def _item(sv, tensor: str, i: int) -> int | None:
        v = sv.memo.get(tensor)
        item = v.items[i] if v is not None and 0 <= i < len(v.items) else None
        return item if isinstance(item, int) else None

    def may_be_constant(self, tensor: str) -> bool:
        """Whether `tensor` (a shape value) could be the same numbers for every input."""
        probes = self._built()
        if len(probes) < 2:
            return True
        a, b = (sv.memo.get(tensor) for sv in probes)
        if a is None or b is None:
            # values it does not follow (a ConstantOfShape of computed dims): their sizes may differ
            sa, sb = (sv.g.type_of(tensor) for sv in probes)
            shapes = [t.shape if t is not None else None for t in (sa, sb)]
            return not (all(sh is not None and all(isinstance(d, int) for d in sh) for sh in shapes)
                        and shapes[0] != shapes[1])
        if len(a.items) != len(b.items):
            return False
        return not any(isinstance(x, int) and isinstance(y, int) and x != y for x, y in zip(a.items, b.items))

    def may_fold(self, g, sv, k: int) -> bool:
        """Whether the Reshape or Expand at position `k` of `g` (typed by `sv`) could fold with dims
        the symbolic inference knows, where ONNX's inference does not fold it: each element not
        already equal to the data input's dim at its place is equal to it on a probe, or (a
        Reshape's) the same number on both, or (an Expand's) 1 on a probe; an element a probe does
        not know is not ruled out."""
        probes = self._built()
        if len(probes) < 2:
            return True
        op, ins = g.op_types[k], g.node_inputs[k]
        x, s = ins[0], ins[1]
        v = sv.memo.get(s)
        rank = g.rank_of(x)
        if v is None or rank is None:
            return True
        off = rank - len(v.items) if op == "Expand" else 0
        if off < 0:
            return False
        asked = False  # whether some element is not already equal in `sv` (else ONNX's inference folds it)
        for i, item in enumerate(v.items):
            if op == "Reshape" and isinstance(item, int):
                continue
            if op == "Expand" and item == 1:
                continue
            if item is not None and item == sv.dim(x, off + i):
                continue
            asked = True
            es = [self._item(p, s, i) for p in probes]
            ds = [p.dim(x, off + i) for p in probes]
            # ruled out only where both probes know both and differ: a dim clipped to a limit (`Min(128,
            # seq)` beside `seq`, equal for every input the model runs) may pass it on one probe
            equal = any(e is None or not isinstance(d, int) or e == d for e, d in zip(es, ds))
            if op == "Reshape":  # a number is written as it is: one the same on both probes may be one
                number = None in es or len(set(es)) == 1
            else:  # an Expand's element may be 1
                number = any(e in (None, 1) for e in es)
            if not (equal or number):
                return False
        return asked


def _with_input_dims(model: onnx.ModelProto, first: int) -> onnx.ModelProto:
    """A copy of `model` whose graph inputs' dynamic dims are numbers: `first`, `first` + 64, ... by
    name (a dim without a name gets one of its own); without the main graph's value_info and its
    outputs' dim names, which would keep the dims they name (the exporter's) instead of the numbers."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.value_info[:]
    for vi in out.graph.output:
        if vi.type.HasField("tensor_type"):
            for d in vi.type.tensor_type.shape.dim:
                d.ClearField("dim_param")
    numbers: dict[str, int] = {}
    for vi in out.graph.input:
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            continue
        for a, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.HasField("dim_value"):
                continue
            key = d.dim_param or f"{vi.name}:{a}"
            n = numbers.setdefault(key, first + 64 * len(numbers))
            d.dim_value = n
    return out


def _could_copy(items: tuple, dims: list, plain) -> bool:
    """Whether a Reshape of a tensor of `dims` to `items` (a shape without -1, every element plain)
    could copy one of its dims, i.e. some dim the fold compares with an element might equal it.
    With one dim not plain, the element count fixes it: the product of `items` over the product of
    the other dims, as a coefficient times input dims; it can equal an element only when that
    quotient is one input dim alone. More than one such dim: it could."""
    unknown = [a for a, d in enumerate(dims) if not plain(d)]
    if len(unknown) != 1:
        return True

    total_coef, total_names = _monomial(x if isinstance(x, int) else x[1] for x in items)
    rest_coef, rest_names = _monomial(d if isinstance(d, int) else d[1] for a, d in enumerate(dims) if a != unknown[0])
    if rest_coef == 0 or total_coef % rest_coef or rest_names - total_names:
        return True  # not a whole monomial: no conclusion
    coef, names = total_coef // rest_coef, total_names - rest_names
    a = unknown[0]
    item = items[a] if a < len(items) else None
    if isinstance(item, int):
        return False  # a number is written as it is: the dim is not compared
    return coef == 1 and sum(names.values()) == 1 and item is not None and names[item[1]] == 1


def _monomial(xs) -> tuple[int, Counter]:
    """The product of `xs` (numbers and dim names) as its number and the count of each name."""
    coef, names = 1, Counter()
    for x in xs:
        if isinstance(x, int):
            coef *= x
        else:
            names[x] += 1
    return coef, names


def _wider_shape_values():
    from ..patterns.shape_values import ShapeValue, ShapeValues

    class Wider(ShapeValues):
        """ShapeValues that also follows ConstantOfShape, Equal and Where: PyTorch's `expand` exports
        its shape as Where(Equal(shape, -1), ones, shape), which ONNX's inference leaves unknown."""

        OPS = ShapeValues.OPS | {"ConstantOfShape", "Equal", "Where"}

        def _evaluate_node(self, i: int):
            g = self.g
            op = g.op_types[i]
            ins = g.node_inputs[i]
            arg = (lambda k: self.value(ins[k]) if k < len(ins) and ins[k] else None)  # noqa: E731
            if op == "Cast":
                return arg(0)  # to any type: a number stays a number, a dim the same dim
            if op == "ConstantOfShape":
                shape = arg(0)
                value = g.ref(i).attr("value", None)
                if shape is None or not shape.static or len(shape.items) != 1 or not 0 <= shape.items[0] <= 64:
                    return None
                fill = 0
                if value is not None:
                    arr = onnx.numpy_helper.to_array(value)
                    if arr.dtype.kind not in "iub" or arr.size != 1:
                        return None
                    fill = int(arr.reshape(-1)[0])
                return ShapeValue(False, (fill,) * shape.items[0])
            if op == "Equal":
                a, b = arg(0), arg(1)
                if a is None or b is None:
                    return None
                pairs = _broadcast(a.items, b.items)
                if pairs is None:
                    return None
                out = []
                for x, y in pairs:
                    if isinstance(x, int) and isinstance(y, int):
                        out.append(int(x == y))
                    elif x is not None and x == y:
                        out.append(1)
                    elif (isinstance(x, int) and x < 0 and y is not None) or (isinstance(y, int) and y < 0 and x is not None):
                        out.append(0)  # a dim is never negative
                    else:
                        out.append(None)
                return ShapeValue(a.scalar and b.scalar, tuple(out))
            if op == "Where":
                c, x, y = arg(0), arg(1), arg(2)
                if c is None or x is None or y is None or not c.static:
                    return None
                n = max(len(c.items), len(x.items), len(y.items))
                if any(len(v.items) not in (1, n) for v in (c, x, y)):
                    return None
                pick = [(x.items[k if len(x.items) == n else 0] if c.items[k if len(c.items) == n else 0]
                         else y.items[k if len(y.items) == n else 0]) for k in range(n)]
                return ShapeValue(c.scalar and x.scalar and y.scalar, tuple(pick))
            return super()._evaluate_node(i)

    return Wider


def _broadcast(a: tuple, b: tuple) -> list | None:
    if len(a) == len(b):
        return list(zip(a, b))
    if len(a) == 1:
        return [(a[0], y) for y in b]
    if len(b) == 1:
        return [(x, b[0]) for x in a]
    return None


def _fed_by_shape(g, tensor: str) -> bool:
    """Whether `tensor` of view graph `g` is computed from a `Shape` node (at most 64 steps back)."""
    stack, seen = [tensor], set()
    while stack and len(seen) < 64:
        t = stack.pop()
        hit = g.producers.get(t)
        if hit is None or t in seen:
            continue
        seen.add(t)
        if g.op_types[hit[0]] == "Shape":
            return True
        stack.extend(g.node_inputs[hit[0]])
    return False


def _shape_fed(model: onnx.ModelProto) -> bool:
    """Whether a Reshape or Expand of some graph takes a shape computed from a `Shape` node."""
    for g in graphs(model.graph):
        producer = {o: n for n in g.node for o in n.output}
        for n in g.node:
            if n.op_type not in ("Reshape", "Expand") or len(n.input) < 2:
                continue
            stack, seen = [n.input[1]], set()
            while stack and len(seen) < 64:
                t = stack.pop()
                p = producer.get(t)
                if p is None or t in seen:
                    continue
                seen.add(t)
                if p.op_type == "Shape":
                    return True
                stack.extend(p.input)
    return False


def _sound_merge(symbols: list) -> bool:
    """Whether dims that broadcast against each other are equal for every input that runs: the
    same name, or `Min(k, s)` beside `s` (k > 1: they differ only when s > k, where the model
    cannot broadcast them anyway). A dim beside a number is not (it may be 1)."""
    import re

    names = {s for s in symbols}
    if not all(isinstance(s, str) for s in names):
        return False
    base = set()
    for s in names:
        m = re.fullmatch(r"Min\((\d+), (.+)\)", s) or re.fullmatch(r"Min\((.+), (\d+)\)", s)
        if m:
            k, rest = (m.group(1), m.group(2)) if m.group(1).isdigit() else (m.group(2), m.group(1))
            if int(k) < 2:
                return False
            base.add(rest)
        else:
            base.add(s)
    return len(base) == 1


REWRITES = (FreezeShapes, FoldShapeComputations)
