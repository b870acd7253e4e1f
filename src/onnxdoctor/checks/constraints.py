"""Evaluates `rules/trt/constraints.toml` against a model, once per run, for the constraint-driven TRT rules."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._onnx import TensorProto
from ..kb import Constraint
from ..model import NodeRef, dtype_name
from ..rule import Context
from .predicates import PREDICATES


class Violation(NamedTuple):
    """A node that breaks a constraint, and why. (An immutable record, as kb.Constraint.)"""

    constraint: Constraint
    node: NodeRef
    detail: str
    # Set when the violation is milder than the constraint says: a constant the parser cannot see
    # as weights until it is folded.
    severity: str | None = None
    fix: str | None = None  # the rewrite that resolves it (rule_fixes.RULE_FIXES lists it for the rule)


class _Foldable(str):
    """A detail string marking 'constant, but not an initializer yet'."""


def violations(ctx: Context) -> list[Violation]:
    """All constraint violations in the model for the target release (cached in the context). Each
    constraint is evaluated once per model (`Context.model_memo`): a run over several releases
    (`--trt all`) only gathers, per release, the violations of the constraints in force."""
    return ctx.memo("constraint-violations", lambda: _for_release(ctx))


def constraint_versions(ctx: Context, c: Constraint) -> tuple[str, ...]:
    return tuple(v for v in ctx.kb.versions if c.applies_to(v))


def _for_release(ctx: Context) -> list[Violation]:
    out: list[Violation] = []
    for op, cs in ctx.kb.constraints_for(ctx.target.trt).items():
        if not ctx.nodes_of(op):
            continue
        for c in cs:
            # input_type compares types after the release's INT64 conversion: part of the key
            key = ("constraint", c.id, ctx.release.int64 if c.kind == "input_type" else None)
            out.extend(ctx.model_memo(key, lambda c=c: _evaluate(ctx, c)))
    return out


def _evaluate(ctx: Context, c: Constraint) -> list[Violation]:
    out: list[Violation] = []
    opv = ctx.model.opset  # constraints describe the ai.onnx importers
    if "opset_min" in c.params and opv < c.params["opset_min"]:
        return out
    if "opset_max" in c.params and opv > c.params["opset_max"]:
        return out
    if c.kind == "attr_absent" and c.params["attr"] not in ctx.attribute_names(c.op):
        return out  # no node of the op sets the attribute
    nodes = ctx.nodes_of(c.op)
    if c.kind == "input_type":
        # decided once per distinct tuple of input types (a few per op), not once per node
        details = _input_type_details(ctx, c)
        if details is None:
            return out
    else:
        details = (_check(ctx, c, n) for n in nodes)
    for node, detail in zip(nodes, details):
        if detail is None:
            continue
        if isinstance(detail, _Foldable):
            out.append(Violation(c, node, str(detail), "warning", "fold-constants"))
        else:
            fix = c.params.get("fix")
            # A node whose data input is a build-time constant may have its own fix (a
            # DequantizeLinear of weights is folded; one of activations is re-quantized).
            if "fix_constant_input" in c.params and node.input(0) and _constant_or_lookup(ctx, node):
                fix = c.params["fix_constant_input"]
            out.append(Violation(c, node, detail, fix=fix))
    return out


def _constant_or_lookup(ctx: Context, node: NodeRef) -> bool:
    """Whether the node's first input is a build-time constant or a Gather from a constant table."""
    consts = ctx.model.constants(node.graph)
    name = node.input(0)
    if consts.is_constant(name):
        return True
    at = node.graph.producers.get(name)
    if at is None:
        return False
    producer = node.graph.nodes[at[0]]
    return producer.op_type == "Gather" and bool(producer.input) and consts.is_constant(producer.input[0])


_TYPE_ATTRS = {"to", "dtype", "output_dtype"}


def _fmt(v) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _check(ctx: Context, c: Constraint, node: NodeRef) -> str | None:
    p = c.params
    kind = c.kind
    if kind == "attr":
        name = p["attr"]
        value = node.attr(name, p.get("default"))
        if value is None:
            return None
        values = value if isinstance(value, list) else [value]
        if "allowed" in p:
            bad = [v for v in values if v not in p["allowed"]]
        else:
            bad = [v for v in values if v in p.get("forbidden", [])]
        if not bad:
            return None
        if name in _TYPE_ATTRS:
            return f"{name}={', '.join(dtype_name(v) for v in values if isinstance(v, int))}"
        return f"{name}={_fmt(value)}"
    if kind == "attr_absent":
        value = node.attr(p["attr"])
        if value is None or (isinstance(value, (list, str, bytes)) and len(value) == 0):
            return None
        return f"attribute {p['attr']} is set"
    if kind == "input_constant":
        name = node.input(p["input"])
        consts = ctx.model.constants(node.graph)
        if not name:
            return None
        if not consts.is_constant(name):
            return f"input {p['input']} ({name!r}) is computed at runtime"
        if p.get("weights") and not consts.is_weights(name):
            return _Foldable(f"input {p['input']} ({name!r}) is computed from constants; fold it into an initializer")
        return None
    if kind == "input_absent":
        name = node.input(p["input"])
        return f"input {p['input']} ({name!r}) is given" if name else None
    if kind == "output_absent":
        name = node.output(p["output"])
        if name and node.graph.is_used(name):
            return f"output {p['output']} ({name!r}) is used"
        return None
    if kind == "rank":
        name = node.input(p["input"]) if "input" in p else node.output(p["output"])
        t = node.graph.type_of(name) if name else None
        rank = t.rank if t else None
        if rank is None:
            return None
        ok = (rank in p["allowed"]) if "allowed" in p else (p.get("min", 0) <= rank <= p.get("max", 1 << 30))
        return None if ok else f"{'input' if 'input' in p else 'output'} {name!r} has rank {rank}"
    if kind == "value":
        name = node.input(p["input"])
        val = ctx.model.constants(node.graph).value(name) if name else None
        if val is None:
            return None
        orig = np.asarray(val)
        if orig.size == 0 or orig.dtype.kind not in "biuf":
            return None
        arr = orig.astype(np.float64)
        bad = np.zeros(arr.shape, dtype=bool)
        if "min" in p:
            bad |= arr < p["min"]
        if "max" in p:
            bad |= arr > p["max"]
        if "allowed" in p:
            bad |= ~np.isin(arr, p["allowed"])
        if not bad.any():
            return None
        shown = orig.reshape(-1)[:4].tolist()
        return f"input {p['input']} ({name!r}) = {shown if arr.size > 1 else shown[0]:}"
    if kind == "input_type":
        hit = _rejected_input(ctx, p, _input_types(ctx, node))
        return None if hit is None else f"input {hit[0]} ({node.input(hit[0])!r}) is {hit[1]}"
    if kind == "input_ignored":
        name = node.input(p["input"])
        if not name:
            return None
        if p.get("harmless") == "all_axes" and _covers_all_axes(ctx, node, name):
            return None
        return f"input {p['input']} ({name!r}) is given"
    if kind == "attr_ignored":
        value = node.attr(p["attr"])
        if value is None:
            return None
        values = value if isinstance(value, list) else [value]
        if all(v in p.get("harmless", []) for v in values):
            return None
        return f"{p['attr']}={_fmt(value)}"
    if kind == "check":
        fn = PREDICATES.get(p["check"])
        if fn is None:
            raise KeyError(f"knowledge base: constraint {c.id} names unknown predicate {p['check']!r}")
        return fn(node, ctx.model)
    raise KeyError(f"knowledge base: constraint {c.id} has unknown kind {kind!r}")


def _input_type_details(ctx: Context, c: Constraint) -> list[str | None] | None:
    """_check's detail for each node of c.op (ctx.nodes_of order), for an input_type constraint;
    None when no value of the model has a type the constraint rejects (no node can violate it)."""
    nodes = ctx.nodes_of(c.op)
    if not any(_rejected_input(ctx, c.params, (e,), first_only=True) for e in _elem_types(ctx)):
        return None
    # Only the inputs the constraint names are read (up to the last of them); the signatures are
    # shared by the op's constraints that read as many.
    spec = c.params["input"]
    upto = None if spec == "all" else spec + 1 if isinstance(spec, int) else max(spec, default=-1) + 1
    signatures = ctx.model_memo(("input-types", c.op, upto), lambda: [_input_types(ctx, n, upto) for n in nodes])
    decided: dict[tuple[int, ...], tuple[int, str] | None] = {}
    out: list[str | None] = []
    for node, sig in zip(nodes, signatures):
        hit = decided.get(sig, _UNDECIDED)
        if hit is _UNDECIDED:
            hit = decided[sig] = _rejected_input(ctx, c.params, sig)
        out.append(None if hit is None else f"input {hit[0]} ({node.input(hit[0])!r}) is {hit[1]}")
    return out


_UNDECIDED = object()


def _input_types(ctx: Context, node: NodeRef, upto: int | None = None) -> tuple[int, ...]:
    """The element type of each input (0: absent or unknown), of the first `upto` inputs if given.
    A UINT8 input that is not a network input counts as unknown: a UINT8 tensor inside the network
    is TRT113's finding."""
    graph = node.graph
    elem_type_of = graph.elem_type_of
    names = graph.node_inputs[node.index]
    if upto is not None:
        names = names[:upto]
    out = tuple([elem_type_of(name) if name else 0 for name in names])
    if _UINT8 in out:
        out = tuple(0 if e == _UINT8 and not _main_input(ctx, node, name) else e for e, name in zip(out, names))
    return out


_UINT8 = 2  # TensorProto.UINT8


def _elem_types(ctx: Context) -> frozenset[int]:
    """Every tensor element type of the model (Graph.type_summary: values and initializers)."""
    return ctx.model_memo("elem-types", lambda: frozenset(
        e for g in ctx.model.graphs for kind, e in g.type_summary[0] if kind == "tensor" and e))


def _rejected_input(ctx: Context, p: dict, types: tuple[int, ...], first_only: bool = False) -> tuple[int, str] | None:
    """(index, type as shown) of the first input whose type the importer asserts against. Types are
    compared as the release sees them: INT64 is INT32 on releases that cast it down (8.6) before any
    importer runs. `first_only`: whether the type types[0] is rejected at all, whatever the input."""
    spec = p["input"]
    indices = (0,) if first_only else range(len(types)) if spec == "all" else [spec] if isinstance(spec, int) else spec
    forbidden, allowed = p.get("forbidden"), p.get("allowed")
    for i in indices:
        elem = types[i] if i < len(types) else 0
        if not elem:
            continue
        type_name = dtype_name(elem)
        seen = "INT32" if type_name == "INT64" and ctx.release.int64 == "cast" else type_name
        if (seen in forbidden) if forbidden is not None else (seen not in allowed):
            return i, type_name if seen == type_name else f"{type_name}, which TensorRT {ctx.release.version} casts to {seen}"
    return None


def _main_input(ctx: Context, node: NodeRef, name: str) -> bool:
    main = ctx.model.main
    return node.graph is main and name in main.inputs and name not in main.initializers


def _covers_all_axes(ctx: Context, node: NodeRef, axes_name: str) -> bool:
    """Whether constant `axes` name every axis of the node's data input: ignoring them then changes nothing."""
    val = ctx.model.constants(node.graph).value(axes_name)
    rank = node.graph.rank_of(node.input(0)) if node.input(0) else None
    if val is None or rank is None:
        return False
    axes = {int(a) % rank for a in np.asarray(val).reshape(-1)} if rank else set()
    return axes == set(range(rank))
