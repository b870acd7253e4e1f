"""Chains of Add/Sub or Mul/Div by constants that one node can replace (GRF415,
merge-constant-arithmetic)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._proto import nested_reads
from ..model import Graph, Model


ADDITIVE = frozenset({"Add", "Sub"})
MULTIPLICATIVE = frozenset({"Mul", "Div"})


class ArithmeticChain(NamedTuple):
    nodes: list[int]  # first to last
    x: str  # the non-constant operand of the first node
    y: str  # the last node's output
    op: str  # Add or Mul (Div for a chain of divisions of floats)
    value: np.ndarray  # the merged constant
    text: str


def _step(model: Model, g: Graph, i: int, data: str | None = None):
    """(op, data input, constant value) when node i is `data op constant` (or `constant op data`
    for Add/Mul), else None."""
    if not g.standard[i]:
        return None
    op = g.op_types[i]
    if op not in ADDITIVE and op not in MULTIPLICATIVE:
        return None
    ins = g.node_inputs[i]
    if len(ins) != 2 or not all(ins):
        return None
    cv = model.constants(g)
    a, b = ins
    if cv.is_constant(b) and not cv.is_constant(a) and (data is None or a == data):
        c = b
        x = a
    elif op in ("Add", "Mul") and cv.is_constant(a) and not cv.is_constant(b) and (data is None or b == data):
        c, x = a, b
    else:
        return None
    v = cv.value(c)
    if v is None or v.dtype.kind not in "iuf":
        return None
    return op, x, v


def arithmetic_chains(model: Model, g: Graph) -> list[ArithmeticChain]:
    """The chains GRF415 reports and merge-constant-arithmetic replaces in graph `g`."""
    nested = nested_reads(g.nodes) if g.may_nest else set()
    outputs = set(g.outputs)
    used: set[int] = set()
    found: list[ArithmeticChain] = []
    op_of, std, outs_ = g.op_types, g.standard, g.node_outputs
    # only Add/Sub/Mul/Div can start a chain: their positions, in topological order
    starts = sorted(k for op in (*ADDITIVE, *MULTIPLICATIVE) for k in g.op_positions.get(op, ()))
    if not starts:
        return found
    if not g.topo_sorted:
        rank = {k: r for r, k in enumerate(g.topo_order)}
        starts = sorted((k for k in starts if k in rank), key=rank.__getitem__)
    for i in starts:
        if i in used:
            continue
        # a chain needs a second node: the only reader of i's output, of the same family. Decided
        # here, before _step asks the constant analysis for i's operand (most arithmetic fails it).
        outs = outs_[i]
        out = outs[0] if outs else ""
        readers = g.consumers.get(out, ()) if out else ()
        if len(readers) != 1 or out in outputs or out in nested or readers[0] in used or not std[readers[0]]:
            continue
        fam = ADDITIVE if op_of[i] in ADDITIVE else MULTIPLICATIVE
        if op_of[readers[0]] not in fam:
            continue
        first = _step(model, g, i)
        if first is None:
            continue
        family = ADDITIVE if first[0] in ADDITIVE else MULTIPLICATIVE
        chain, steps, in_chain = [i], [first], {i}
        while True:
            out = g.node_outputs[chain[-1]][0]
            readers = g.consumers.get(out, ())
            # a reader already in the chain: a name written twice (SSA broken, MOD504) closes a loop
            if out in outputs or out in nested or len(readers) != 1 or readers[0] in used or readers[0] in in_chain:
                break
            nxt = _step(model, g, readers[0], data=out)
            if nxt is None or nxt[0] not in family:
                break
            chain.append(readers[0])
            in_chain.add(readers[0])
            steps.append(nxt)
        if len(chain) < 2:
            continue
        merged = _merge(steps)
        if merged is None:
            continue
        op, value = merged
        used.update(chain)
        ops = "→".join(s[0] for s in steps)
        found.append(ArithmeticChain(chain, steps[0][1], g.node_outputs[chain[-1]][0], op, value,
                                     f"{ops} of constants: one {op} of the merged constant replaces {len(chain)} nodes"))
    return found


def _merge(steps) -> tuple[str, np.ndarray] | None:
    dtype = steps[0][2].dtype
    if any(s[2].dtype != dtype for s in steps):
        return None
    integer = dtype.kind in "iu"
    with np.errstate(all="ignore"):
        if steps[0][0] in ADDITIVE:
            total = np.zeros((), dtype=np.float64 if not integer else np.int64)
            for op, _, v in steps:
                total = total + v if op == "Add" else total - v
            return "Add", np.asarray(total).astype(dtype)
        if integer and any(op == "Div" for op, _, _ in steps):
            return None
        if all(op == "Div" for op, _, _ in steps):  # x / (c1 * c2): a division, as the model wrote it
            total = np.ones((), dtype=np.float64)
            for _, _, v in steps:
                total = total * v
            return "Div", np.asarray(total).astype(dtype)
        total = np.ones((), dtype=np.float64 if not integer else np.int64)
        for op, _, v in steps:
            total = total * v if op == "Mul" else total / v
        if not np.all(np.isfinite(total)) and not integer:
            return None
        return "Mul", np.asarray(total).astype(dtype)
