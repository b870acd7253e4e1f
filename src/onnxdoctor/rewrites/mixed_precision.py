"""Mixed-precision conversion (FP32 -> FP16/BF16) for strongly typed TensorRT 11: decide per node from
evidence what stays FP32, convert the rest with Casts at region boundaries, prove it layer by layer.

The engine is plain functions (`plan`, `build`, `convert`); `ConvertPrecision` is the rewrite that the
fix pipeline reaches through PRC303. Reference runs reuse `verify`'s chunked streaming helpers, so
memory holds one chunk of activations at a time.
"""

from __future__ import annotations

import fnmatch
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import numpy_helper

from ..dtype_limits import BF16_MAX, FP16_MAX, FP16_TINY
from ..findings import Applicability
from .._proto import bodies, defined_names, nested_reads, outer_reads, rename, taken_names as all_names
from .base import Outcome, Rewrite, RewriteContext

TARGETS = {"fp16": TP.FLOAT16, "bf16": TP.BFLOAT16}
_TYPE_STR = {TP.FLOAT16: "tensor(float16)", TP.BFLOAT16: "tensor(bfloat16)"}
_SHORT = {TP.FLOAT: "fp32", TP.FLOAT16: "fp16", TP.BFLOAT16: "bf16"}
# Activations beyond this stay FP32: well below 65504, so that a different input does not overflow.
DEFAULT_MAX_ABS = {"fp16": 8192.0, "bf16": 1e30}
# Final-output tolerances of the proof (FP16 keeps ~3 decimal digits, BF16 ~2).
DEFAULT_TOLERANCE = {"fp16": (1e-2, 1e-2), "bf16": (5e-2, 5e-2)}
MAX_RETRIES = 4
BIG_REDUCTION = 2048  # reducing this many elements or more accumulates visible FP16 error
# Ops that only move or regroup values: they take the precision of their data input, so that a Cast
# is placed once, after them, instead of a pair around them.
MOVEMENT = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Expand", "Slice", "Gather",
                      "GatherElements", "GatherND", "Concat", "Split", "Tile", "DepthToSpace", "SpaceToDepth"})
# Ops whose output is bounded whatever the input magnitude: a huge mask stops here.
_BOUNDED = frozenset({"Softmax", "LogSoftmax", "Sigmoid", "Tanh", "Erf", "Cos", "Sin", "Exp", "Sign", "IsNaN", "IsInf",
                      "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Not", "And", "Or", "Shape", "Size",
                      "LayerNormalization", "HardSigmoid"})
_REDUCTIONS = frozenset({"ReduceSum", "ReduceMean", "ReduceSumSquare", "ReduceL2", "ReduceL1", "ReduceLogSumExp"})
_ARITH = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Where", "MatMul", "Gemm", "Conv", "Sum", "Mean"})
# Compute weight: ops with a reduction dimension (MACs per output element).
_MAC_OPS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum"})


@dataclass(frozen=True)
class Decision:
    node: str
    op_type: str
    kept_fp32: bool
    reason: str
    kind: str = "compute"  # compute | movement | cast | shape

    def to_dict(self) -> dict:
        return {"node": self.node, "op_type": self.op_type, "kept_fp32": self.kept_fp32, "reason": self.reason, "kind": self.kind}


@dataclass
class Stat:
    """What a reference run observed about one tensor."""

    peak: float
    shape: tuple[int, ...]
    dtype: str
    floor: float = 0.0  # smallest finite |x| seen (0.0 when a zero, or nothing finite, was seen)


@dataclass
class ConversionResult:
    model: onnx.ModelProto
    target_type: str
    decisions: list[Decision]
    casts_inserted: int
    fp32_fraction: float  # share of compute (MAC-weighted when shapes were observed) kept in FP32
    fp32_node_fraction: float  # share of compute nodes kept in FP32
    first_divergence: object | None = None  # verify.LayerComparison
    retries: int = 0
    outputs: list = field(default_factory=list)  # verify.LayerComparison per graph output
    proof: str | None = None  # "onnxruntime" | "emulated (...)" | None (not proven)
    passed: bool | None = None
    tolerance: tuple[float, float] = (0.0, 0.0)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if d.kept_fp32 and d.kind == "compute"]

    def to_dict(self) -> dict:
        fd = self.first_divergence.to_dict() if self.first_divergence is not None else None
        return {"target": self.target_type, "pass": self.passed, "proof": self.proof, "retries": self.retries,
                "casts_inserted": self.casts_inserted, "fp32_fraction": self.fp32_fraction,
                "fp32_node_fraction": self.fp32_node_fraction,
                "tolerance": {"atol": self.tolerance[0], "rtol": self.tolerance[1]},
                "outputs": [c.to_dict() for c in self.outputs], "first_divergence": fd, "notes": self.notes,
                "seconds": round(self.seconds, 3), "decisions": [d.to_dict() for d in self.decisions]}

    def render_text(self, *, all_decisions: bool = False) -> str:
        lines = [f"converted to {self.target_type}: {len(self.kept)} compute node(s) kept in FP32 "
                 f"({self.fp32_fraction:.1%} of compute), {self.casts_inserted} Cast(s) inserted"]
        shown = self.decisions if all_decisions else self.kept
        for d in shown:
            lines.append(f"  {'FP32' if d.kept_fp32 else self.target_type.upper():<5} {d.node} ({d.op_type}): {d.reason}")
        for c in self.outputs:
            lines.append(f"  output {c.tensor!r}: max |diff| {c.max_abs_diff:.3g} (rel {c.max_rel_diff:.3g}) "
                         f"{'pass' if c.passed else 'FAIL'}")
        if self.first_divergence is not None:
            fd = self.first_divergence
            lines.append(f"  first divergence: {fd.tensor!r} from {fd.node} ({fd.op_type}), max |diff| {fd.max_abs_diff:.3g}")
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.proof:
            lines.append(f"proof ({self.proof}, atol {self.tolerance[0]:g} rtol {self.tolerance[1]:g}, {self.retries} "
                         f"retr{'y' if self.retries == 1 else 'ies'}): {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Graph facts
# ----------------------------------------------------------------------------------------------
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


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)


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
            base = f"{n.op_type}_{n.output[0] if n.output else i}"
            name, k = base, 0
            while name in taken:
                k += 1
                name = f"{base}_{k}"
            n.name = name
            taken.add(name)


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


def _subgraphs(n: onnx.NodeProto):
    for a in n.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            yield a.g
        elif a.type == onnx.AttributeProto.GRAPHS:
            yield from a.graphs


def _walk(g: onnx.GraphProto):
    for n in g.node:
        yield n
        for sg in _subgraphs(n):
            yield from _walk(sg)


def _has_subgraph(n: onnx.NodeProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute)


# ----------------------------------------------------------------------------------------------
# Evidence: the reference run
# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
# Planning: which nodes stay FP32, and why
# ----------------------------------------------------------------------------------------------
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
    opset = _opset(model)
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
    sub_reads = {i for n in g.node if _has_subgraph(n) for sg in _subgraphs(n) for sn in _walk(sg) for i in sn.input}

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
    if _has_subgraph(n):
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


# ----------------------------------------------------------------------------------------------
# Building the converted graph
# ----------------------------------------------------------------------------------------------
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
    opset = _opset(out)
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
        name, k = base, 0
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        return name

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
    outputs = {o.name for o in g.output} | nested_reads(g)  # bodies read these as they are typed now

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
    outputs = {o.name for o in g.output} | nested_reads(g)
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
    opset = _opset(model)
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


# ----------------------------------------------------------------------------------------------
# Proof
# ----------------------------------------------------------------------------------------------
def emulated(converted: onnx.ModelProto, target_type: str) -> onnx.ModelProto:
    """An FP32 model computing like `converted` with every target-typed tensor rounded to the target
    type (storage rounding; accumulation stays FP32) — for proving where ORT lacks kernels (BF16)."""
    tt = TARGETS[target_type]
    m = onnx.ModelProto()
    m.CopyFrom(converted)
    g = m.graph
    types = elem_types(m)
    for t in g.initializer:
        if t.data_type == tt:
            t.CopyFrom(numpy_helper.from_array(_lp_to_f32(t, tt), t.name))
    taken = {o for n in g.node for o in n.output} | {i.name for i in g.input}
    nodes = []
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == tt:
                    a.t.CopyFrom(numpy_helper.from_array(_lp_to_f32(a.t, tt), a.t.name))
        if n.op_type == "ConstantOfShape":
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == tt:
                    a.t.CopyFrom(numpy_helper.from_array(_lp_to_f32(a.t, tt), a.t.name))
        nodes.append(n)
        if n.op_type == "Cast":
            a = next(a for a in n.attribute if a.name == "to")
            if a.i == tt:  # round: Cast(to=T) then back to FLOAT under the original name
                o = n.output[0]
                mid = _uniq(taken, f"{o}__round")
                n.output[0] = mid
                nodes.append(onnx.helper.make_node("Cast", [mid], [o], to=TP.FLOAT, name=f"{n.name}__back"))
            continue
        for j, o in enumerate(n.output):
            if o and types.get(o) == tt:
                raw = _uniq(taken, f"{o}__f32")
                mid = _uniq(taken, f"{o}__round")
                n.output[j] = raw
                nodes.append(onnx.helper.make_node("Cast", [raw], [mid], to=tt, name=f"{raw}__r1"))
                nodes.append(onnx.helper.make_node("Cast", [mid], [o], to=TP.FLOAT, name=f"{raw}__r2"))
    del g.node[:]
    g.node.extend(nodes)
    for vi in (*g.input, *g.output):
        if vi.type.tensor_type.elem_type == tt:
            vi.type.tensor_type.elem_type = TP.FLOAT
    del g.value_info[:]
    return m


def proof_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """What to run in ONNX Runtime CPU to prove `model`: its BF16 emulation when it carries BF16
    tensors (ORT CPU has no BF16 kernels for most ops), else the model itself."""
    types = set(elem_types(model).values())
    return emulated(model, "bf16") if TP.BFLOAT16 in types else model


def _uniq(taken: set[str], base: str) -> str:
    from .._proto import unique_name

    return unique_name(taken, base)


def _lp_to_f32(t: TP, tt: int) -> np.ndarray:
    if tt == TP.BFLOAT16:
        import ml_dtypes

        raw = np.frombuffer(t.raw_data, dtype=np.uint16) if t.raw_data else np.asarray(t.int32_data, dtype=np.uint16)
        return raw.view(ml_dtypes.bfloat16).astype(np.float32).reshape(tuple(t.dims))
    return numpy_helper.to_array(t).astype(np.float32)


def _adapt_feeds(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(feeds)
    for vi in model.graph.input:
        if vi.name in out and vi.type.tensor_type.elem_type == TP.FLOAT16:
            out[vi.name] = out[vi.name].astype(np.float16)
    return out


def _prove(reference: onnx.ModelProto, converted: onnx.ModelProto, target_type: str, feeds, atol: float, rtol: float, notes: list[str],
           budget=None):
    """Layerwise comparison (verify.compare_layerwise) of the FP32 reference and the converted model in
    ORT; BF16, or a converted model ORT cannot run, is proven on its emulation. Returns
    (mode, comparisons, first divergence)."""
    from .. import prove as proving
    from .. import verify

    cand, mode = converted, "onnxruntime"
    if target_type == "bf16":
        cand, mode = emulated(converted, target_type), "emulated (BF16 rounding of every tensor, FP32 accumulation; ORT CPU has no BF16 kernels)"
    else:
        try:
            proving.session(converted)
        except Exception as e:  # noqa: BLE001 - a missing FP16 CPU kernel: prove the emulation, say so
            notes.append(f"ONNX Runtime cannot run the FP16 model on CPU ({' '.join(str(e).split())[:160]}); proven by emulation")
            cand, mode = emulated(converted, target_type), "emulated (FP16 rounding of every tensor)"
    cfeeds = _adapt_feeds(cand, feeds)
    comps = verify.compare_layerwise(reference, cand, feeds, cfeeds, atol, rtol, budget=budget)
    return mode, comps, verify.first_divergence(reference, comps)


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
    taken = all_names(out)
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
            n.name = _uniq(taken, f"{n.op_type}_{n.output[0] if n.output else i}")
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
    clash = {name: _uniq(taken, name) for name in created if name in visible or name in inner}
    taken.update(created)
    rename(body, clash)
    return plan_


def convert(model: onnx.ModelProto, target_type: str = "fp16", *, keep_io_types: bool = True, keep_fp32: tuple[str, ...] = (),
            max_abs: float | None = None, feeds: dict[str, np.ndarray] | None = None,
            tolerance: tuple[float, float] | None = None, prove: bool = True, observe_activations: bool = True,
            max_retries: int = MAX_RETRIES, seed: int = 0, shapes: dict | None = None, keep_norm_stats: bool = False,
            convert_subgraphs: bool = True, log=None, budget=None) -> ConversionResult:
    """Convert an FP32 model to mixed FP16/BF16. With `observe_activations`/`prove` (default) the model
    runs in ONNX Runtime on `feeds` (generated when None); the layerwise proof reruns the original
    segment by segment (layerwise.run); `budget` (layerwise.Budget) bounds those runs.
    LayerNorm/RMSNorm statistics and Pow convert unless evidence keeps them (observed ranges beyond
    `max_abs`, large reductions, tiny constants, a failed proof); `keep_norm_stats=True` keeps the
    statistics FP32 regardless. Control-flow bodies convert too (`convert_bodies`), unless
    `convert_subgraphs=False` or a proof with converted bodies fails (then they stay FP32, noted)."""
    from .. import prove as proving

    if target_type not in TARGETS:
        raise ValueError(f"target_type must be one of {sorted(TARGETS)}, got {target_type!r}")
    log = log or (lambda msg: None)
    t0 = time.perf_counter()
    work = onnx.ModelProto()
    work.CopyFrom(model)
    _name_nodes(work)
    tol = tolerance or DEFAULT_TOLERANCE[target_type]
    observed: dict[str, Stat] = {}
    if (observe_activations or prove) and feeds is None:
        feeds = proving.generate_inputs(work, shapes or {}, seed)
    if observe_activations:
        log("reference run: observing every intermediate tensor")
        observed = observe(work, feeds, budget=budget)
    types = elem_types(work, observed)
    extra: dict[str, str] = {}
    notes: list[str] = []
    retries = 0
    while True:
        decisions = plan(work, target_type, keep_fp32=keep_fp32, max_abs=max_abs, observed=observed, extra_keep=extra, types=types,
                         keep_norm_stats=keep_norm_stats)
        converted = build(work, decisions, target_type, keep_io_types=keep_io_types, types=types)
        body_decisions: list[Decision] = []
        if convert_subgraphs:
            converted, body_decisions, body_notes = convert_bodies(converted, target_type, keep_fp32=keep_fp32, max_abs=max_abs,
                                                                   keep_norm_stats=keep_norm_stats)
            notes.extend(n for n in body_notes if n not in notes)
        converted = onnx.shape_inference.infer_shapes(converted)
        all_decisions = decisions + body_decisions
        res = ConversionResult(converted, target_type, all_decisions,
                               _count_op(converted.graph, "Cast") - _count_op(work.graph, "Cast"),
                               *fp32_fractions(work, all_decisions, observed), retries=retries, tolerance=tol, notes=notes)
        if not prove:
            break
        log(f"proving (attempt {retries + 1})")
        mode, comps, fd = _prove(work, converted, target_type, feeds, *tol, notes, budget=budget)
        outs = {o.name for o in work.graph.output}
        res.proof, res.first_divergence = mode, fd
        res.outputs = [c for c in comps if c.tensor in outs]
        # An intermediate that turned inf/NaN fails the proof even when ORT's outputs look fine: ORT's
        # CPU FP16 kernels do not always carry an overflow on, TensorRT would.
        blown = next((c for c in comps if c.max_abs_diff == float("inf") and c.tensor not in outs), None)
        res.passed = all(c.passed for c in res.outputs) and blown is None
        if blown is not None and fd is None:
            res.first_divergence = fd = blown
        if not res.passed and convert_subgraphs and any(not d.kept_fp32 for d in body_decisions):
            convert_subgraphs = False
            notes.append("the proof failed with converted control-flow bodies: they stay FP32")
            continue
        if res.passed or retries >= max_retries:
            break
        around = fd.node if fd is not None else next((c.node for c in res.outputs if not c.passed), None)
        if around is None:
            break
        retries += 1
        before = len(extra)
        for name in _widen(work, around, retries, decisions):
            extra.setdefault(name, f"widened around the first divergence at {around!r} (retry {retries})")
        if len(extra) == before:
            notes.append(f"widening around {around!r} added nothing; stopped")
            break
    res.seconds = time.perf_counter() - t0
    return res


class ConvertPrecision(Rewrite):
    """Convert an FP32 model to mixed FP16/BF16 precision for strongly typed TensorRT.

    ## What it does
    Converts float tensors, initializers and constants to the `--precision` type (fp16 or bf16), keeping
    in FP32 the nodes that evidence says need it, each with its reason: constants beyond the target's
    range (attention masks of -1e9) and everything they reach up to a bounded op such as Softmax;
    constants that flush to zero (epsilons); large reductions; Exp/Log on unknown ranges; activations
    that a reference run in ONNX Runtime sees beyond `max_abs` (8192 for FP16); and, where that run
    observed nothing, decomposed LayerNorm/RMSNorm statistics and Pow. Casts are inserted at the boundaries of FP32 regions (one per tensor and
    type, widen-narrow pairs cancelled); graph inputs and outputs keep their types. `If`/`Loop`/`Scan`
    bodies convert too, each keeping its interface (inputs, outputs, outer-scope values) FP32. The result is proven
    layer by layer against the FP32 model; if outputs leave the tolerance, the FP32 set widens around the
    first divergence and the conversion is retried (at most 4 times).

    ## When it applies
    Findings PRC303 (FP32-only model on a strongly typed release) when `--precision fp16` or `bf16` is
    given. A model that already carries FP16/BF16 tensors is left alone.

    ## Example
    `MatMul(x, W) -> Add(mask=-1e9) -> Softmax` becomes `Cast(x, fp16) -> MatMul(x16, W16) -> Cast(fp32)
    -> Add(mask) -> Softmax -> Cast(fp16) -> ...`: the masked Add and Softmax stay FP32.

    ## Safety
    Unsafe: every converted value is rounded to the target type. Proven against the original within
    atol/rtol 1e-2 (FP16; BF16 by emulation, 5e-2).

    ## Resolves
    PRC303
    """

    name = "convert-precision"
    reads_weights = True  # the fix pipeline gives it the model with its weights
    phase = 70
    summary = "convert FP32 to mixed FP16/BF16 with Casts around the regions that must stay FP32"
    applicability = Applicability.UNSAFE
    resolves = ("PRC303",)
    atol = 1e-2
    rtol = 1e-2

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        target = ctx.target.precision
        if target not in TARGETS:
            return Outcome(model, skipped=[f"--precision is {target or 'not given'}: convert-precision needs fp16 or bf16"])
        if _carries_low_precision(model.graph):
            return Outcome(model, skipped=["the model already carries FP16/BF16 tensors"])
        # Options from the CLI (--keep-io-types, --keep-fp32, --max-abs, --data) when the pipeline passes them.
        opts = dict(ctx.precision_options or {})
        opts.setdefault("tolerance", (self.atol, self.rtol) if target == "fp16" else None)
        res = convert(model, target, shapes=ctx.shapes, **opts)
        if not any(not d.kept_fp32 and d.kind in ("compute", "movement") for d in res.decisions):
            return Outcome(model, skipped=[f"every node stays FP32 ({len(res.kept)} kept with a reason)"]
                           + [f"kept FP32: {d.node} ({d.op_type}): {d.reason}" for d in res.kept] + res.notes)
        changes = [f"converted to {target}: {len(res.kept)} compute node(s) kept FP32 ({res.fp32_fraction:.1%} of compute), "
                   f"{res.casts_inserted} Cast(s) inserted" + (f", {res.retries} retr{'y' if res.retries == 1 else 'ies'}" if res.retries else "")]
        changes += [f"kept FP32: {d.node} ({d.op_type}): {d.reason}" for d in res.kept]
        return Outcome(res.model, changes, res.notes, details=res.to_dict())

    def tolerances(self, ctx: RewriteContext) -> tuple[float | None, float | None]:
        # BF16 keeps 8 mantissa bits: its storage rounding alone reaches a few 1e-2.
        return (5e-2, 5e-2) if ctx.target.precision == "bf16" else (self.atol, self.rtol)

    def proof_model(self, candidate: onnx.ModelProto, ctx: RewriteContext) -> onnx.ModelProto:
        # ONNX Runtime's CPU provider has no BF16 kernels for most ops: prove by emulation.
        return proof_model(candidate) if ctx.target.precision == "bf16" else candidate


REWRITES = (ConvertPrecision,)
