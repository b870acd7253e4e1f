"""Whether an `If` node's condition is a build-time constant, as TRT141 and GRF401 need to know."""

from __future__ import annotations

from ..model import Model, NodeRef


def condition_kind(model: Model, ref: NodeRef) -> str | None:
    """"weights" when the condition is an initializer or a `Constant` output (of the If's graph or an
    enclosing one): TensorRT's parser then imports only the branch that runs. "folded" when it is
    constant only once the nodes computing it are folded (`Equal(Gather(Shape(x)), 1)` on a static
    shape): the parser still builds a conditional with both branches. None when it varies at run time."""
    cond = ref.input(0)
    if not cond:
        return None
    g = ref.graph
    while g is not None:
        if cond in g.inputs and cond not in g.initializers:
            return None
        if cond in g.initializers:
            return "weights"
        producer = g.producer(cond)
        if producer is not None:
            if producer.op_type == "Constant" and producer.domain in ("", "ai.onnx"):
                return "weights"
            break
        g = g.outer
    return "folded" if model.constants(ref.graph).is_constant(cond) else None


def decided_by_enclosing(model: Model) -> bool:
    """Whether some `If` sits inside a branch of another `If` on the same condition value (the same
    name, not redefined in between): its condition is known there (true inside `then_branch`, false
    inside `else_branch`), so `inline-constant-if` replaces it by that branch."""
    for g in model.graphs:
        if g.outer is None or g.function is not None:
            continue
        conditions: set[str] = set()
        cur = g
        while cur.outer is not None and cur.path:
            op, _, rest = cur.path[-1].partition("#")
            index, _, attr = rest.partition("/")
            if op == "If" and attr in ("then_branch", "else_branch") and index.isdigit():
                owner = cur.outer.nodes[int(index)]
                if owner.input and owner.input[0]:
                    conditions.add(owner.input[0])
            cur = cur.outer
        for n in g.nodes:
            if n.op_type == "If" and n.input and n.input[0] in conditions and n.input[0] not in g.producers \
                    and n.input[0] not in g.inputs and n.input[0] not in g.initializers:
                return True
    return False
