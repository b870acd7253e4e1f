"""SHP205 ambiguous-reshape-zero."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule


class AmbiguousReshapeZero(Rule):
    """A Reshape whose target copies a dimension (`0`, `allowzero=0`) that can be zero, next to a `-1`.

    ## What it does
    Looks at `Reshape` nodes with a constant target shape containing both `0` and `-1`, and
    `allowzero` unset or 0 (so `0` means "copy this dim from the input"). When a copied input dim
    is a literal 0 the finding is a warning; when it is dynamic (symbolic or unknown) and so can be
    0 at runtime, it is info. Copied dims with a known non-zero size are fine and not reported.

    ## Why it breaks TensorRT
    TensorRT's shuffle layer treats `0` as a placeholder for the input dim, like ONNX with
    `allowzero=0`. When the copied dim is 0, the tensor is empty and the `-1` has to be inferred
    from 0 elements divided by a product that is itself 0: it is undefined, and the reshape fails
    (at build time for a literal 0, at runtime for a dynamic dim whose profile allows 0). ONNX
    Runtime fails the same way, so this is a latent bug of the model, exposed by empty batches
    or sequences.

    ## Example
        <ir_version: 8, opset_import: ["" : 14]>
        g (float[0,4] x) => (float[?,?] y) <int64[2] shape = {0, -1}> { y = Reshape(x, shape) }

    ## How to fix
    Write the copied dim explicitly (a number, or computed with `Shape`) instead of `0`, or
    replace the `-1` by the explicit product. With dynamic dims, keep the optimization profile's
    minimum for the copied dim at 1 or more (the default of `onnxdoctor profile`).

    ## Fix safety
    No automatic fix: which dim is meant is the model author's decision.

    ## TensorRT versions
    Every release.

    ## Sources
    ONNX `Reshape` specification (`allowzero`: with copied zeros, `-1` cannot be inferred
    uniquely); TensorRT `IShuffleLayer::setZeroIsPlaceholder` (default true); onnx-tensorrt
    `importReshape` (maps `allowzero` to `setZeroIsPlaceholder`).
    """

    code = "SHP205"
    name = "ambiguous-reshape-zero"
    severity = Severity.WARNING
    summary = "Reshape copies a dim that can be 0 while inferring -1"
    release_independent = True

    def check(self, ctx: Context):
        for node in ctx.nodes_of("Reshape"):
            shape = node.input(1)
            if not shape or node.attr("allowzero", 0):
                continue  # no (or an omitted) shape input: nothing to copy
            g = node.graph
            target = ctx.model.constants(g).value(shape)
            if target is None or target.ndim != 1:
                continue
            values = [int(v) for v in target.tolist()]
            if -1 not in values or 0 not in values:
                continue
            xt = g.type_of(node.input(0))
            if xt is None or xt.shape is None:
                continue
            copied = [i for i, v in enumerate(values) if v == 0 and i < len(xt.shape)]
            zero = [i for i in copied if xt.shape[i] == 0]
            dynamic = [i for i in copied if not isinstance(xt.shape[i], int)]
            if zero:
                yield self.finding(
                    ctx,
                    f"Reshape {node.name!r}: target {values} copies input dim {zero[0]}, which is 0, and infers -1 "
                    "from an empty tensor: the -1 is undefined",
                    node=node, tensor=node.input(1),
                    hint="write the copied dim and the -1 explicitly",
                )
            elif dynamic:
                names = ", ".join(f"dim {i} ({xt.shape[i] if xt.shape[i] else '?'})" for i in dynamic)
                yield self.finding(
                    ctx,
                    f"Reshape {node.name!r}: target {values} copies dynamic input {names} and infers -1; "
                    "if that dim is 0 at runtime the -1 is undefined and the reshape fails",
                    node=node, tensor=node.input(1), severity=Severity.INFO,
                    hint="keep the profile minimum of that dim >= 1, or write the dims explicitly",
                )
