"""TRT111 unsupported-data-type."""

from __future__ import annotations

from ...findings import Severity
from ...model import dtype_name
from ...rule import Context, Rule
from ._substitutes import small_int_fix
from ._types import may_have, sites

# Handled by their own rules: DOUBLE (TRT112, cast down), UINT8 (TRT113, I/O only).
_OWN_RULES = {"DOUBLE", "UINT8"}


class UnsupportedDataType(Rule):
    """A tensor whose element type the target TensorRT release cannot represent.

    ## What it does
    Checks the element type of graph inputs and outputs, initializers and every node output whose
    type is known (after ONNX shape inference) against the types the release's parser can convert:
    for example STRING, INT16, UINT16/32/64, COMPLEX64/128 never; BFLOAT16 and FP8 only from 9.0;
    INT4 from 10.0; FP4 from 10.8. Sparse initializers are reported too.

    ## Why it breaks TensorRT
    The parser converts every ONNX type to a `nvinfer1::DataType`; a type without a counterpart
    fails with `Unsupported ONNX data type` (graph inputs) or an importer assertion.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (int16[4] x) => (int16[4] y) { y = Identity(x) }

    ## How to fix
    Cast to a supported type at export (e.g. INT16 → INT32, UINT16 → INT32, BF16 → FP16 on 8.6),
    and keep strings and complex numbers out of the TensorRT part of the pipeline.

    ## Fix safety
    INT16, UINT16 and UINT32 values inside the network (not graph inputs or outputs) are computed in
    INT32 (UINT32: INT64) with explicit wrap-around by `small-int-to-int32` (safe: the same values).
    Sparse initializers are stored dense by `densify-sparse-constants` (safe). FP8 or INT4 weights
    behind a `DequantizeLinear` on a release without the type are stored dequantized in FLOAT by
    `dequantize-constant-to-float` (safe). No automatic fix for
    graph inputs and outputs (changing I/O types changes the model's interface)
    or for the other types.

    ## TensorRT versions
    All; the per-release type set is `types` in `rules/trt/releases.toml`.

    ## Sources
    onnx-tensorrt `convertDtype` (`onnx2trt_utils.cpp` ≤ 9.3, `importerUtils.cpp` ≥ 10.0) per
    release; header of each release's `docs/operators.md` ("TensorRT supports the following ONNX
    data types"); docs/research/parser-facts.md.
    """

    code = "TRT111"
    name = "unsupported-data-type"
    severity = Severity.ERROR
    summary = "tensor type TensorRT cannot represent"

    def check(self, ctx: Context):
        supported = ctx.release.types
        for g in ctx.model.graphs:
            if g.proto is not None:
                for st in g.proto.sparse_initializer:
                    yield self.finding(
                        ctx,
                        f"sparse initializer {st.values.name!r} is not supported by the TensorRT ONNX parser",
                        tensor=st.values.name,
                        subgraph=g.path,
                        versions=ctx.kb.versions,
                        hint="store it as a dense initializer",
                        fix=self.fix_by("densify-sparse-constants"),
                    )
        if not may_have(ctx, lambda kind, elem: kind == "tensor" and elem != 0 and dtype_name(elem) not in supported and dtype_name(elem) not in _OWN_RULES):
            return
        for site in sites(ctx):
            if site.kind != "tensor" or site.elem_type == 0:
                continue
            name = site.type_name
            if name in supported or name in _OWN_RULES:
                continue
            versions = ctx.kb.versions_where(lambda r, n=name: n not in r.types)
            yield self.finding(
                ctx,
                f"{site.role} {site.tensor!r} has type {name}, which TensorRT {ctx.release.version} cannot represent",
                node=site.producer,
                tensor=site.tensor,
                subgraph=site.graph.path,
                versions=versions,
                hint=_hint(name, ctx),
                fix=small_int_fix(self.code, ctx.release, name, site.role, ctx.model.opset) or self._weight_fix(ctx, site),
            )

    def _weight_fix(self, ctx: Context, site):
        """Quantized weights (FP8, INT4) read only by DequantizeLinear nodes of constants: their
        FLOAT value replaces the DequantizeLinear (`dequantize-constant-to-float`)."""
        if site.role != "initializer":
            return None
        readers = [site.graph.nodes[i] for i in site.graph.consumers.get(site.tensor, [])]
        consts = ctx.model.constants(site.graph)
        if readers and all(r.op_type == "DequantizeLinear" and r.input[0] == site.tensor
                           and all(consts.is_constant(i) for i in r.input if i) for r in readers):
            return self.fix_by("dequantize-constant-to-float")
        return None


def _hint(type_name: str, ctx: Context) -> str:
    if type_name == "STRING":
        return ("no equivalent graph: TensorRT has no string tensors. Keep string processing (tokenizers, "
                "lookups, normalization) outside the engine, before and after it")
    later = [v for v in ctx.kb.versions if type_name in ctx.kb.release(v).types]
    if later and ctx.kb.release(later[0]).key > ctx.release.key:
        return f"{type_name} is supported from TensorRT {later[0]}; or cast it to a supported type at export"
    return "cast it to a supported type (e.g. INT32, FLOAT or FLOAT16) before it enters TensorRT"
