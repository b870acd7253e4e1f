"""Graph rewrites, one module per pass family. Each module holds a literal tuple of its rewrites;
this registry concatenates them and orders them by phase (see Rewrite.phase)."""

from __future__ import annotations

import functools

from ..errors import UsageError
from . import (
    constants,
    control_flow,
    declared_shapes,
    decompositions,
    equivalents,
    functions,
    fusions,
    hygiene,
    integers,
    mixed_precision,
    opset,
    precision,
    quantization,
    sequences,
    shapes,
    simplify,
    substitutions,
    typed_inputs,
)
from .base import Outcome, Rewrite, RewriteContext

BUILTIN_REWRITES: tuple[type[Rewrite], ...] = (
    *shapes.REWRITES,
    *declared_shapes.REWRITES,
    *hygiene.REWRITES,
    *constants.REWRITES,
    *simplify.REWRITES,
    *functions.REWRITES,
    *control_flow.REWRITES,
    *integers.REWRITES,
    *sequences.REWRITES,
    *substitutions.REWRITES,
    *quantization.REWRITES,
    *decompositions.REWRITES,
    *equivalents.REWRITES,
    *typed_inputs.REWRITES,
    *opset.REWRITES,
    *fusions.REWRITES,
    *precision.REWRITES,
    *mixed_precision.REWRITES,
)


@functools.lru_cache(maxsize=1)
def all_rewrites() -> tuple[Rewrite, ...]:
    out = sorted((cls() for cls in BUILTIN_REWRITES), key=lambda r: (r.phase, r.name))
    names = [r.name for r in out]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise RuntimeError(f"rewrite names used twice: {sorted(dupes)}")
    return tuple(out)


def get_rewrite(name: str) -> Rewrite:
    for r in all_rewrites():
        if r.name == name:
            return r
    raise UsageError(f"unknown rewrite {name!r}; `onnxdoctor rewrites` lists them")


__all__ = ["Outcome", "Rewrite", "RewriteContext", "all_rewrites", "get_rewrite"]
