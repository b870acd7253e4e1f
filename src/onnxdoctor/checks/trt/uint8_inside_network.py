"""TRT113 uint8-inside-network."""

from __future__ import annotations

from ..._onnx import TensorProto

from ...findings import Severity
from ...kb import version_key
from ...rule import Context, Rule
from ...rule_fixes import fix_for, substitution_for
from ..constraints import violations
from ._substitutes import small_int_fix
from ._support import Resolution, resolve
from ._types import may_have, sites

_QDQ = {"QuantizeLinear", "DequantizeLinear"}
_NOT_IMPORTED = frozenset({Resolution.NONE, Resolution.FUNCTION_UNSUPPORTED})
_ZERO_POINT_CONSTRAINTS = frozenset({"QuantizeLinear.zero_point", "DequantizeLinear.zero_point"})


class Uint8InsideNetwork(Rule):
    """A UINT8 tensor that is not a network input or output.

    ## What it does
    Flags UINT8 initializers and intermediate values. UINT8 graph inputs and outputs are fine
    (typically an image input followed by a `Cast`), as are UINT8 Q/DQ zero points from TensorRT
    10.10 and QuantizeLinear outputs (ONNX types them UINT8 by default; TensorRT quantizes to
    INT8). Intermediate UINT8 values that only feed a `Cast` or a graph output are allowed. UINT8
    data into `DequantizeLinear` is an error: it needs a DLA-only parser flag.

    A UINT8 *network input* read by an op other than `Cast`/`Identity` is a warning: TensorRT
    documents UINT8 inputs only as converted to FLOAT/FLOAT16 before other layers (an importer that
    asserts against UINT8, such as `Concat` or `Resize`, makes it `TRT116`'s error instead).

    A UINT8 tensor that belongs to another finding is not reported again: one made by a node the
    release has no importer for, or read only by such nodes (the UINT8 weights and activations of
    ONNX Runtime's `ConvInteger`/`MatMulInteger`/`DynamicQuantizeLinear`, part of their `TRT101`/
    `TRT102` finding), and a UINT8 zero point of Q/DQ nodes that fail on its value (`TRT125`).

    ## Why it breaks TensorRT
    TensorRT supports UINT8 only as a network I/O type; most importers reject UINT8 inputs
    (`notInvalidType(..., {"UINT8"})`), and 8.6 converts UINT8 initializers to INT32.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[4] x) => (float[4] y) {
          u = Cast<to = 2>(x)
          v = Relu(u)
          y = Cast<to = 1>(v)
        }

    ## How to fix
    Cast UINT8 inputs to FLOAT/INT32 right at the network boundary and compute in that type.

    ## Fix safety
    UINT8 values computed outside quantization (a `Cast` to UINT8 and the arithmetic on it, UINT8
    initializers added to an image) are computed in INT32 with explicit wrap-around by
    `small-int-to-int32` (safe: the same values). UINT8 values of ONNX Runtime's dynamic quantization
    (`DynamicQuantizeLinear` outputs, UINT8 weights of `MatMulInteger`, `ConvInteger` and their
    contrib forms) go with the rewrite that replaces those ops by float ones
    (`dynamic-quantization-to-float` and its kin, unsafe: proven within tolerance); those of
    static quantization with `qlinear-to-qdq` (QLinearConv/QLinearMatMul to Q/DQ) and
    `qdq-to-symmetric-int8` (UINT8 Q/DQ to INT8, unsafe), or `dequantize-constant-to-float` for
    UINT8 constants behind a `DequantizeLinear` (safe).

    ## TensorRT versions
    All; UINT8 Q/DQ constants are accepted from 10.10.

    ## Sources
    TensorRT `DataType::kUINT8` (API reference, 8.6 to 10.x: "Use the IdentityLayer to convert kUINT8
    network-level inputs to {kFLOAT, kHALF} prior to use with other TensorRT layers");
    `docs/operators.md` header ("UINT8 is only supported as network input or output tensor
    types"); TensorRT CHANGELOG 10.10 (UINT8 constants for Q/DQ); docs/research/parser-facts.md.
    """

    code = "TRT113"
    name = "uint8-inside-network"
    severity = Severity.ERROR
    summary = "UINT8 tensor inside the network"

    def _network_input(self, ctx: Context, site):
        return _network_input_findings(self, ctx, site)

    def check(self, ctx: Context):
        qdq_ok = ctx.release.key >= version_key("10.10")
        if not may_have(ctx, lambda kind, elem: elem == TensorProto.UINT8):
            return
        folded = _zero_point_failures(ctx)
        for site in sites(ctx):
            if site.kind != "tensor" or site.elem_type != TensorProto.UINT8:
                continue
            if site.role == "input":
                yield from self._network_input(ctx, site)
                continue
            if site.role == "output":
                continue
            consumers = [site.graph.nodes[i] for i in site.graph.consumers.get(site.tensor, [])]
            # QuantizeLinear's ONNX output type defaults to UINT8, but the parser quantizes to INT8
            # ("ONNX default is UINT8, TRT will default to INT8", QuantDequantLinearHelper).
            if site.producer is not None and site.producer.op_type == "QuantizeLinear":
                continue
            # From 10.10 a UINT8 zero point (input 2 of Q/DQ) is imported; UINT8 *data* into
            # DequantizeLinear still needs the DLA-only parser flag, so it stays an error.
            if site.role == "initializer" and qdq_ok and consumers and all(
                c.op_type in _QDQ and list(c.input).index(site.tensor) == 2 for c in consumers
            ):
                continue
            if site.role == "value" and all(c.op_type == "Cast" for c in consumers) and consumers or (
                site.role == "value" and not consumers and site.tensor in site.graph.outputs
            ):
                continue
            if _part_of_another_finding(ctx, site, folded):
                continue
            yield self.finding(
                ctx,
                f"{site.role} {site.tensor!r} is UINT8 inside the network; TensorRT allows UINT8 only at network inputs and outputs",
                node=site.producer,
                tensor=site.tensor,
                subgraph=site.graph.path,
                hint="cast to FLOAT or INT32 at the network boundary",
                versions=ctx.kb.versions,
                fix=_quantized_op_fix(self.code, site.producer, consumers) or _plain_fix(self.code, ctx, site, consumers),
            )


def _network_input_findings(rule, ctx: Context, site):
    """A UINT8 network input is meant to be converted first (TensorRT's DataType::kUINT8: "Use the
    IdentityLayer to convert kUINT8 network-level inputs to {kFLOAT, kHALF} prior to use with other
    TensorRT layers"); the parser turns a Cast into exactly that. Read by another op, it is not
    promised to build: importers that assert against UINT8 are TRT116's errors, the others a warning
    here. (Casts to other types are left alone: the Cast layer page lists every UINT8 conversion.)"""
    g = site.graph
    asserted = _asserted_nodes(ctx)
    for i in g.consumers.get(site.tensor, []):
        ref = g.ref(i)
        if ref.op_type in ("Cast", "Identity") or id(ref.node) in asserted:
            continue
        yield rule.finding(
            ctx,
            f"UINT8 network input {site.tensor!r} is read by {ref.op_type}: TensorRT documents UINT8 inputs "
            "only as converted (Cast) to FLOAT or FLOAT16 before other layers",
            node=ref, tensor=site.tensor, severity=Severity.WARNING, versions=ctx.kb.versions,
            hint="Cast the input to FLOAT (or FLOAT16) right after the network input",
        )


def _quantized_op_fix(code, producer, consumers):
    """UINT8 values made or read by integer quantized ops that a rewrite replaces (ONNX Runtime's
    dynamic quantization, QLinearConv/QLinearMatMul) go with them: the finding names that rewrite
    (what it leaves of UINT8 Q/DQ, the Q/DQ rewrites take next)."""
    if producer is not None:
        return substitution_for(code, producer.op_type, producer.domain)
    fixes = [substitution_for(code, c.op_type, c.domain) for c in consumers]
    return next((f for f in fixes if f is not None), None)


def _plain_fix(code: str, ctx: Context, site, consumers):
    """UINT8 arithmetic outside quantization (no Q/DQ reads or makes it) is computed in INT32; a
    UINT8 constant of Q/DQ goes with the Q/DQ rewrites: a DequantizeLinear of constants is folded
    to FLOAT, an activation pair is re-quantized to symmetric INT8."""
    if site.producer is None and consumers and all(c.op_type in _QDQ for c in consumers):
        consts = ctx.model.constants(site.graph)
        folded = all(c.op_type == "DequantizeLinear" and all(consts.is_constant(i) for i in c.input if i) for c in consumers)
        return fix_for(code, "dequantize-constant-to-float" if folded else "qdq-to-symmetric-int8")
    if (site.producer is not None and site.producer.op_type in _QDQ) or any(c.op_type in _QDQ for c in consumers):
        return None
    return small_int_fix(code, ctx.release, "UINT8", site.role, ctx.model.opset)


def _asserted_nodes(ctx: Context) -> set[int]:
    """Protos of nodes whose importer rejects an input's type (TRT116 reports those)."""
    return ctx.memo("TRT113-asserted", lambda: {id(v.node.node) for v in violations(ctx) if v.constraint.kind == "input_type"})


def _part_of_another_finding(ctx: Context, site, zero_point_failures: set) -> bool:
    """A UINT8 tensor made by a node the release cannot import, or read only by such nodes (an
    unsupported integer op and its UINT8 weights), is part of that node's TRT101/TRT102 finding; a
    UINT8 zero point of Q/DQ nodes that fail on its value (TRT125) is part of theirs."""
    def fails(node) -> bool:
        return resolve(ctx.release, ctx.target, ctx.model, node) in _NOT_IMPORTED

    if site.producer is not None and fails(site.producer):
        return True
    g = site.graph
    consumers = [g.ref(i) for i in g.consumers.get(site.tensor, [])]
    if not consumers:
        return False
    if all(fails(c) for c in consumers):
        return True
    return all(id(c.node) in zero_point_failures and c.input(2) == site.tensor for c in consumers)


def _zero_point_failures(ctx: Context) -> set[int]:
    """Protos of the Q/DQ nodes whose zero point fails its value constraint on this release."""
    return {id(v.node.node) for v in violations(ctx) if v.constraint.id in _ZERO_POINT_CONSTRAINTS}
