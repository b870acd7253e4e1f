"""TRT115 undocumented-operator-type."""

from __future__ import annotations

from ...findings import Severity
from ...model import dtype_name
from ...rule import Context, Rule
from ..constraints import violations

# Ops whose first input is not the tensor the matrix's type list describes.
_SKIP = {"Cast", "CastLike", "Constant", "ConstantOfShape", "Shape", "Size", "EyeLike", "RandomNormalLike",
         "RandomUniformLike", "If", "Loop", "Scan", "Range", "OneHot"}


class UndocumentedOperatorType(Rule):
    """An operator applied to an element type its support-matrix row does not list.

    ## What it does
    Compares the type of a node's first (data) input with the types the release's operator
    support matrix lists for that op. DOUBLE counts as FLOAT (it is cast down); on 8.6, INT64
    counts as INT32 (it is cast down). A warning: the matrix is documentation, and no importer
    assertion rejects the type. Where the importer does assert against it (an integer `MatMul`,
    an INT32 `Relu`, ...) the node is `TRT116`'s error instead, and not reported here.

    ## Why it breaks TensorRT
    The type is not promised: the layer may be rejected when the engine is built, or run in a
    precision other than the one the model was exported in.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (int32[2,3] a, int32[3,4] b) => (int32[2,4] y) { y = Einsum<equation = "ij,jk->ik">(a, b) }

    ## How to fix
    Cast the inputs to a listed type around the node (e.g. compute an integer Einsum in FLOAT).

    ## Fix safety
    A `DequantizeLinear` of constants on INT32 (the bias of ONNX Runtime's QDQ format) is replaced
    by its FLOAT value (`dequantize-constant-to-float`, safe). Otherwise no automatic fix.

    ## TensorRT versions
    All; types per release from `rules/trt/operators/`.

    ## Sources
    "Supported Types" column of each release's onnx-tensorrt `docs/operators.md`, corrected with
    the importer's own type assertions where they disagree (see comments in the tables).
    """

    code = "TRT115"
    name = "undocumented-operator-type"
    severity = Severity.WARNING
    summary = "operator input type not in the release's support matrix"

    def check(self, ctx: Context):
        rel = ctx.release
        present = {dtype_name(e) for g in ctx.model.graphs for kind, e in g.type_summary[0] if kind == "tensor" and e}
        # An op whose documented types cover every type in the model cannot be reported: skip it.
        eff = {"FLOAT" if t == "DOUBLE" else "INT32" if t == "INT64" and rel.int64 == "cast" else t for t in present}
        for (domain, op), refs in ctx.op_index().items():
            documented = rel.ops.get(op)
            if domain or op in _SKIP or not documented or eff <= set(documented) | {"UINT8"}:
                continue
            yield from self._check_op(ctx, refs, documented)

    def _check_op(self, ctx: Context, refs, documented):
        rel = ctx.release
        for elem, nodes in _by_input_type(ctx, refs).items():
            tn = dtype_name(elem)
            effective = "FLOAT" if tn == "DOUBLE" else ("INT32" if tn == "INT64" and rel.int64 == "cast" else tn)
            if effective in documented or tn == "UINT8" or tn not in rel.types:
                continue  # UINT8 and unrepresentable types have their own rules
            yield from self._report(ctx, nodes, tn, documented)

    def _report(self, ctx: Context, nodes, tn: str, documented):
        rel = ctx.release
        asserted = _asserted(ctx)
        for node in nodes:
            if id(node.node) in asserted:
                continue  # the importer rejects this input's type: TRT116 reports it as an error
            name = node.input(0)
            versions = tuple(
                v for v in ctx.kb.versions
                if node.op_type in ctx.kb.release(v).ops and tn not in ctx.kb.release(v).ops[node.op_type]
            )
            yield self.finding(
                ctx,
                f"{node.op_type} on {tn} input {name!r}: TensorRT {rel.version} documents {', '.join(documented)}",
                node=node,
                tensor=name,
                versions=versions,
                hint=f"cast {name!r} to one of {', '.join(documented)} around this node",
                fix=self._constant_dequantize_fix(ctx, node),
            )

    def _constant_dequantize_fix(self, ctx: Context, node):
        """A DequantizeLinear of constants (an INT32 bias of ONNX Runtime's QDQ format) is a constant:
        `dequantize-constant-to-float` stores its FLOAT value."""
        if node.op_type != "DequantizeLinear":
            return None
        consts = ctx.model.constants(node.graph)
        if all(consts.is_constant(i) for i in node.node.input if i):
            return self.fix_by("dequantize-constant-to-float")
        return None


def _by_input_type(ctx: Context, refs) -> dict[int, list]:
    """The nodes of one op type by the element type of their first input (once per model)."""

    def compute() -> dict[int, list]:
        out: dict[int, list] = {}
        for node in refs:
            name = node.input(0)
            elem = node.graph.elem_type_of(name) if name else 0
            if elem:
                out.setdefault(elem, []).append(node)
        return out

    first = refs[0]
    return ctx.model_memo(("TRT115-input-types", first.node.domain, first.op_type), compute)


def _asserted(ctx: Context) -> set[int]:
    """Protos of the nodes whose input type an importer assertion rejects on this release (TRT116)."""
    return ctx.memo("TRT115-asserted", lambda: {id(v.node.node) for v in violations(ctx) if v.constraint.kind == "input_type"})
