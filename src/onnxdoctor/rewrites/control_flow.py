"""Control-flow passes: `If` nodes whose condition is a build-time constant, replaced by the branch
that runs. Works in every graph (nested bodies included) and keeps outer-scope references valid."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import numpy_helper

from .._proto import defined_names, node_count, rename, taken_names, unique_name
from ..findings import Applicability
from ._gs import fold
from .base import Outcome, Rewrite, RewriteContext

_GRAPH = onnx.AttributeProto.GRAPH
MAX_ROUNDS = 8


def _const_value(name: str, scopes: list[dict[str, onnx.TensorProto | onnx.NodeProto]]) -> np.ndarray | None:
    """The value of `name` when an initializer or a `Constant` node of this graph or an enclosing one
    defines it (innermost scope first)."""
    for scope in reversed(scopes):
        hit = scope.get(name)
        if hit is None:
            continue
        if isinstance(hit, onnx.TensorProto):
            return numpy_helper.to_array(hit)
        for a in hit.attribute:
            if a.name == "value":
                return numpy_helper.to_array(a.t)
            if a.name == "value_int":
                return np.asarray(a.i)
        return None
    return None


def _scope(g: onnx.GraphProto) -> dict[str, onnx.TensorProto | onnx.NodeProto]:
    """Constants `g` defines: initializers that are not overridable inputs, and `Constant` outputs."""
    inputs = {vi.name for vi in g.input}
    out: dict[str, onnx.TensorProto | onnx.NodeProto] = {
        t.name: t for t in g.initializer if t.name not in inputs and t.data_location != onnx.TensorProto.EXTERNAL}
    for n in g.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and n.output:
            out[n.output[0]] = n
    return out


def condition(node: onnx.NodeProto, scopes) -> bool | None:
    """The constant value of an `If` node's condition, or None when it is not a build-time constant."""
    if not node.input or not node.input[0]:
        return None
    v = _const_value(node.input[0], scopes)
    if v is None or v.size != 1:
        return None
    return bool(v.reshape(-1)[0])


def _inline(model: onnx.ModelProto, g: onnx.GraphProto, index: int, taken_branch: str) -> tuple[int, str]:
    """Replace node `index` of `g` (an If) by the nodes of its branch `taken_branch`. Returns (number of
    nodes that replaced it, what happened)."""
    node = g.node[index]
    branches = {a.name: a.g for a in node.attribute if a.type == _GRAPH}
    body = onnx.GraphProto()
    body.CopyFrom(branches[taken_branch])
    # Names the branch defines that something outside this If defines too get fresh names: after
    # inlining they share the enclosing scope (the other branch goes away, so its names do not count).
    everywhere = defined_names(model.graph, Counter())
    here = Counter()
    for b in branches.values():
        defined_names(b, here)
    outside = everywhere - here
    local = defined_names(body, Counter())
    taken = taken_names(model)
    mapping = {name: unique_name(taken, name) for name in local if name in outside}
    rename(body, mapping)
    # Each branch output becomes the If output at the same position: a value the branch computes is
    # renamed to it; a value from outside the branch, an initializer read twice, or a value returned
    # twice is forwarded by an Identity.
    produced_here = {o for n in body.node for o in n.output if o}
    out_map: dict[str, str] = {}
    forwards: list[onnx.NodeProto] = []
    for vi, result in zip(body.output, node.output):
        if not result:
            continue
        src = vi.name
        if src in produced_here and src not in out_map:
            out_map[src] = result
        else:
            forwards.append(onnx.helper.make_node("Identity", [out_map.get(src, src)], [result],
                                                  name=unique_name(taken, f"{node.name or result}/forward")))
    rename(body, out_map)
    # Types inferred for values downstream of the If came from both branches (or neither, where the
    # ranks differ): drop them; the next shape inference recomputes them from the taken branch.
    del g.value_info[:]
    g.initializer.extend(body.initializer)
    g.sparse_initializer.extend(body.sparse_initializer)
    new_nodes = [*body.node, *forwards]
    rest = list(g.node)
    del g.node[:]
    g.node.extend(rest[:index] + new_nodes + rest[index + 1:])
    where = node.name or (node.output[0] if node.output else f"If#{index}")
    return len(new_nodes), f"inlined the {taken_branch.replace('_branch', '')} branch of If {where!r} ({len(new_nodes)} node(s))"


def inline_constant_ifs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of `model` with every `If` whose condition is an initializer or a `Constant` (of its own
    graph or an enclosing one) replaced by the branch that runs, in every graph; nested Ifs that an
    inlined branch brings along are inlined too when their condition is constant. An `If` inside a
    branch of another `If` on the same condition value (the same name, not redefined in between) is
    replaced by the branch that value selects: true inside `then_branch`, false inside `else_branch`."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    changes: list[str] = []

    def visit(g: onnx.GraphProto, scopes: list, decided: dict[str, bool]) -> None:
        scopes = [*scopes, _scope(g)]
        # A name this graph defines hides the enclosing If's condition of that name.
        mine = defined_names(g, Counter())
        decided = {k: v for k, v in decided.items() if k not in mine}
        i = 0
        while i < len(g.node):
            n = g.node[i]
            is_if = n.op_type == "If" and n.domain in ("", "ai.onnx")
            if is_if:
                cond = condition(n, scopes)
                by_outer = cond is None and bool(n.input) and n.input[0] in decided
                if by_outer:
                    cond = decided[n.input[0]]
                if cond is not None:
                    _count, what = _inline(out, g, i, "then_branch" if cond else "else_branch")
                    changes.append(what + (f" (its condition {n.input[0]!r} is decided by an enclosing If on the same value)"
                                           if by_outer else ""))
                    scopes[-1] = _scope(g)  # the branch's Constants now live in this graph
                    continue  # the inlined nodes are visited from position i on
            for a in n.attribute:
                if a.type == _GRAPH and is_if and n.input and n.input[0] and a.name in ("then_branch", "else_branch"):
                    # Inside a branch, the If's own condition is known: true in then_branch, false in else_branch.
                    visit(a.g, scopes, {**decided, n.input[0]: a.name == "then_branch"})
                elif a.type == _GRAPH:
                    visit(a.g, scopes, decided)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for body in a.graphs:
                        visit(body, scopes, decided)
            i += 1

    visit(out.graph, [], {})
    return out, changes


def fold_and_inline(model: onnx.ModelProto, size_threshold: int) -> tuple[onnx.ModelProto, list[str]]:
    """Infer shapes, fold constants and inline constant-condition Ifs until nothing changes: folding
    makes conditions constant (`Shape(x)[k] == 1` once shapes are static), inlining brings nodes into
    a scope where they fold, and folded pads/axes make more shapes static for the next round."""
    changes: list[str] = []
    out = model
    size = node_count(out)
    for _ in range(MAX_ROUNDS):
        try:
            out = onnx.shape_inference.infer_shapes(out)
        except Exception:  # noqa: BLE001 - inference only helps folding; go on without it
            pass
        out = fold(out, size_threshold)
        out, inlined = inline_constant_ifs(out)
        changes += inlined
        now = node_count(out)
        if not inlined and now == size:
            break
        size = now
    return out, changes


class InlineConstantIf(Rewrite):
    """Replace an `If` whose condition is a build-time constant by the branch that runs.

    ## What it does
    Folds constants first (so that conditions computed from shapes, such as `Shape(x)[k] == 1` on
    static shapes, become constants), then replaces every `If` whose condition is an initializer or a
    `Constant` — in the main graph and in every `If`/`Loop`/`Scan` body, nested ones included — by
    the nodes of the taken branch. Branch outputs become the `If`'s outputs under the same names;
    names the branch defines that would clash in the enclosing scope are renamed; branch values
    read by bodies nested in the branch (outer-scope references) follow the renaming. Repeats
    until no constant-condition `If` is left.

    ## When it applies
    TRT141 on an `If` (branches with different ranks or output counts) whose condition is constant
    once folded: exported RNN/VAD models are full of `If(Shape(x)[0] == 1)` that a `--shape` makes
    constant. GRF401 findings on an `If` with a constant condition. TRT141 on subgraphs nested
    deeper than the parser accepts, when the nested `If`s test the same condition value as an
    enclosing `If` (the same name, not redefined in between): inside `then_branch` that value is
    true, inside `else_branch` false, so the nested `If` is replaced by the branch it selects.

    ## Example
    `k = Equal(Gather(Shape(x), 0), 1); y = If(k) <then: Squeeze(x, 0), else: Identity(x)>` with
    `x: float[1,64]` becomes `y = Squeeze(x, 0)`.

    ## Safety
    Safe: the condition has the same value on every run (or, for a nested `If` on the enclosing
    `If`'s condition, the same value as where that branch runs), so the taken branch computes exactly
    what the `If` did.

    ## Resolves
    TRT141, GRF401
    """

    name = "inline-constant-if"
    phase = 20
    summary = "replace an If with a constant condition by the branch that runs"
    applicability = Applicability.SAFE
    resolves = ("TRT141", "GRF401")

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        before = node_count(model)
        out, changes = fold_and_inline(model, ctx.max_constant_bytes)
        if not changes:
            return Outcome(model, skipped=["no If has a condition that is constant (even after folding) or decided by an enclosing If"])
        changes.append(f"{before} -> {node_count(out)} nodes, subgraphs included")
        return Outcome(out, changes)


REWRITES = (InlineConstantIf,)
