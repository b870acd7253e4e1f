"""TRT116 rejected-input-type."""

from __future__ import annotations

from ..._onnx import TensorProto
from ...findings import Severity
from ...rule import Context
from ...rule_fixes import INTEGER_MATMUL_UNROLL_MAX_K
from ._constraint_rule import ConstraintRule


class RejectedInputType(ConstraintRule):
    """An input whose data type the op's TensorRT importer asserts against.

    ## What it does
    Evaluates the `input_type` constraints of `rules/trt/constraints.toml`: the type checks the
    importers make before building a layer, read from the onnx-tensorrt source of each release
    (`notInvalidType(...)`, the elementwise and unary type checks). For example integer operands of
    `MatMul`/`Gemm`/`PRelu`, integer or BOOL bases and exponents of `Pow`, INT32/BOOL/UINT8 inputs of
    activations (`Relu`, `Sigmoid`, ...), BOOL inputs of arithmetic, non-BOOL inputs of `And`/`Or`/
    `Xor`, INT32 (and from 10.1 INT64) inputs of `Exp`, `Sqrt`, `Floor`, ..., and UINT8 network
    inputs fed straight into ops that reject UINT8 (`Concat`, `Gather`, `Slice`, `Resize`, ...).
    Types are compared as the release sees them: TensorRT 8.6 casts INT64 to INT32 before any
    importer runs, so an INT64 `MatMul` operand is rejected there as INT32.

    A type that the support matrix does not list but no importer asserts against is `TRT115`
    (warning), not this rule; a UINT8 tensor inside the network is `TRT113`.

    ## Why it breaks TensorRT
    The importer fails the node: `In node 12 (importMatMul): UNSUPPORTED_NODE: Found unsupported
    input type of INT32`, or `Elementwise layer does not support operator POW with boolean or
    integer types`. The model does not parse.

    ## Example
        <ir_version: 8, opset_import: ["" : 13]>
        g (int32[2,3] a, int32[3,4] b) => (int32[2,4] y) { y = MatMul(a, b) }

    ## How to fix
    Compute in floating point: `Cast` the inputs to FLOAT (and the result back if an integer is
    needed), or, for a UINT8 network input, `Cast` it right after the input.

    Some of these forms are not valid ONNX either: an input type outside the operator's own type
    constraints (INT32 `Hardmax`, BOOL `Add`) is refused by `onnx.checker` and ONNX Runtime. Such a
    model has no defined meaning, so `fix` proves no rewrite of it and says so ("the model is
    invalid ONNX"); re-export it with the cast in place.

    ## Fix safety
    Exact rewrites where one exists (all safe): an integer `MatMul` becomes `Mul` + `ReduceSum` in
    the integer type (from 10.0, whose ReduceSum takes INT32; before, with K up to 64 known, a sum of
    K products of a column and a row, unrolled; `integer-matmul-to-mul-reduce-sum`);
    an integer exponent of a float `Pow` is cast to the float type (`pow-exponent-to-float`); integer
    `Relu` is `Max(x, 0)` (`int-relu-to-max`); `Abs` of an unsigned value is the value
    (`abs-unsigned-to-identity`); a nearest `Resize` of UINT8 runs in FLOAT (`resize-nearest-via-float`);
    a UINT8 network input into `Concat` and other ops that only move or compare values is computed in
    INT32 (`small-int-to-int32`). Otherwise no automatic fix: casting integers to FLOAT is exact only
    below 2^24.

    ## TensorRT versions
    Per constraint, listed in each finding (8.6 to 10.1 read in the source; later releases keep the
    last read assertion until a release is known to drop it).

    ## Sources
    Each constraint's `source` field: the file, line and revision of the assertion in onnx-tensorrt
    (`builtin_op_importers.cpp`/`onnx2trt_utils.cpp` up to 9.3, `onnxOpImporters.cpp`/
    `importerUtils.cpp` from 10.0); docs/research/importer-assertions.md.
    """

    code = "TRT116"
    name = "rejected-input-type"
    severity = Severity.ERROR
    summary = "input type the op's importer asserts against"
    kinds = frozenset({"input_type"})
    hint_text = "cast the input to a type the importer accepts (FLOAT/FLOAT16) before this node"

    def fix_for(self, ctx: Context, v):
        # The rewrites a constraint names apply only where their construction is possible.
        if v.fix == "integer-matmul-to-mul-reduce-sum" and "INT32" not in ctx.release.ops.get("ReduceSum", ()):
            # 8.6/9.x: ReduceSum is float only; the rewrite then unrolls the sum over a small static K.
            t = v.node.graph.type_of(v.node.input(0))
            k = t.shape[-1] if t is not None and t.shape else None
            if not (isinstance(k, int) and 0 < k <= INTEGER_MATMUL_UNROLL_MAX_K):
                return None
        if v.fix == "pow-exponent-to-float" and v.node.graph.elem_type_of(v.node.input(0)) not in _FLOATS:
            return None  # an integer base: no exact float form
        if v.fix is None and v.node.op_type in _WIDE_OK:
            for name in v.node.node.input[:1] if v.node.op_type != "Concat" else v.node.node.input:
                if name and v.node.graph.elem_type_of(name) == TensorProto.UINT8:
                    return self.fix_by("small-int-to-int32")
        return super().fix_for(ctx, v)


_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)
# Ops small-int-to-int32 runs on INT32 values as they are (a UINT8 network input is cast first).
_WIDE_OK = frozenset({"Concat", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Expand", "Tile", "Slice",
                      "Gather", "Split", "Max", "Min", "Where", "Add", "Sub", "Mul"})
