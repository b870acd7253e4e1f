"""SHP202 dynamic-input-dimension."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule


class DynamicInputDimension(Rule):
    """A graph input with dynamic dimensions: TensorRT needs an optimization profile for it.

    ## What it does
    Reports, once per graph input, every dimension that is not a fixed number (a symbolic name such
    as `batch`, or an unnamed `?`), so you know which inputs need `--minShapes/--optShapes/--maxShapes`.
    Inputs frozen with `--shape` are static and not reported.

    ## Why it breaks TensorRT
    An engine for a network with dynamic input dimensions cannot be built without an optimization
    profile giving each dynamic input a minimum, optimum and maximum shape: the builder fails with
    `Network has dynamic or shape inputs, but no optimization profile has been defined`. The
    profile also decides performance: kernels are tuned for the *opt* shape, and shapes outside
    min..max are rejected at runtime.

    ## Example
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[batch,3,224,224] x) => (float[batch,3,224,224] y) { y = Relu(x) }

    ## How to fix
    Run `onnxdoctor profile MODEL` for a ready-to-run `trtexec` command with a profile (shared
    dimension names such as `batch` get the same values on every input), and adjust it with
    `--shape NAME:MIN:OPT:MAX`. If the model only ever runs with one shape, freezing the input
    (`--shape NAME:DIMS`, rewrite `freeze-shapes`) makes the engine static and lets shape
    computations fold.

    ## Fix safety
    Advice only: a profile is build configuration, not a model change. Freezing a shape restricts
    the model to that shape.

    ## TensorRT versions
    Every release.

    ## Sources
    TensorRT developer guide, "Working with dynamic shapes" / "Optimization profiles";
    `trtexec --help` (`--minShapes`, `--optShapes`, `--maxShapes`).
    """

    code = "SHP202"
    name = "dynamic-input-dimension"
    severity = Severity.INFO
    summary = "dynamic input dimension needs an optimization profile"
    release_independent = True

    def check(self, ctx: Context):
        g = ctx.model.main
        for name in g.inputs:
            if name in g.initializers:
                continue
            t = g.types.get(name)
            if t is None or t.kind != "tensor" or t.shape is None or t.is_static:
                continue
            dyn = [f"{d if isinstance(d, str) else '?'} (dim {i})" for i, d in enumerate(t.shape) if not isinstance(d, int)]
            shown = ", ".join(str(d) if d is not None else "?" for d in t.shape)
            yield self.finding(
                ctx,
                f"input {name!r} [{shown}] has dynamic {'dimension' if len(dyn) == 1 else 'dimensions'} "
                f"{', '.join(dyn)}: the engine needs an optimization profile (min/opt/max) for it",
                tensor=name,
                hint="`onnxdoctor profile MODEL` prints a profile and the trtexec command; --shape NAME:DIMS freezes it",
                fix=None,  # freeze-shapes runs on `fix --shape`, which leaves the input static and unreported
            )
