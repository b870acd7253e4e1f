"""Helpers shared by the GRF rules: outer-scope references, tensor sizes, fused-op availability."""

from __future__ import annotations

import math

from ..._proto import nested_reads
from ...dtype_limits import ITEMSIZE
from ...kb import Release
from ...model import Graph, Model, dtype_name
from ...patterns import decomposed as patterns
from ...rule import Context



def nbytes(graph: Graph, tensor: str) -> int | None:
    """Size of a tensor from its inferred type, or None when the type or shape is unknown."""
    t = graph.type_of(tensor)
    if t is None or t.kind != "tensor" or not t.is_static or t.elem_type not in ITEMSIZE:
        return None
    return math.prod(t.shape) * ITEMSIZE[t.elem_type]  # type: ignore[arg-type]


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} byte{'' if n == 1 else 's'}"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024  # type: ignore[assignment]
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
    return f"{n} bytes"  # pragma: no cover


def type_text(elem_type: int, dims) -> str:
    return f"{dtype_name(elem_type)} {list(dims)}"


def nested_uses(ctx: Context, graph: Graph) -> set[str]:
    """Names of `graph` read from inside the subgraphs of its nodes (outer-scope references)."""

    def compute() -> dict[int, set[str]]:
        return {id(g): nested_reads(g.nodes) for g in ctx.model.graphs}

    return ctx.model_memo("grf-nested-uses", compute)[id(graph)]


def matches(ctx: Context, matcher) -> list[patterns.Match]:
    """Every successful match of `matcher` in every graph, computed once per run."""

    def compute() -> list[patterns.Match]:
        return [r for g in ctx.model.graphs for _, r in patterns.iter_matches(ctx.model, g, matcher) if r]

    return ctx.model_memo(("grf-matches", matcher.__name__), compute)


def fused_op_available(release: Release, op: str, opset: int) -> bool:
    """The release has an importer for `op` and parses models of the opset that introduced it."""
    return op in release.ops and release.opset_max >= opset


def opset_note(model: Model, opset: int) -> str:
    have = model.opset
    return "" if have >= opset else f"; needs opset {opset} (the model has {have}): the fix upgrades the opset"
