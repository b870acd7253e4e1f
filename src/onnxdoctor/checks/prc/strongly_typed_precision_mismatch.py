"""PRC305 strongly-typed-precision-mismatch."""

from __future__ import annotations

from ..._onnx import TensorProto, get_schema

from ...findings import Severity
from ...kb import version_key
from ...model import dtype_name
from ...rule import Context, Rule

_FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}
# Ops whose ONNX schema lets float inputs differ in type, but whose TensorRT layer needs one type
# in a strongly typed network (an elementwise layer has a single input type).
_ELEMENTWISE_ACROSS_PARAMS = {"Pow"}


class StronglyTypedPrecisionMismatch(Rule):
    """A node whose float inputs have different types where a strongly typed network needs one.

    ## What it does
    Looks at nodes whose floating-point inputs carry different types (FP32 with FP16, say), as
    mixed-precision conversions leave them, and reports those TensorRT's strong typing rejects:
    inputs that the ONNX schema binds to one type parameter (invalid ONNX in any case); `Pow`
    with a base and exponent of different types (one elementwise layer, one type); and
    `BatchNormalization` with statistics in another type than its input before 10.7.

    ## Why it breaks TensorRT
    A strongly typed network (the only kind from TensorRT 11.0; `--stronglyTyped` in 10.x) takes
    every tensor type from the graph and does not insert casts: a layer whose inputs disagree
    fails to build. Mixed-precision BatchNormalization is accepted from 10.7.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float16[4] x) => (float16[4] y) <float[1] e = {2.0}> { y = Pow(x, e) }

    ## How to fix
    Insert a `Cast` so that both inputs share a type, or convert the whole region consistently
    (`onnxdoctor fix --precision fp16` inserts Casts only at region boundaries).

    ## Fix safety
    No automatic fix for a graph converted elsewhere.

    ## TensorRT versions
    Error on strongly typed releases (11.x); a warning on 10.x, where strong typing is opt-in.

    ## Sources
    TensorRT 11.0 release notes and migration guide (strong typing only; no implicit casts);
    TensorRT CHANGELOG 10.7 ("mixed-precision BatchNormalization in strongly-typed mode");
    the ONNX operator schemas (type constraints).
    """

    code = "PRC305"
    name = "strongly-typed-precision-mismatch"
    severity = Severity.ERROR
    summary = "node with float inputs of different types under strong typing"

    def check(self, ctx: Context):
        if not any(e in _FLOATS for g in ctx.model.graphs for _, e in g.type_summary[0] if e != TensorProto.FLOAT):
            return  # an all-FP32 (or non-float) graph cannot mix float types
        sev = Severity.ERROR if ctx.release.strongly_typed else Severity.WARNING
        bn_ok = ctx.release.key >= version_key("10.7")
        for node in ctx.nodes():
            if node.domain:
                continue
            ins = [(k, i, node.graph.elem_type_of(i)) for k, i in enumerate(node.node.input) if i]
            floats = [(k, i, t) for k, i, t in ins if t in _FLOATS]
            if len({t for _, _, t in floats}) < 2:
                continue
            reason = self._reason(ctx, node, floats, bn_ok)
            if reason is None:
                continue
            kinds = ", ".join(f"{i!r}: {dtype_name(t)}" for _, i, t in floats)
            yield self.finding(
                ctx, f"{node.op_type} mixes float types ({kinds}); {reason}", node=node, severity=sev,
                versions=tuple(v for v in ctx.kb.versions if ctx.kb.release(v).strongly_typed),
                hint="Cast the inputs to one type, or convert the region consistently",
            )

    def _reason(self, ctx: Context, node, floats, bn_ok: bool) -> str | None:
        try:
            schema = get_schema(node.op_type, max(ctx.model.op_version(node), 1), "")
        except Exception:  # noqa: BLE001 - unknown op: other rules report it
            return None
        params: dict[str, set[int]] = {}
        for k, _, t in floats:
            formal = schema.inputs[min(k, len(schema.inputs) - 1)] if schema.inputs else None
            if formal is not None:
                params.setdefault(formal.type_str, set()).add(t)
        if any(len(ts) > 1 for ts in params.values()):
            return "inputs sharing one ONNX type parameter must have the same type"
        if node.op_type in _ELEMENTWISE_ACROSS_PARAMS:
            return "TensorRT's elementwise layer takes one input type in a strongly typed network"
        if node.op_type == "BatchNormalization" and not bn_ok:
            return "mixed-precision BatchNormalization is supported in strongly typed mode from TensorRT 10.7"
        return None
