"""Building the converted model from a plan: tensors and constants in the target type, Casts at the
edges of FP32 regions (one per tensor and type), control-flow bodies converted behind their interface."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import numpy_helper

from .._proto import bodies, default_opset, defined_names, nested_reads, outer_reads, rename, taken_names, unique_name
from ..dtype_limits import FP16_MAX
from .decisions import Decision, TARGETS, _SHORT, _TYPE_STR
from .planner import _allowed, _constants, _formal, _schema, elem_types, plan


def _to_target(v: np.ndarray, tt: int) -> np.ndarray:
    v = v.astype(np.float32)
    if tt == TP.FLOAT16:
        return np.clip(v, -FP16_MAX, FP16_MAX, where=np.isfinite(v), out=v.copy()).astype(np.float16)
    import ml_dtypes

    return v.astype(ml_dtypes.bfloat16)



def _tensor(v: np.ndarray, name: str, tt: int) -> TP:
    if tt == TP.BFLOAT16:
        t = onnx.helper.make_tensor(name, TP.BFLOAT16, v.shape, v.view(np.uint16).tobytes(), raw=True)
        return t
    return numpy_helper.from_array(v, name)



def build(model: onnx.ModelProto, decisions: list[Decision], target_type: str = "fp16", *, keep_io_types: bool = True,
          types: dict[str, int] | None = None) -> onnx.ModelProto:
    """Convert `model` (named nodes) following `decisions`: a strongly typed graph where every node's
    type-constrained float inputs agree, Casts are shared per (tensor, type) and widen-narrow pairs cancel."""
    tt = TARGETS[target_type]
    types = dict(types if types is not None else elem_types(model))
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    opset = default_opset(out, 17)
    kept = {d.node: d.kept_fp32 for d in decisions}
    consts = _constants(out)
    const_nodes = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    inits = {t.name: t for t in g.initializer}
    taken = {o for n in g.node for o in n.output} | {i.name for i in g.input} | set(inits)
    new_inits: list[TP] = []
    converted_consts: dict[str, str] = {}
    nat: dict[str, int] = {}  # tensor -> type it has after conversion
    casts: dict[tuple[str, int], str] = {}
    cast_src: dict[str, tuple[str, int]] = {}  # cast output -> (input, input type)
    new_nodes: list[tuple[int, onnx.NodeProto]] = []  # (insert after original index, node)
    producer_idx = {o: k for k, n in enumerate(g.node) for o in n.output}

    def uniq(base: str) -> str:
        return unique_name(taken, base)

    def type_of(t: str) -> int:
        return nat.get(t, types.get(t, 0))

    for vi in g.input:
        if vi.name in consts:
            continue
        t = vi.type.tensor_type.elem_type
        if t == TP.FLOAT and not keep_io_types:
            vi.type.tensor_type.elem_type = tt
            t = tt
        nat[vi.name] = t

    def const_as(name: str, want: int) -> str:
        if want == TP.FLOAT or consts.get(name) is None:
            return name
        if name not in converted_consts:
            new = uniq(f"{name}__{_SHORT[tt]}")
            new_inits.append(_tensor(_to_target(consts[name], tt), new, tt))
            converted_consts[name] = new
            nat[new] = tt
        return converted_consts[name]

    def cast_to(name: str, want: int) -> str:
        have = type_of(name)
        if have == want or have not in (TP.FLOAT, tt):
            return name
        src = cast_src.get(name)
        if src is not None and src[1] == want and want == tt:  # narrow(widen(x)) == x
            return src[0]
        key = (name, want)
        if key not in casts:
            new = uniq(f"{name}__to_{_SHORT[want]}")
            node = onnx.helper.make_node("Cast", [name], [new], to=want, name=new)
            new_nodes.append((producer_idx.get(name, -1), node))
            casts[key] = new
            nat[new] = want
            cast_src[new] = (name, have)
        return casts[key]

    # Movement nodes follow their data input; Casts producing FLOAT follow their consumers (below).
    kinds = {d.node: d.kind for d in decisions}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output} | nested_reads(g.node)  # bodies read these as they are typed now

    def low(n: onnx.NodeProto) -> bool:
        """Whether node `n` runs in the target type."""
        k = kinds.get(n.name)
        if k is None:
            return False
        if k == "movement":
            if kept.get(n.name):
                return False
            data = [i for i in n.input[:1] if i] if n.op_type not in ("Concat",) else [i for i in n.input if i]
            if n.op_type in ("Gather", "GatherElements", "GatherND"):
                data = [n.input[0]]
            tys = [tt if i in consts and _const_ok(consts[i], tt) else type_of(i) for i in data]
            return tt in tys
        if k == "cast":
            # Cast(to=FLOAT) feeding only converted compute nodes casts straight to the target type.
            to = next(a.i for a in n.attribute if a.name == "to")
            users = consumers.get(n.output[0], [])
            return (to == TP.FLOAT and bool(users) and n.output[0] not in outputs
                    and all(kinds.get(u.name) == "compute" and not kept.get(u.name, True) and _wants_low(u, n.output[0], opset, tt)
                            for u in users))
        return not kept.get(n.name, True)

    for n in g.node:
        lp = low(n) if n.name in kinds else False
        if n.name not in kinds:
            if n.op_type == "Constant":
                continue  # a constant source: materialized per reader by const_as
            for o in n.output:
                if o:
                    nat[o] = types.get(o, 0)
            continue
        schema = _schema(n, opset)
        for k, i in enumerate(n.input):
            if not i:
                continue
            ty = types.get(i)
            if ty != TP.FLOAT and type_of(i) not in (TP.FLOAT, tt):
                continue
            if n.op_type == "Cast":
                continue  # Cast accepts any input type
            allowed = _allowed(schema, k) if schema is not None else None
            want = tt if lp and allowed is not None and _TYPE_STR[tt] in allowed else TP.FLOAT
            src = const_as(i, want) if i in consts and i not in nat else i
            if src == i:
                src = cast_to(i, want)
            n.input[k] = src
        # Output types.
        if n.op_type == "Cast":
            a = next(a for a in n.attribute if a.name == "to")
            if lp and a.i == TP.FLOAT:
                a.i = tt
            nat[n.output[0]] = a.i
            src_t = type_of(n.input[0])
            cast_src[n.output[0]] = (n.input[0], src_t)
            continue
        for j, o in enumerate(n.output):
            if not o:
                continue
            allowed = _allowed(schema, j, outputs=True) if schema is not None else None
            if lp and types.get(o) == TP.FLOAT and allowed is not None and _TYPE_STR[tt] in allowed:
                nat[o] = tt
            else:
                nat[o] = types.get(o, 0)
        if lp and n.op_type == "ConstantOfShape":
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == TP.FLOAT:
                    a.t.CopyFrom(_tensor(_to_target(numpy_helper.to_array(a.t), tt), a.t.name, tt))
                    nat[n.output[0]] = tt

    # Graph outputs keep their types (keep_io_types) through a final Cast, else change type.
    tail: list[onnx.NodeProto] = []
    renamed: dict[str, str] = {}  # graph output -> the name its producer now writes
    for vo in g.output:
        have = type_of(vo.name)
        orig = vo.type.tensor_type.elem_type
        if have == orig or have not in (TP.FLOAT, tt) or orig not in (TP.FLOAT, tt):
            continue
        if not keep_io_types:
            vo.type.tensor_type.elem_type = have
            continue
        inner = renamed[vo.name] = uniq(f"{vo.name}__{_SHORT[have]}")
        tail.append(onnx.helper.make_node("Cast", [inner], [vo.name], to=orig, name=uniq(f"{vo.name}__to_{_SHORT[orig]}")))
    if renamed:  # one pass over the nodes for all outputs (a pass per output is quadratic on wide graphs)
        for n in g.node:
            for k, o in enumerate(n.output):
                if o in renamed:
                    n.output[k] = renamed[o]
            for k, i in enumerate(n.input):
                if i in renamed:
                    n.input[k] = renamed[i]
        for _, c in new_nodes:
            for k, i in enumerate(c.input):
                if i in renamed:
                    c.input[k] = renamed[i]

    # Assemble: inserted Casts right after their producers, then drop dead constants.
    by_idx: dict[int, list[onnx.NodeProto]] = {}
    for idx, node in new_nodes:
        by_idx.setdefault(idx, []).append(node)
    nodes = list(by_idx.get(-1, []))
    for k, n in enumerate(g.node):
        nodes.append(n)
        nodes.extend(by_idx.get(k, []))
    nodes.extend(tail)
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(new_inits)
    _drop_dead(out)
    _rename_back(out, converted_consts, const_nodes)
    del g.value_info[:]
    return out



def _const_ok(v: np.ndarray | None, tt: int) -> bool:
    if v is None or v.dtype.kind != "f" or v.dtype != np.float32:
        return False
    if tt == TP.FLOAT16 and v.size:
        with np.errstate(invalid="ignore"):
            return bool(np.all(np.isfinite(v))) and float(np.max(np.abs(v))) <= FP16_MAX
    return True



def _wants_low(u: onnx.NodeProto, tensor: str, opset: int, tt: int) -> bool:
    schema = _schema(u, opset)
    if schema is None:
        return False
    for k, i in enumerate(u.input):
        if i == tensor:
            allowed = _allowed(schema, k)
            if allowed is None or _TYPE_STR[tt] not in allowed:
                return False
    return True



def _drop_dead(model: onnx.ModelProto) -> None:
    """Remove Cast/Constant nodes and initializers nothing reads any more (the conversion's leftovers)."""
    g = model.graph
    # Values that control-flow bodies read from this graph count as used.
    outputs = {o.name for o in g.output} | nested_reads(g.node)
    while True:
        used = {i for n in g.node for i in n.input} | outputs
        dead = [k for k, n in enumerate(g.node) if n.op_type in ("Cast", "Constant") and not any(o in used for o in n.output)]
        if not dead:
            break
        for k in reversed(dead):
            del g.node[k]
    used = {i for n in g.node for i in n.input} | outputs | {i.name for i in g.input}
    keep = [t for t in g.initializer if t.name in used]
    if len(keep) != len(g.initializer):
        del g.initializer[:]
        g.initializer.extend(keep)



def _rename_back(model: onnx.ModelProto, converted: dict[str, str], const_nodes: dict[str, onnx.NodeProto]) -> None:
    """A constant converted for every reader keeps its original name."""
    g = model.graph
    present = {t.name for t in g.initializer} | {o for n in g.node for o in n.output} | {i.name for i in g.input}
    renames = {new: old for old, new in converted.items() if old not in present and new in present}
    if not renames:
        return
    for t in g.initializer:
        if t.name in renames:
            t.name = renames[t.name]
    for n in g.node:
        for k, i in enumerate(n.input):
            if i in renames:
                n.input[k] = renames[i]



def mixed_type_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes whose inputs bound to one type constraint carry different float types (what strong typing
    rejects), as 'node (op): t1 vs t2' strings."""
    types = elem_types(model)
    opset = default_opset(model, 17)
    bad = []
    for n in model.graph.node:
        schema = _schema(n, opset)
        if schema is None:
            continue
        groups: dict[str, set[int]] = {}
        for k, i in enumerate(n.input):
            p = _formal(schema, k)
            if not i or p is None or types.get(i) not in (TP.FLOAT, TP.FLOAT16, TP.BFLOAT16, TP.DOUBLE):
                continue
            groups.setdefault(p.type_str, set()).add(types[i])
        for ts, tys in groups.items():
            if len(tys) > 1:
                bad.append(f"{n.name} ({n.op_type}): {ts} bound to {sorted(tys)}")
    return bad



def _all_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every typed value in every graph of `model` (bodies included), after shape inference."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - what inference cannot type stays unknown
        inferred = model
    types: dict[str, int] = {}
    stack = [inferred.graph]
    while stack:
        g = stack.pop()
        for vi in (*g.input, *g.output, *g.value_info):
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
                types.setdefault(vi.name, vi.type.tensor_type.elem_type)
        for t in g.initializer:
            types.setdefault(t.name, t.data_type)
        for n in g.node:
            if n.op_type == "Constant":
                a = next((a for a in n.attribute if a.name == "value"), None)
                if a is not None:
                    types.setdefault(n.output[0], a.t.data_type)
            stack.extend(bodies(n))
    return types



def _carries_low_precision(g: onnx.GraphProto) -> bool:
    """Whether any graph (bodies included) holds an FP16/BF16 initializer, Constant or Cast target."""
    low = (TP.FLOAT16, TP.BFLOAT16)
    if any(t.data_type in low for t in g.initializer):
        return True
    for n in g.node:
        for a in n.attribute:
            if (n.op_type == "Constant" and a.name == "value" and a.t.data_type in low) or (n.op_type == "Cast" and a.name == "to" and a.i in low):
                return True
        if any(_carries_low_precision(b) for b in bodies(n)):
            return True
    return False



def _count_op(g: onnx.GraphProto, op: str) -> int:
    return sum(n.op_type == op for n in g.node) + sum(_count_op(b, op) for n in g.node for b in bodies(n))



def convert_bodies(model: onnx.ModelProto, target_type: str = "fp16", *, keep_fp32: tuple[str, ...] = (),
                   max_abs: float | None = None, keep_norm_stats: bool = False) -> tuple[onnx.ModelProto, list[Decision], list[str]]:
    """Convert the `If`/`Loop`/`Scan` bodies of `model` (nested ones included, outermost first), each as
    a graph of its own whose interface keeps its types: body inputs, body outputs and the values it reads
    from enclosing graphs (outer-scope references) stay FP32, converted at the body's edge by Casts.
    Bodies are not observed by the reference run, so the sensitivity rules decide alone. Returns
    (model, decisions for body nodes, notes)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    types = _all_types(out)
    taken = taken_names(out)
    decisions: list[Decision] = []
    notes: list[str] = []

    def visit(g: onnx.GraphProto, visible: set[str]) -> None:
        for n in g.node:
            for body in bodies(n):
                where = f"{n.name or n.op_type}/{body.name}"
                decisions.extend(_convert_body(out, body, where, types, taken, visible, notes, target_type,
                                               keep_fp32=keep_fp32, max_abs=max_abs, keep_norm_stats=keep_norm_stats))
                visit(body, visible | _own_names(body))

    visit(out.graph, _own_names(out.graph))
    return out, decisions, notes



def _own_names(g: onnx.GraphProto) -> set[str]:
    """Names `g` itself defines (not its bodies)."""
    return {vi.name for vi in g.input} | {t.name for t in g.initializer} | {o for n in g.node for o in n.output if o}



def _convert_body(model: onnx.ModelProto, body: onnx.GraphProto, where: str, types: dict[str, int], taken: set[str],
                  visible: set[str], notes: list[str], target_type: str, **plan_options) -> list[Decision]:
    outer = outer_reads(body)
    unknown = [name for name in outer if name not in types]
    if unknown:
        notes.append(f"body {where!r} not converted: the type of outer-scope value {unknown[0]!r} is unknown")
        return []
    # Every node of the body gets a name unique in the model: plans and decisions go by node name.
    seen: set[str] = set()
    for i, n in enumerate(body.node):
        if not n.name or n.name in seen:
            n.name = unique_name(taken, f"{n.op_type}_{n.output[0] if n.output else i}")
        seen.add(n.name)
    graph = onnx.GraphProto()
    graph.CopyFrom(body)
    del graph.value_info[:]
    graph.input.extend(onnx.helper.make_tensor_value_info(name, types[name], None) for name in outer
                       if name not in {vi.name for vi in graph.input})
    sub = onnx.helper.make_model(graph, opset_imports=list(model.opset_import))
    sub.ir_version = model.ir_version
    sub.functions.extend(model.functions)
    try:
        sub_types = elem_types(sub)
        plan_ = plan(sub, target_type, types=sub_types, **plan_options)
        if not any(not d.kept_fp32 and d.kind in ("compute", "movement") for d in plan_):
            return plan_
        new = build(sub, plan_, target_type, keep_io_types=True, types=sub_types)
    except Exception as e:  # noqa: BLE001 - one body that cannot be planned stays FP32; the rest convert
        notes.append(f"body {where!r} not converted: {type(e).__name__}: {' '.join(str(e).split())[:160]}")
        return []
    before = defined_names(body, Counter())
    del body.node[:]
    body.node.extend(new.graph.node)
    del body.initializer[:]
    body.initializer.extend(new.graph.initializer)
    del body.value_info[:]
    # Names the conversion created (Casts, converted constants) must not clash with a name of an
    # enclosing graph or of a body nested in this one. Sibling bodies may share them: the same
    # `w__to_fp16` in both branches of an If is one initializer once folded (see _gs.export_model).
    created = set(defined_names(body, Counter())) - set(before)
    inner = set(defined_names(body, Counter())) - _own_names(body)
    clash = {name: unique_name(taken, name) for name in created if name in visible or name in inner}
    taken.update(created)
    rename(body, clash)
    return plan_
