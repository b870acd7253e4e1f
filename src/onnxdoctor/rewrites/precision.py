"""Precision repairs: DOUBLE to FLOAT, and clamping constants that overflow FP16/BF16."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from .._proto import graphs
from ..dtype_limits import BF16_MAX, FP16_MAX, FP32_MAX
from ..findings import Applicability
from .base import Outcome, Rewrite, RewriteContext

# Ops through which a constant reaches the arithmetic that PRC301 names, unchanged in value.
_CARRIERS = {"Cast", "Identity", "Reshape", "Unsqueeze", "Squeeze", "Expand", "Flatten", "Transpose", "Tile"}


class CastDoubleToFloat(Rewrite):
    """Compute in FLOAT where the model uses DOUBLE inside the network.

    ## What it does
    Converts DOUBLE initializers and `Constant` values to FLOAT (clamping to the FLOAT range, as
    TensorRT would), and `Cast(to=DOUBLE)` inside the graph to `Cast(to=FLOAT)`. Graph inputs and
    outputs keep their types (the model's interface does not change); TensorRT casts those itself.

    ## When it applies
    Findings TRT112 (DOUBLE tensor).

    ## Example
    `Cast(to=DOUBLE) -> Mul(double_const)` becomes `Cast(to=FLOAT) -> Mul(float_const)`.

    ## Safety
    Unsafe: values are rounded to float32; proven within tolerance against the original.

    ## Resolves
    TRT112
    """

    name = "cast-double-to-float"
    reads_weights = True  # the fix pipeline gives it the model with its weights
    phase = 60
    summary = "compute in FLOAT instead of DOUBLE inside the network"
    applicability = Applicability.UNSAFE
    resolves = ("TRT112",)
    atol = 1e-3
    rtol = 1e-3

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        out = onnx.ModelProto()
        out.CopyFrom(model)
        io = {vi.name for vi in (*out.graph.input, *out.graph.output)}
        changes = []
        for g in graphs(out.graph):
            for i, t in enumerate(g.initializer):
                if t.data_type == TensorProto.DOUBLE:
                    g.initializer[i].CopyFrom(_to_float(t))
                    changes.append(f"initializer {t.name!r} DOUBLE -> FLOAT")
            for n in g.node:
                for a in n.attribute:
                    if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.DOUBLE and not set(n.output) & io:
                        a.i = TensorProto.FLOAT
                        changes.append(f"Cast {n.name or n.output[0]!r} to FLOAT instead of DOUBLE")
                    elif n.op_type == "Constant" and a.name == "value" and a.t.data_type == TensorProto.DOUBLE:
                        a.t.CopyFrom(_to_float(a.t))
                        changes.append(f"Constant {n.name or n.output[0]!r} DOUBLE -> FLOAT")
            for vi in g.value_info:
                if vi.type.tensor_type.elem_type == TensorProto.DOUBLE:
                    vi.type.tensor_type.elem_type = TensorProto.FLOAT
        if not changes:
            return Outcome(model, skipped=["no DOUBLE constant or Cast inside the network"])
        # Graph I/O typed DOUBLE now meets FLOAT values: bridge with Casts at the boundary.
        _bridge_io(out)
        try:
            out = onnx.shape_inference.infer_shapes(out)
        except Exception:  # noqa: BLE001 - inference is a convenience here; the proof decides
            pass
        return Outcome(out, changes)


def _to_float(t: TensorProto) -> TensorProto:
    arr = numpy_helper.to_array(t).astype(np.float64)
    arr = np.clip(arr, -FP32_MAX, FP32_MAX, where=np.isfinite(arr), out=arr)
    return numpy_helper.from_array(arr.astype(np.float32), t.name)


def _bridge_io(model: onnx.ModelProto) -> None:
    """Cast DOUBLE graph inputs to FLOAT where they enter FLOAT computation, and FLOAT results back
    to DOUBLE for DOUBLE graph outputs."""
    g = model.graph
    taken = {o for n in g.node for o in n.output} | {i.name for i in g.input} | {t.name for t in g.initializer}
    from .._proto import unique_name

    for vi in g.input:
        if vi.type.tensor_type.elem_type != TensorProto.DOUBLE:
            continue
        users = [n for n in g.node if vi.name in n.input and not (n.op_type == "Cast")]
        if not users:
            continue
        new = unique_name(taken, f"{vi.name}_as_float")
        for n in users:
            for k, inp in enumerate(n.input):
                if inp == vi.name:
                    n.input[k] = new
        g.node.insert(0, onnx.helper.make_node("Cast", [vi.name], [new], to=TensorProto.FLOAT, name=new))
    for vi in g.output:
        if vi.type.tensor_type.elem_type != TensorProto.DOUBLE:
            continue
        prod = next((n for n in g.node if vi.name in n.output), None)
        if prod is None or prod.op_type == "Cast":
            continue
        new = unique_name(taken, f"{vi.name}_float")
        for k, o in enumerate(prod.output):
            if o == vi.name:
                prod.output[k] = new
        g.node.append(onnx.helper.make_node("Cast", [new], [vi.name], to=TensorProto.DOUBLE, name=f"{new}_to_double"))


class ClampFp16Constants(Rewrite):
    """Clamp constants that overflow FP16 (or BF16) to the largest finite value of that type.

    ## What it does
    Follows each tensor that PRC301 reports back through value-preserving ops (Cast, Reshape,
    Unsqueeze, Expand, ...) to its constant source — an initializer, a `Constant`, or the fill value
    of a `ConstantOfShape`, in the main graph or a control-flow body — and clamps values beyond ±65504 (±inf included) to ±65504 (BF16:
    ±3.39e38). Typical case: attention masks of `-1e9` or `finfo(float32).min`.

    ## When it applies
    Findings PRC301 (FP16-overflowing constant) when the build precision includes FP16/BF16.

    ## Example
    `Mul(1 - mask, -3.4028235e38)` becomes `Mul(1 - mask, -65504)`: after Softmax the masked
    positions still get probability 0.

    ## Safety
    Unsafe: constant values change. The proof checks every output against the original within the
    rewrite's tolerance (atol 1e-3); masks feeding Softmax are unaffected in practice.

    ## Resolves
    PRC301
    """

    name = "clamp-fp16-constants"
    reads_weights = True  # the fix pipeline gives it the model with its weights
    phase = 60
    summary = "clamp constants beyond the FP16/BF16 range to its largest finite value"
    applicability = Applicability.UNSAFE
    resolves = ("PRC301",)
    atol = 1e-3
    rtol = 1e-3

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        limit = BF16_MAX if ctx.target.precision == "bf16" else FP16_MAX
        tensors = [f.location.tensor for f in ctx.findings if f.location.tensor]
        if not tensors:
            return Outcome(model, skipped=["no PRC301 finding names a tensor"])
        out = onnx.ModelProto()
        out.CopyFrom(model)
        # Every graph, control-flow bodies included: a mask inside an If branch is clamped where it is
        # defined (names are unique across scopes).
        producers = {o: n for g in graphs(out.graph) for n in g.node for o in n.output}
        inits = {t.name: t for g in graphs(out.graph) for t in g.initializer}
        changes, skipped, done = [], [], set()
        for name in tensors:
            src = name
            for _ in range(16):
                if src in inits or src not in producers:
                    break
                n = producers[src]
                if n.op_type in _CARRIERS and n.input:
                    src = n.input[0]
                else:
                    break
            if src in done:
                continue
            done.add(src)
            if src in inits:
                if _clamp_tensor(inits[src], limit):
                    changes.append(f"clamped initializer {src!r} to ±{limit:g}")
                continue
            n = producers.get(src)
            attr = None
            if n is not None and n.op_type in ("Constant", "ConstantOfShape"):
                attr = next((a for a in n.attribute if a.name == "value"), None)
            if attr is not None and _clamp_tensor(attr.t, limit):
                changes.append(f"clamped {n.op_type} {n.name or src!r} to ±{limit:g}")
            else:
                skipped.append(f"{name!r}: its value is not a constant this rewrite can reach")
        if not changes:
            return Outcome(model, skipped=skipped or ["nothing to clamp"])
        return Outcome(out, changes, skipped)


def _clamp_tensor(t: TensorProto, limit: float) -> bool:
    if t.data_type not in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16):
        return False
    arr = numpy_helper.to_array(t)
    wide = arr.astype(np.float64)
    clipped = np.clip(np.nan_to_num(wide, nan=np.nan, posinf=limit, neginf=-limit), -limit, limit)
    if np.array_equal(clipped, wide, equal_nan=True):
        return False
    new = numpy_helper.from_array(clipped.astype(arr.dtype), t.name)
    t.CopyFrom(new)
    return True


REWRITES = (CastDoubleToFloat, ClampFp16Constants)
