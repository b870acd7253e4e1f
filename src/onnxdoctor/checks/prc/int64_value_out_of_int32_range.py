"""PRC302 int64-value-out-of-int32-range."""

from __future__ import annotations

import numpy as np
from ..._onnx import TensorProto

from ...dtype_limits import INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN
from ...findings import Severity
from ...model import Graph, NodeRef, tensor_value
from ...rule import Context, Rule
from ._qdq import is_std

# Slice inputs the parser clamps to the dimension anyway: "slice to the end" sentinels are harmless.
_SLICE_BOUNDS = {"Slice": (1, 2)}
# Ops through which a sentinel travels on its way to a Slice (TorchScript builds ends with Concat/Unsqueeze).
_PASS = frozenset({"Identity", "Concat", "Unsqueeze", "Squeeze", "Reshape", "Cast", "Gather"})


class Int64ValueOutOfInt32Range(Rule):
    """An INT64 constant outside the INT32 range, on a release that casts INT64 down to INT32.

    ## What it does
    On releases whose parser has no native INT64 (8.6), checks every INT64 initializer, Constant and
    ConstantOfShape fill whose value is known for values below -2^31 or above 2^31-1. Two kinds of
    values are not reported because clamping keeps their meaning: INT64_MAX/INT64_MIN themselves
    ("infinity" sentinels that become INT32_MAX/INT32_MIN in an all-INT32 network), and any large
    value that only reaches a Slice `starts`/`ends` input (the parser clamps those to the dimension,
    which is how "slice to the end" is exported).

    ## Why it breaks TensorRT
    TensorRT 8.6 represents INT64 as INT32: the parser casts INT64 weights down, clamping values that
    do not fit ("One or more weights outside the range of INT32 was clamped"). The engine builds, but
    a constant such as 2^32 or 10^10 used in arithmetic, as a Range limit, a Clip bound or a fill
    value silently becomes 2147483647, and the results differ from ONNX Runtime.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (int64[4] x) => (int64[4] y) {
          big = Constant<value = int64[1] {10000000000}>()
          y = Add(x, big)
        }

    ## How to fix
    Rewrite the computation so that INT64 values fit in INT32 (e.g. do hashing or timestamp
    arithmetic outside the network), or target TensorRT 9.0+, which supports INT64 natively.

    ## Fix safety
    No automatic fix: the value itself cannot be represented.

    ## TensorRT versions
    Releases with `int64 = "cast"` in `rules/trt/releases.toml` (8.6); native INT64 from 9.0.

    ## Sources
    onnx-tensorrt `onnx2trt_utils.cpp` `convertINT64` @ release/8.6-GA (casts INT64 weights to
    INT32, clamping, with the "outside the range of INT32 was clamped" warning); onnx-tensorrt
    docs/Changelog.md 9.0 EA (native INT64); shared/trt-operators/VERSIONS.md §2.1.
    """

    code = "PRC302"
    name = "int64-value-out-of-int32-range"
    severity = Severity.WARNING
    summary = "INT64 constant clamped to INT32 by TensorRT"

    def check(self, ctx: Context):
        if ctx.release.int64 != "cast":
            return
        versions = ctx.kb.versions_where(lambda r: r.int64 == "cast")
        for g in ctx.model.graphs:
            candidates: list[tuple[str, np.ndarray, NodeRef | None, str]] = []
            for name, t in g.initializers.items():
                if t.data_type == TensorProto.INT64:
                    candidates.append((name, g.initializer_value(name), None, "initializer"))
            for i, node in enumerate(g.nodes):
                if not is_std(node) or node.op_type not in ("Constant", "ConstantOfShape") or not node.output:
                    continue
                ref = g.ref(i)
                if node.op_type == "Constant":
                    val = ctx.model.constants(g).value(node.output[0])
                else:
                    fill = ref.attr("value")
                    val = tensor_value(fill) if fill is not None and fill.data_type == TensorProto.INT64 else None
                if val is not None and val.dtype == np.int64:
                    candidates.append((node.output[0], val, ref, node.op_type))
            for tensor, val, ref, role in candidates:
                if val is None or val.size == 0:
                    continue
                bad = (val < INT32_MIN) | (val > INT32_MAX)
                if not bad.any():
                    continue
                if not (bad & (val != INT64_MAX) & (val != INT64_MIN)).any():
                    continue  # only the INT64_MAX/MIN sentinels
                if _only_slice_bounds(g, tensor):
                    continue
                worst = int(val[bad][np.argmax(np.abs(val[bad].astype(np.float64)))])
                users = sorted({g.nodes[c].op_type for c in g.consumers.get(tensor, ())})
                yield self.finding(
                    ctx,
                    f"{role} {tensor!r} holds {worst}, outside the INT32 range; TensorRT {ctx.release.version} "
                    f"casts INT64 to INT32 and clamps it to {INT32_MAX if worst > 0 else INT32_MIN}"
                    + (f" (used by {', '.join(users)})" if users else ""),
                    node=ref,
                    tensor=tensor,
                    subgraph=g.path,
                    versions=versions,
                    hint="keep INT64 values within INT32, or target TensorRT 9.0+ (native INT64)",
                )


def _only_slice_bounds(g: Graph, tensor: str) -> bool:
    """Whether every use of `tensor` ends (through Concat/Unsqueeze/...) in a Slice starts/ends input."""
    stack = [(tensor, 0)]
    seen = set()
    found = False
    while stack:
        t, depth = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in g.outputs or depth > 6:
            return False
        for c in g.consumers.get(t, ()):
            node = g.nodes[c]
            if node.op_type in _SLICE_BOUNDS and is_std(node):
                if not all(inp != t or k in _SLICE_BOUNDS[node.op_type] for k, inp in enumerate(node.input)):
                    return False
                found = True
            elif node.op_type in _PASS and is_std(node):
                stack.extend((o, depth + 1) for o in node.output if o)
            else:
                return False
    return found
