"""PRC301 fp16-overflowing-constant."""

from __future__ import annotations

import math

import numpy as np
from ..._onnx import TensorProto, np_dtype

from ...dtype_limits import BF16_MAX, BF16_OVERFLOW, FP16_MAX, FP16_OVERFLOW
from ...findings import Severity
from ...model import Graph, tensor_value
from ...rule import Context, Rule

# Ops where a constant meets runtime data arithmetically: an overflowed operand turns results into
# inf or NaN (inf * 0, inf - inf). Clip/comparison bounds are left out: an infinite bound is harmless.
ARITHMETIC = frozenset(
    {"Add", "Sub", "Mul", "Div", "Where", "Max", "Min", "Sum", "Mean", "Pow", "MatMul", "Gemm", "Conv",
     "ConvTranspose", "Einsum"}
)
# Ops that carry a constant to its consumer unchanged in value (ConstantView can't always evaluate
# them because their shape input is runtime, e.g. Expand to Shape(x)).
_CARRIERS = frozenset({"Expand", "Tile", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Transpose"})
_FLOAT = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}
# Attention masks are big and usually precomputed: scan inline float initializers feeding these ops
# without copying (np.frombuffer), up to this many elements.
_MASK_OPS = frozenset({"Add", "Sub", "Mul", "Where", "Max", "Min"})
_BIG_SCAN = 1 << 24


class Fp16OverflowingConstant(Rule):
    """A constant beyond the FP16 (or BF16) range meets runtime data in arithmetic.

    ## What it does
    Looks at every constant operand of an arithmetic node (Add, Sub, Mul, Div, Where, Max, Min,
    MatMul, Gemm, Conv, ...) whose value is known without running the model: initializers,
    Constant nodes, constant-foldable chains, ConstantOfShape fills, and constants carried by
    Expand/Tile/Reshape. It reports values that round to ±inf in FP16 (|x| ≥ 65520, just beyond the
    largest finite 65504) or are ±inf when the precision intent includes FP16, and values that round
    to ±inf in BF16 (|x| ≥ ~3.396e38, e.g. `torch.finfo(float32).min`) or are ±inf when it includes
    BF16. On TensorRT 11 (strongly typed) the tensor types decide: an FP32
    constant stays FP32 unless the user states `--precision fp16`/`bf16`, so only constants that are
    already FP16/BF16 in the graph (typically a Cast of -1e9 to FP16, which is -inf) are reported
    there. External weights are never read: their values are unknown and the rule stays silent.

    ## Why it breaks TensorRT
    With FP16 enabled, TensorRT stores weights and runs layers in FP16 where it is faster. A value
    of magnitude 65520 or more (beyond the largest finite 65504) becomes ±inf. Attention masks are the classic case: exporters write `-1e9`,
    `-inf` or `torch.finfo(float32).min` (-3.4e38) and add it to the scores before Softmax, or
    compute `(1 - mask) * finfo.min`. In FP16 `inf * 0`, `inf - inf` and a Softmax over a row of
    -inf give NaN, so the engine builds and runs but outputs NaN or garbage that ONNX Runtime in
    FP32 never shows.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float16[1,4,8,8] scores, bool[1,1,8,8] keep) => (float16[1,4,8,8] y) {
          big = Constant<value = float[1] {-1000000000.0}>()
          neg = Cast<to = 10>(big)
          zero = Constant<value = float16[1] {0.0}>()
          mask = Where(keep, zero, neg)
          s = Add(scores, mask)
          y = Softmax<axis = -1>(s)
        }

    ## How to fix
    Use the most negative finite value of the compute type for masks (`-65504` in FP16, or
    `torch.finfo(dtype).min` of the dtype the model is exported in), or keep the mask arithmetic in
    FP32. `onnxdoctor fix` clamps the constants to the FP16 limit.

    ## Fix safety
    `clamp-fp16-constants` is unsafe: the constant changes (-1e9 becomes -65504); for masks the
    result after Softmax is the same within tolerance, which the fix proves in ONNX Runtime.

    ## TensorRT versions
    All releases, whenever the precision intent includes FP16 or BF16 (`--precision`, or FP16/BF16
    tensors in the graph on 11.x).

    ## Sources
    IEEE 754 binary16 range (max finite 65504; round to nearest even gives inf from 65520) and
    bfloat16 range (max finite ~3.3895e38, inf from ~3.3962e38); NVIDIA
    TensorRT developer guide, "Reduced Precision" (FP16 weights and layers when FP16 is enabled);
    shared/trt-operators/VERSIONS.md §2.2 (11.x: precision follows the ONNX tensor types); the
    `finfo.min` / `-inf` masks in the BERT, GPT-2 and Llama exports of fixtures/models/real.
    """

    code = "PRC301"
    name = "fp16-overflowing-constant"
    severity = Severity.WARNING
    summary = "constant outside the FP16/BF16 range used in arithmetic"

    @staticmethod
    def _judge(ctx: Context, g: Graph, tensor: str, op_type: str, limits, fp32_converted: bool) -> str | None:
        val = _constant_value(ctx, g, tensor, op_type)
        if val is None or val.dtype.kind != "f" or val.size == 0:
            return None
        reduced = val.dtype == np.float16 or _is_bf16(g, tensor)
        if not reduced and not fp32_converted:
            return None
        return _overflow(val, limits, reduced)

    def check(self, ctx: Context):
        precisions = ctx.precisions
        limits = []
        if "fp16" in precisions:
            limits.append(("FP16", FP16_MAX, FP16_OVERFLOW))
        if "bf16" in precisions:
            limits.append(("BF16", BF16_MAX, BF16_OVERFLOW))
        if not limits:
            return
        # Strongly typed with a graph-derived intent: FP32 constants stay FP32.
        fp32_converted = not ctx.release.strongly_typed or ctx.precision_source == "flag"
        views: dict[int, object] = {}
        verdicts: dict[tuple, str | None] = {}  # a constant shared by many nodes is judged once
        for ref in ctx.nodes_of(*ARITHMETIC):
            g = ref.graph
            ins = g.node_inputs[ref.index]  # the view's list: not the proto's repeated field, twice
            cv = views.get(id(g))
            if cv is None:
                cv = views[id(g)] = ctx.model.constants(g)
            # A node whose inputs are all constant is folded; the value is reported where it meets data.
            inits = g.initializers
            if all(not i or i in inits or cv.is_constant(i) for i in ins):
                continue
            seen: set[str] = set()
            for i, inp in enumerate(ins):
                if not inp or inp in seen or (ref.op_type == "Where" and i == 0):
                    continue
                seen.add(inp)
                key = (id(g), inp, ref.op_type in _MASK_OPS)
                if key in verdicts:
                    msg = verdicts[key]
                else:
                    msg = verdicts[key] = self._judge(ctx, g, inp, ref.op_type, limits, fp32_converted)
                if msg is None:
                    continue
                yield self.finding(
                    ctx,
                    f"{ref.op_type} operand {inp!r} {msg}; in {'/'.join(n for n, _, _ in limits)} arithmetic "
                    "it turns results into inf or NaN (inf*0, inf-inf, Softmax of an all -inf row)",
                    node=ref,
                    tensor=inp,
                    versions=ctx.kb.versions,
                    hint="use the most negative finite value of the compute type (-65504 for FP16) for masks, "
                    "or keep this arithmetic in FP32",
                )


def _is_bf16(g: Graph, tensor: str) -> bool:
    return g.elem_type_of(tensor) == TensorProto.BFLOAT16


def _overflow(val: np.ndarray, limits, reduced: bool) -> str | None:
    """Describe what overflows, or None. `limits`: (name, largest finite, first magnitude that rounds
    to inf). `reduced`: the value is already FP16/BF16 (only inf counts)."""
    if not reduced:
        peak = float(np.max(np.abs(val)))
        if peak < min(overflow for _, _, overflow in limits):  # the common case, one pass (NaN falls through)
            return None
    has_inf = bool(np.isinf(val).any())
    if reduced:
        return "holds ±inf in FP16/BF16 (e.g. -1e9 or finfo(float32).min cast down)" if has_inf else None
    finite = val[np.isfinite(val)] if has_inf or np.isnan(val).any() else val
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 0.0
    for name, limit, overflow in limits:
        if max(abs(lo), abs(hi)) >= overflow:
            extreme = lo if abs(lo) >= abs(hi) else hi
            return f"holds {extreme:.4g}, beyond the {name} range (±{limit:.6g}): it becomes {'-' if extreme < 0 else '+'}inf"
    if has_inf:
        return f"holds {'-' if bool(np.isneginf(val).any()) else '+'}inf"
    return None


def _constant_value(ctx: Context, g: Graph, tensor: str, consumer_op: str) -> np.ndarray | None:
    """The value of `tensor` when it is a compile-time constant (or a constant fill broadcast to a
    runtime shape); None when unknown."""
    cv = ctx.model.constants(g)
    for _ in range(8):
        if cv.is_constant(tensor):
            with np.errstate(over="ignore", invalid="ignore"):  # -1e9 cast to FP16 is meant to overflow here
                val = cv.value(tensor)
            if val is None and consumer_op in _MASK_OPS:
                val = _big_initializer(g, tensor)
            return val
        ref = g.producer_ref(tensor)
        if ref is None or ref.domain:
            return None
        node = ref.node
        if node.op_type == "ConstantOfShape":
            fill = ref.attr("value")
            return tensor_value(fill) if fill is not None else None
        if node.op_type in _CARRIERS and node.input:
            tensor = node.input[0]
            continue
        if node.op_type == "Cast" and node.input:
            inner = _constant_value(ctx, g, node.input[0], consumer_op)
            if inner is None:
                return None
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    return inner.astype(np_dtype(ref.attr("to")))
            except Exception:  # noqa: BLE001 - odd target type: unknown
                return None
        return None
    return None


def _big_initializer(g: Graph, tensor: str) -> np.ndarray | None:
    """Zero-copy view of an inline float initializer too big for ConstantView (precomputed masks)."""
    while g is not None and tensor not in g.initializers:
        if tensor in g.producers or tensor in g.inputs:
            return None
        g = g.outer
    if g is None:
        return None
    t = g.initializers[tensor]
    if t.data_location == TensorProto.EXTERNAL or t.data_type not in _FLOAT:
        return None
    n = math.prod(int(d) for d in t.dims)
    if n > _BIG_SCAN:
        return None
    raw = g.raw_data(tensor)
    dtype = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64, TensorProto.FLOAT16: np.float16}.get(t.data_type)
    if not raw or dtype is None or len(raw) != n * np.dtype(dtype).itemsize:
        return None
    return np.frombuffer(raw, dtype=dtype)
