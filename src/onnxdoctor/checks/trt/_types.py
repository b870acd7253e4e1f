"""Walks every typed value of a model once: graph inputs/outputs, initializers, node outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ...model import Graph, NodeRef, TensorType
from ...rule import Context


@dataclass(frozen=True)
class Site:
    graph: Graph
    tensor: str
    type: TensorType
    role: str  # "input" | "output" | "initializer" | "value"
    producer: NodeRef | None


def sites(ctx: Context) -> list[Site]:
    return ctx.memo("type-sites", lambda: list(_walk(ctx)))


def _walk(ctx: Context) -> Iterator[Site]:
    for g in ctx.model.graphs:
        seen: set[str] = set()
        is_main = not g.path
        for name in g.inputs:
            if name in g.initializers:
                continue
            t = g.types.get(name)
            if t is not None and name not in seen:
                seen.add(name)
                yield Site(g, name, t, "input" if is_main else "value", None)
        for name, init in g.initializers.items():
            if name not in seen:
                seen.add(name)
                yield Site(g, name, TensorType(init.data_type, tuple(init.dims)), "initializer", None)
        for i, node in enumerate(g.nodes):
            ref = NodeRef(node, g, i)
            for out in node.output:
                if out and out not in seen:
                    t = g.types.get(out)
                    if t is not None:
                        seen.add(out)
                        role = "output" if is_main and out in g.outputs else "value"
                        yield Site(g, out, t, role, ref)
        if is_main:
            for name in g.outputs:
                if name not in seen and name in g.types:
                    seen.add(name)
                    yield Site(g, name, g.types[name], "output", None)
