"""Scopes of control-flow bodies: walking nested graphs, the names they define and read, renaming.
Shared by the rewrites that work inside If/Loop/Scan bodies."""

from __future__ import annotations

from collections import Counter

import onnx

from .._proto import bodies  # noqa: F401 - re-exported for the rewrites


def defined_names(g: onnx.GraphProto, into: Counter) -> Counter:
    """Count every name `g` (and the bodies nested in it) defines: inputs, initializers, node outputs."""
    stack = [g]
    while stack:
        cur = stack.pop()
        into.update(vi.name for vi in cur.input)
        into.update(t.name for t in cur.initializer)
        into.update(t.values.name for t in cur.sparse_initializer)
        for n in cur.node:
            into.update(o for o in n.output if o)
            stack.extend(bodies(n))
    return into


def all_names(model: onnx.ModelProto) -> set[str]:
    names: set[str] = set()
    stack = [model.graph]
    while stack:
        g = stack.pop()
        names.update(vi.name for vi in (*g.input, *g.output, *g.value_info))
        names.update(t.name for t in g.initializer)
        for n in g.node:
            names.update(n.input)
            names.update(n.output)
            names.add(n.name)
            stack.extend(bodies(n))
    for f in model.functions:
        for n in f.node:
            names.update(n.output)
            names.add(n.name)
    names.discard("")
    return names


def rename(g: onnx.GraphProto, mapping: dict[str, str]) -> None:
    """Apply `mapping` to every definition and use of a name in `g` and the bodies nested in it."""
    if not mapping:
        return
    stack = [g]
    while stack:
        cur = stack.pop()
        for vi in (*cur.input, *cur.output, *cur.value_info):
            if vi.name in mapping:
                vi.name = mapping[vi.name]
        for t in cur.initializer:
            if t.name in mapping:
                t.name = mapping[t.name]
        for n in cur.node:
            for i, name in enumerate(n.input):
                if name in mapping:
                    n.input[i] = mapping[name]
            for i, name in enumerate(n.output):
                if name in mapping:
                    n.output[i] = mapping[name]
            stack.extend(bodies(n))


def outer_reads(body: onnx.GraphProto) -> list[str]:
    """Names `body` (or a body nested in it) reads that it does not define: its outer-scope
    references, in first-read order."""
    defined = defined_names(body, Counter())
    seen: dict[str, None] = {}
    stack = [body]
    while stack:
        g = stack.pop()
        for n in g.node:
            for i in n.input:
                if i and i not in defined:
                    seen.setdefault(i, None)
            stack.extend(bodies(n))
        for vi in g.output:
            if vi.name not in defined:
                seen.setdefault(vi.name, None)
    return list(seen)


def nested_reads(g: onnx.GraphProto) -> set[str]:
    """Every name read by the bodies of `g`'s nodes (nested ones included), and their outputs."""
    out: set[str] = set()
    stack = [b for n in g.node for b in bodies(n)]
    while stack:
        cur = stack.pop()
        out.update(vi.name for vi in cur.output)
        for n in cur.node:
            out.update(n.input)
            stack.extend(bodies(n))
    out.discard("")
    return out
