"""TRT112 double-precision-tensor."""

from __future__ import annotations

import numpy as np
from ..._onnx import TensorProto

from ...dtype_limits import FP32_MAX
from ...findings import Severity
from ...rule import Context, Rule
from ._types import may_have, sites


class DoublePrecisionTensor(Rule):
    """A DOUBLE (float64) tensor, which TensorRT silently casts down to FLOAT.

    ## What it does
    Flags graph inputs/outputs, initializers and intermediate values of type DOUBLE. An initializer
    whose values exceed the FLOAT range is called out, because TensorRT clamps them to ±FLT_MAX.

    ## Why it breaks TensorRT
    TensorRT has no float64 type. The parser casts DOUBLE to FLOAT ("limited support for DOUBLE"),
    clamping out-of-range values, so results can differ from ONNX Runtime and DOUBLE network I/O
    bindings change type.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (double[4] x) => (double[4] y) { y = Relu(x) }

    ## How to fix
    Export in float32, or let `onnxdoctor fix` cast DOUBLE initializers and casts down to FLOAT.

    ## Fix safety
    `cast-double-to-float` is unsafe: values change by float32 rounding (proven within tolerance).

    ## TensorRT versions
    All releases.

    ## Sources
    Header of every `docs/operators.md` ("TensorRT will attempt to cast DOUBLE down to FLOAT,
    clamping values to +-FLT_MAX if necessary"); `convertDtype` / weight conversion in the parser.
    """

    code = "TRT112"
    name = "double-precision-tensor"
    severity = Severity.WARNING
    summary = "DOUBLE tensor cast down to FLOAT by TensorRT"
    release_independent = True

    def check(self, ctx: Context):
        if not may_have(ctx, lambda kind, elem: elem == TensorProto.DOUBLE):
            return
        for site in sites(ctx):
            if site.kind != "tensor" or site.elem_type != TensorProto.DOUBLE:
                continue
            extra = ""
            if site.role == "initializer":
                val = site.graph.initializer_value(site.tensor)
                if val is not None and val.size and np.nanmax(np.abs(val)) > FP32_MAX:
                    extra = "; some values exceed the FLOAT range and will be clamped"
            yield self.finding(
                ctx,
                f"{site.role} {site.tensor!r} is DOUBLE; TensorRT casts it to FLOAT{extra}",
                node=site.producer,
                tensor=site.tensor,
                subgraph=site.graph.path,
                versions=ctx.kb.versions,
                hint="export in float32",
            )
