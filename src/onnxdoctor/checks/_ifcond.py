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
