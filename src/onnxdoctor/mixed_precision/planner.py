"""Planning a mixed-precision conversion: the evidence (element types, constants, a layerwise FP32
reference run) and, from it, which nodes stay FP32 and why (`plan`); widening around a divergence."""

from __future__ import annotations

import fnmatch

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import numpy_helper

from .._proto import bodies, default_opset, graphs, has_body, unique_name
from ..dtype_limits import BF16_MAX, FP16_MAX, FP16_TINY
from .decisions import (BIG_REDUCTION, DEFAULT_MAX_ABS, MOVEMENT, TARGETS, _ARITH, _BOUNDED, _MAC_OPS, _REDUCTIONS, _TYPE_STR,
                        Decision, Stat)


def _schema(node: onnx.NodeProto, opset: int):
    try:
        return onnx.defs.get_schema(node.op_type, opset, node.domain or "")
    except Exception:  # noqa: BLE001 - unknown op
        return None



def _formal(schema, i: int, outputs: bool = False):
    params = schema.outputs if outputs else schema.inputs
    if not params:
        return None
    return params[i] if i < len(params) else (params[-1] if params[-1].option == params[-1].option.Variadic else None)



def _allowed(schema, i: int, outputs: bool = False) -> set[str] | None:
    """Type strings the i-th input/output accepts, or None when it is a fixed type ("tensor(float)")."""
    p = _formal(schema, i, outputs)
    if p is None:
        return set()
    for c in schema.type_constraints:
        if c.type_param_str == p.type_str:
            return set(c.allowed_type_strs)
    return None



def elem_types(model: onnx.ModelProto, observed: dict[str, Stat] | None = None) -> dict[str, int]:
    """Element type of every tensor of the main graph: shape inference, then observed dtypes."""
    types: dict[str, int] = {}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001
        inferred = model
    g = inferred.graph
    for vi in (*g.input, *g.value_info, *g.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    for t in model.graph.initializer:
        types[t.name] = t.data_type
    for n in model.graph.node:
        if n.op_type == "Constant":
            a = next((a for a in n.attribute if a.name == "value"), None)
            if a is not None:
                types[n.output[0]] = a.t.data_type
    for name, st in (observed or {}).items():
        if name not in types:
            types[name] = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(st.dtype))
    return types



def _name_nodes(model: onnx.ModelProto) -> None:
    taken = {n.name for n in model.graph.node if n.name}
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = unique_name(taken, f"{n.op_type}_{n.output[0] if n.output else i}")



def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray | None]:
    """Constant tensors: initializers (not overridable inputs) and Constant outputs (values lazily None
    for external data)."""
    g = model.graph
    inputs = {i.name for i in g.input}
    out: dict[str, np.ndarray | None] = {}
    for t in g.initializer:
        if t.name in inputs:
            continue
        out[t.name] = None if t.data_location == TP.EXTERNAL else numpy_helper.to_array(t)
    for n in g.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            a = next((a for a in n.attribute if a.name == "value"), None)
            out[n.output[0]] = numpy_helper.to_array(a.t) if a is not None else None
    return out



def observe(model: onnx.ModelProto, feeds: dict[str, np.ndarray], *, progress=None, budget=None) -> dict[str, Stat]:
    """Run the FP32 model in ONNX Runtime with every intermediate tensor observed (layerwise.run:
    segment by segment, linear cost), keeping only peak |x|, shape and dtype per tensor."""
    from .. import layerwise

    stats: dict[str, Stat] = {}
    for name, arr in feeds.items():
        stats[name] = _stat(arr)
    for got in layerwise.run(model, feeds, budget=budget, what="the FP32 reference run", progress=progress):
        for name, arr in got.items():
            stats[name] = _stat(np.asarray(arr))
        del got
    return stats



def _stat(arr: np.ndarray) -> Stat:
    peak = floor = 0.0
    if arr.dtype.kind == "f" and arr.size:
        # ±inf stays ±inf in FP16/BF16 (a -inf mask behaves the same): only finite magnitudes count.
        a = np.abs(arr[np.isfinite(arr)])
        if a.size:
            peak, floor = float(a.max()), float(a.min())
    return Stat(peak, tuple(int(d) for d in arr.shape), str(arr.dtype), floor)



def _norm_nodes(model: onnx.ModelProto) -> dict[str, str]:
    """Node name -> reason for nodes of decomposed LayerNorm/RMSNorm (GRF matchers)."""
    from ..patterns.decomposed import iter_matches, match_layer_norm, match_rms_norm
    from ..model import from_proto

    out: dict[str, str] = {}
    try:
        m = from_proto(model, infer_shapes=True)
    except Exception:  # noqa: BLE001 - the matchers are evidence, not a requirement
        return out
    g = m.main if hasattr(m, "main") else m.graphs[0]
    for matcher, what in ((match_layer_norm, "LayerNorm"), (match_rms_norm, "RMSNorm")):
        for _anchor, res in iter_matches(m, g, matcher):
            if not res:
                continue
            affine = {t for t in (res.gamma, res.beta) if t}
            for ref in res.nodes:
                # The scale/bias after normalization are plain elementwise ops on bounded values.
                if affine & set(ref.node.input):
                    continue
                out.setdefault(ref.node.name, f"{what} statistics (mean/variance/rsqrt) lose precision in {{T}}")
    return out



def plan(model: onnx.ModelProto, target_type: str = "fp16", *, keep_fp32: tuple[str, ...] = (), max_abs: float | None = None,
         observed: dict[str, Stat] | None = None, extra_keep: dict[str, str] | None = None,
         types: dict[str, int] | None = None, keep_norm_stats: bool = False) -> list[Decision]:
    """Decide, for every node of the main graph that touches FLOAT tensors, whether it stays FP32.
    `model` must have named nodes (convert names unnamed ones). Movement ops and Casts are decided
    after compute nodes: they follow their data input / their consumers.

    Sensitivity rules that guard against unknown values (decomposed LayerNorm/RMSNorm statistics, Pow)
    apply only to nodes the reference run did not observe: where it did, its ranges decide. With
    `keep_norm_stats` the normalization statistics stay FP32 regardless."""
    tt = TARGETS[target_type]
    T = target_type.upper()
    limit = FP16_MAX if tt == TP.FLOAT16 else BF16_MAX
    max_abs = DEFAULT_MAX_ABS[target_type] if max_abs is None else max_abs
    observed = observed or {}
    extra_keep = extra_keep or {}
    types = types if types is not None else elem_types(model, observed)
    g = model.graph
    opset = default_opset(model, 17)
    consts = _constants(model)
    norms = _norm_nodes(model)

    def is_float(t: str) -> bool:
        return bool(t) and types.get(t) == TP.FLOAT

    # Tensors computed only from shapes and constants (no runtime data): folded by TensorRT.
    static: set[str] = set(consts)
    # Tensors that may hold values beyond the target's range, known without running (masks).
    huge: dict[str, str] = {}
    # Only finite values beyond the range change meaning (-1e9 becomes -inf, and 0 * -inf is NaN);
    # an infinite constant is exactly representable in FP16/BF16 and behaves as in FP32.
    for name, val in consts.items():
        if val is not None and val.dtype.kind == "f" and val.size:
            fin = val[np.isfinite(val)]
            if fin.size and float(np.max(np.abs(fin))) > limit:
                huge[name] = f"constant {name!r} holds {_extreme(fin):.4g}, beyond the {T} range (±{limit:.6g})"
    decisions: list[Decision] = []
    # Tensors read by control-flow bodies from the outer scope keep their type (bodies are not re-typed).
    sub_reads = {i for n in g.node if has_body(n) for sg in bodies(n) for sub in graphs(sg) for sn in sub.node for i in sn.input}

    for n in g.node:
        ins = [i for i in n.input if i]
        if n.op_type in ("Shape", "Size") or (ins and all(i in static for i in ins)) or n.op_type == "ConstantOfShape" and all(i in static for i in ins):
            static.update(o for o in n.output if o)
        for i in ins:
            if i in huge and n.op_type not in _BOUNDED:
                for o in n.output:
                    if o and is_float(o):
                        huge.setdefault(o, huge[i] if huge[i].startswith("carries") else f"carries {huge[i]}")
                break
        if n.op_type == "ConstantOfShape":
            a = next((a for a in n.attribute if a.name == "value"), None)
            if a is not None:
                v = numpy_helper.to_array(a.t)
                fin = v[np.isfinite(v)] if v.dtype.kind == "f" else v[:0]
                if fin.size and float(np.max(np.abs(fin))) > limit:
                    huge[n.output[0]] = f"ConstantOfShape fill {float(v.ravel()[0]):.4g} is beyond the {T} range"
        floats_in = [i for i in ins if is_float(i)]
        floats_out = [o for o in n.output if o and is_float(o)]
        if not floats_in and not floats_out or n.op_type == "Constant":
            continue
        user = next((p for p in keep_fp32 if fnmatch.fnmatchcase(n.op_type, p) or fnmatch.fnmatchcase(n.name, p)), None)
        read = next((o for o in floats_out if o in sub_reads), None)
        if read is not None and n.op_type != "Cast":
            decisions.append(Decision(n.name, n.op_type, True, f"output {read!r} is read inside a control-flow subgraph",
                                      "movement" if n.op_type in MOVEMENT else "compute"))
            continue
        if n.op_type == "Cast":
            decisions.append(Decision(n.name, n.op_type, False, "Cast: its FLOAT side follows its neighbours", "cast"))
            continue
        if n.op_type in MOVEMENT and n.domain in ("", "ai.onnx") and user is not None:
            decisions.append(Decision(n.name, n.op_type, True, f"user override --keep-fp32 {user}", "movement"))
            continue
        if n.op_type in MOVEMENT and n.domain in ("", "ai.onnx") and n.name not in extra_keep:
            decisions.append(Decision(n.name, n.op_type, False, "data movement: follows its input", "movement"))
            continue
        reason = _keep_reason(n, opset, tt, T, max_abs, keep_fp32, observed, huge, static, consts, norms, extra_keep,
                              floats_in, floats_out, keep_norm_stats)
        kind = "shape" if reason and reason.startswith("shape") else "compute"
        if reason:
            decisions.append(Decision(n.name, n.op_type, True, reason.replace("{T}", T), kind))
        else:
            peaks = [observed[t].peak for t in (*floats_in, *floats_out) if t in observed]
            why = f"observed |x| <= {max(peaks):.3g} (max_abs {max_abs:g})" if peaks else "no range or sensitivity evidence"
            decisions.append(Decision(n.name, n.op_type, False, why, kind))
    return decisions



def _negligible_addend(n, const: str, magnitude: float, observed: dict[str, Stat]) -> bool:
    """An added constant (a LayerNorm epsilon) that flushes to 0 in FP16 matters only where the other
    operand comes near 0. True when every observed |other| is so large that the constant is below half
    an FP32 ulp of it: adding it changes nothing even in FP32, so losing it in FP16 changes nothing."""
    others = [i for i in n.input if i and i != const]
    if len(others) != 1 or others[0] not in observed:
        return False
    return magnitude < observed[others[0]].floor * 2.0**-25



def _extreme(v: np.ndarray) -> float:
    f = v[np.isfinite(v)]
    if f.size != v.size:
        return float(v[~np.isfinite(v)].ravel()[0])
    return float(f.ravel()[np.argmax(np.abs(f))])



def _keep_reason(n, opset, tt, T, max_abs, keep_fp32, observed, huge, static, consts, norms, extra_keep,
                 floats_in, floats_out, keep_norm_stats=False) -> str | None:
    """Why node `n` must stay FP32, or None. Checked in order: user, schema, static data, range, sensitivity.
    Sensitivity rules stand in for evidence: they apply where the reference run observed nothing."""
    for pat in keep_fp32:
        if fnmatch.fnmatchcase(n.op_type, pat) or fnmatch.fnmatchcase(n.name, pat):
            return f"user override --keep-fp32 {pat}"
    if n.name in extra_keep:
        return extra_keep[n.name]
    if n.domain not in ("", "ai.onnx"):
        return f"custom-domain op ({n.domain}): its {T} support is unknown"
    if has_body(n):
        return "control flow with a subgraph: not converted"
    schema = _schema(n, opset)
    if schema is None:
        return "no ONNX schema for this op at the model's opset"
    for k, i in enumerate(n.input):
        if i in floats_in:
            allowed = _allowed(schema, k)
            if allowed is not None and _TYPE_STR[tt] not in allowed:
                return f"{n.op_type} has no {T} input type in opset {opset}"
    if all(i in static for i in n.input if i):
        return "shape/constant arithmetic: no runtime data (TensorRT folds it), kept exact"
    seen = bool(floats_out) and all(t in observed for t in floats_out)
    if n.name in norms and (keep_norm_stats or not seen):
        return norms[n.name] + ("" if keep_norm_stats else " (not observed by the reference run)")
    for t in (*floats_in, *floats_out):
        if t in huge:
            return huge[t] if t in consts else f"{'input' if t in floats_in else 'output'} {t!r} {huge[t]}"
        st = observed.get(t)
        if st is not None and st.peak > max_abs:
            return f"activation {t!r} reaches |x| = {st.peak:.4g} > max_abs {max_abs:g}"
    if tt == TP.FLOAT16:
        for t in floats_in:
            v = consts.get(t)
            if v is not None and v.dtype.kind == "f" and v.size and n.op_type in _ARITH:
                a = np.abs(v[np.isfinite(v)])
                nz = a[a > 0]
                if nz.size and float((nz < FP16_TINY).mean()) > 0.1:
                    if n.op_type in ("Add", "Sub") and _negligible_addend(n, t, float(nz.max()), observed):
                        continue
                    return f"constant {t!r} ({float(nz.min()):.3g}) flushes to 0 in FP16"
    op = n.op_type
    if op == "Pow" and not seen:
        return ("Pow on values the reference run did not observe: x**p leaves the {T} range quickly (x**2 > 65504 from |x| > 256)"
                if tt == TP.FLOAT16 else "Pow on values the reference run did not observe: sensitive power, kept FP32")
    if op in _REDUCTIONS and floats_in:
        st_in, st_out = observed.get(floats_in[0]), observed.get(floats_out[0]) if floats_out else None
        if st_in is not None and st_out is not None:
            size = int(np.prod(st_in.shape or (1,))) // max(1, int(np.prod(st_out.shape or (1,))))
            if size >= BIG_REDUCTION:
                return f"{op} over {size} elements (>= {BIG_REDUCTION}): accumulation error in {{T}}"
        elif op in ("ReduceSum", "ReduceSumSquare", "ReduceL2"):
            return f"{op} over an unknown number of elements: may overflow or lose precision"
    if op == "Exp":
        st = observed.get(floats_in[0]) if floats_in else None
        if st is None:
            return "Exp on an input of unknown range (e**11 > 65504)"
        if st.peak > 10.0 and tt == TP.FLOAT16:
            return f"Exp on inputs up to |x| = {st.peak:.3g} (e**11 > 65504)"
    if op == "Log" and (not floats_in or floats_in[0] not in observed):
        return "Log on an input of unknown range"
    return None



def fp32_fractions(model: onnx.ModelProto, decisions: list[Decision], observed: dict[str, Stat] | None) -> tuple[float, float]:
    """(MAC-weighted, node-count) share of compute nodes kept FP32. Weights: output elements, times the
    reduction length for MatMul/Gemm/Conv (from observed shapes; 1 when unknown)."""
    observed = observed or {}
    byname = {n.name: n for n in model.graph.node}
    compute = [d for d in decisions if d.kind == "compute"]
    if not compute:
        return 0.0, 0.0
    total = kept = 0.0
    for d in compute:
        n = byname.get(d.node)
        w = 1.0
        if n is not None and n.output and n.output[0] in observed:
            w = float(max(1, int(np.prod(observed[n.output[0]].shape or (1,)))))
            if n.op_type in _MAC_OPS and n.input and n.input[0] in observed:
                shp = observed[n.input[0]].shape
                if shp:
                    w *= shp[-1] if n.op_type != "Conv" else int(np.prod(shp[1:2])) * _kernel(n, observed)
        total += w
        kept += w if d.kept_fp32 else 0.0
    return kept / total, sum(d.kept_fp32 for d in compute) / len(compute)



def _kernel(n: onnx.NodeProto, observed: dict[str, Stat]) -> int:
    w = observed.get(n.input[1]) if len(n.input) > 1 else None
    return int(np.prod(w.shape[2:])) if w is not None and len(w.shape) > 2 else 1



def _widen(model: onnx.ModelProto, around: str, radius: int, decisions: list[Decision]) -> set[str]:
    """Compute nodes within `radius` float-edge hops of node `around`."""
    g = model.graph
    producers = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    byname = {n.name: n for n in g.node}
    frontier, seen = {around}, {around}
    for _ in range(radius):
        nxt = set()
        for name in frontier:
            n = byname.get(name)
            if n is None:
                continue
            for i in n.input:
                if i in producers:
                    nxt.add(producers[i].name)
            for o in n.output:
                nxt.update(c.name for c in consumers.get(o, []))
        frontier = nxt - seen
        seen |= nxt
    compute = {d.node for d in decisions if d.kind in ("compute", "movement")}
    return seen & compute
