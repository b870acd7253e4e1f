"""Walks every typed value of a model once: graph inputs/outputs, initializers, node outputs."""

from __future__ import annotations

from typing import Iterator

from ...model import Graph, NodeRef, TensorType, dtype_name
from ...rule import Context


class Site:
    """A typed value of one graph: its name, kind, element type, rank, role and producer. A plain
    class (a dataclass costs ~0.7 ms to create at every start of the command)."""

    __slots__ = ("graph", "tensor", "kind", "elem_type", "rank", "role", "producer")

    def __init__(self, graph: Graph, tensor: str, kind: str, elem_type: int, rank: int | None, role: str,
                 producer: NodeRef | None) -> None:
        self.graph = graph
        self.tensor = tensor
        self.kind = kind  # tensor | sparse_tensor | sequence | optional | map | unknown
        self.elem_type = elem_type
        self.rank = rank
        self.role = role  # "input" | "output" | "initializer" | "value"
        self.producer = producer

    @property
    def type(self) -> TensorType:
        return self.graph.types.get(self.tensor) or TensorType(self.elem_type, None, self.kind)

    @property
    def type_name(self) -> str:
        return dtype_name(self.elem_type)


def sites(ctx: Context) -> list[Site]:
    return ctx.model_memo("type-sites", lambda: list(_walk(ctx)))


def may_have(ctx: Context, predicate) -> bool:
    """False when no (kind, elem_type) in any graph satisfies `predicate`: the walk can be skipped."""
    return any(predicate(kind, elem) for g in ctx.model.graphs for kind, elem in g.type_summary[0])


def max_rank(ctx: Context) -> int:
    return max((g.type_summary[1] for g in ctx.model.graphs), default=0)


def _walk(ctx: Context) -> Iterator[Site]:
    for g in ctx.model.graphs:
        types = g.types
        seen: set[str] = set()
        is_main = not g.path
        outputs = set(g.outputs)

        def site(name: str, role: str, producer: NodeRef | None) -> Site:
            return Site(g, name, *types.summary(name), role, producer)

        for name in g.inputs:
            if name in g.initializers or name in seen or name not in types:
                continue
            seen.add(name)
            yield site(name, "input" if is_main else "value", None)
        for name, init in g.initializers.items():
            if name not in seen:
                seen.add(name)
                yield Site(g, name, "tensor", init.data_type, len(init.dims), "initializer", None)
        for i, outs in enumerate(g.node_outputs):
            ref = None
            for out in outs:
                if out and out not in seen and out in types:
                    seen.add(out)
                    ref = ref or g.ref(i)
                    yield site(out, "output" if is_main and out in outputs else "value", ref)
        if is_main:
            for name in g.outputs:
                if name not in seen and name in types:
                    seen.add(name)
                    yield site(name, "output", None)
