"""Emulating FP16/BF16 in FP32 for proofs where ONNX Runtime's CPU provider has no kernels: every
target-typed tensor rounded to the target type, accumulation in FP32."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import numpy_helper

from .._proto import unique_name
from .decisions import TARGETS
from .planner import elem_types


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
                mid = unique_name(taken, f"{o}__round")
                n.output[0] = mid
                nodes.append(onnx.helper.make_node("Cast", [mid], [o], to=TP.FLOAT, name=f"{n.name}__back"))
            continue
        for j, o in enumerate(n.output):
            if o and types.get(o) == tt:
                raw = unique_name(taken, f"{o}__f32")
                mid = unique_name(taken, f"{o}__round")
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
