"""Shape-value analysis shared by the SHP rules: where each tensor's value comes from, and the
length of 1-D shape tensors. One linear pass per graph, memoized in the check Context."""

from __future__ import annotations

from typing import Callable

from ...model import Graph, Model, NodeRef
from ...rule import Context

# Value classes, ordered: the class of a computed value is the highest class among its inputs.
CONST = 0  # a build-time constant now (initializer, Constant, or folded by ConstantView)
FREEZABLE = 1  # computed from constants and dims of graph inputs: constant once input shapes are fixed
SHAPE = 2  # computed from shapes that are unknown even with fixed inputs (e.g. after a data-dependent op)
DATA = 3  # depends on tensor values

# Ops whose output value is a function of their input values only (what ConstantView folds), minus
# Shape/Size, which read shapes and are classified on their own.
_VALUE_OPS = frozenset(
    """Identity Cast CastLike Reshape Flatten Squeeze Unsqueeze Concat Gather Slice Transpose Expand Tile
    Add Sub Mul Div Neg Abs Floor Ceil Min Max Mod Equal Less Greater LessOrEqual GreaterOrEqual Not And Or Where
    Range ConstantOfShape ReduceProd ReduceSum ReduceMin ReduceMax Sqrt Pow Clip Split""".split()
)


def input_dim_names(model: Model) -> frozenset[str]:
    """Symbolic dim names of the main graph's (non-initializer) inputs."""
    g = model.main
    names: set[str] = set()
    for name in g.inputs:
        if name in g.initializers:
            continue
        t = g.types.get(name)
        if t is not None and t.shape is not None:
            names.update(d for d in t.shape if isinstance(d, str))
    return frozenset(names)


def topo_order(g: Graph) -> list[int]:
    """Node indices in an order where producers come first (the loader guarantees acyclicity)."""
    seen = set(g.inputs) | set(g.initializers)
    in_order = True
    for ins, outs in zip(g.node_inputs, g.node_outputs):
        for inp in ins:
            if inp and inp not in seen and inp in g.producers:
                in_order = False
                break
        if not in_order:
            break
        seen.update(outs)
    if in_order:
        return list(range(len(g.nodes)))
    indeg = [sum(1 for inp in ins if inp in g.producers) for ins in g.node_inputs]
    ready = [i for i, d in enumerate(indeg) if d == 0]
    order: list[int] = []
    while ready:
        i = ready.pop()
        order.append(i)
        for out in g.node_outputs[i]:
            for c in g.consumers.get(out, ()):
                indeg[c] -= 1
                if indeg[c] == 0:
                    ready.append(c)
    return order


class ValueClasses:
    """Per graph: the class (CONST/FREEZABLE/SHAPE/DATA) of every tensor, whether a tensor is
    reachable from a `--shape`-frozen input, and which constants exist only thanks to frozen inputs."""

    def __init__(self, ctx: Context, g: Graph, outer: ValueClasses | None) -> None:
        self.graph = g
        self.outer = outer
        self.cls: dict[str, int] = {}
        self.reach: set[str] = set()  # tensors computed from a frozen graph input
        self.frozen_const: set[str] = set()  # constant now, but only because inputs were frozen
        # For FREEZABLE tensors: the graph-input dim names their value depends on.
        self.dims_read: dict[str, frozenset[str]] = {}
        model = ctx.model
        consts = model.constants(g)
        dim_names = ctx.memo("shp.input_dim_names", lambda: input_dim_names(model))
        frozen = set(model.frozen_inputs) if g.outer is None and g.function is None else set()
        for name in g.initializers:
            self.cls[name] = CONST
        for name in g.inputs:
            if name not in g.initializers:
                self.cls[name] = DATA
                if name in frozen:
                    self.reach.add(name)
        cls, reach, fconst = self.cls, self.reach, self.frozen_const
        for i in topo_order(g):
            node = g.nodes[i]
            ins = g.node_inputs[i]
            outs = g.node_outputs[i]
            op = node.op_type
            std = node.domain in ("", "ai.onnx")
            in_cls = [self.class_of(t) for t in ins if t]
            if any(self.reaches(t) for t in ins if t):
                reach.update(o for o in outs if o)
            if std and op == "Constant":
                c = CONST
            elif std and op in ("Shape", "Size") and ins:
                src = ins[0]
                if outs and consts.is_constant(outs[0]):
                    c = CONST
                    if self.reaches(src):
                        fconst.update(o for o in outs if o)
                else:
                    read = _dims_read(g, NodeRef(node, g, i), src)
                    if read is not None and all(isinstance(d, int) or d in dim_names for d in read):
                        c = FREEZABLE
                        dims = frozenset(d for d in read if isinstance(d, str))
                    elif self.class_of(src) <= FREEZABLE:
                        # a value fixed by the input shapes has a shape fixed by them too
                        c = FREEZABLE
                        dims = self.dims_of(src)
                    else:
                        c = SHAPE
                    if c == FREEZABLE:
                        self.dims_read.update((o, dims) for o in outs if o)
            elif std and op in _VALUE_OPS:
                c = max(in_cls, default=CONST)
                if c == FREEZABLE:
                    dims = frozenset().union(*(self.dims_of(t) for t in ins if t))
                    self.dims_read.update((o, dims) for o in outs if o)
                if c == CONST:
                    if not all(consts.is_constant(o) for o in outs if o):
                        c = DATA  # not evaluable by our propagation: stay conservative
                    elif any(t in fconst or (self.outer and self.outer.is_frozen_const(t)) for t in ins if t):
                        fconst.update(o for o in outs if o)
            else:
                c = DATA
            for o in outs:
                if o:
                    cls[o] = c

    def class_of(self, t: str) -> int:
        c = self.cls.get(t)
        if c is not None:
            return c
        if self.outer is not None:
            return self.outer.class_of(t)
        return DATA

    def dims_of(self, t: str) -> frozenset[str]:
        """The graph-input dim names a FREEZABLE tensor depends on."""
        d = self.dims_read.get(t)
        if d is not None:
            return d
        if t in self.cls or self.outer is None:
            return frozenset()
        return self.outer.dims_of(t)

    def reaches(self, t: str) -> bool:
        if t in self.reach:
            return True
        if t in self.cls or self.outer is None:
            return False
        return self.outer.reaches(t)

    def is_frozen_const(self, t: str) -> bool:
        if t in self.frozen_const:
            return True
        if t in self.cls or self.outer is None:
            return False
        return self.outer.is_frozen_const(t)


def _dims_read(g: Graph, ref: NodeRef, src: str) -> tuple | None:
    """The dims of `src` that Shape (with start/end) or Size reads; None when unknown."""
    t = g.type_of(src)
    if t is None or t.shape is None:
        return None
    dims = t.shape
    if ref.op_type == "Shape":
        start, end = ref.attr("start", 0), ref.attr("end", None)
        dims = dims[start:end]
    if any(d is None for d in dims):
        return None
    return tuple(dims)


def value_classes(ctx: Context, g: Graph) -> ValueClasses:
    """The ValueClasses of `g`, built once per check run (outer graphs first)."""

    def build() -> ValueClasses:
        outer = value_classes(ctx, g.outer) if g.outer is not None else None
        return ValueClasses(ctx, g, outer)

    return ctx.memo(("shp.classes", id(g)), build)


# ----------------------------------------------------------------------------
# Lengths of 1-D shape tensors
# ----------------------------------------------------------------------------
_ELEMENTWISE = frozenset("Cast CastLike Identity Neg Abs Floor Ceil Add Sub Mul Div Max Min Mod Where Clip".split())


def shape_length(ctx: Context, g: Graph, tensor: str) -> int | None:
    """Number of elements of a 1-D (or 0-D: 1) tensor used as a shape, or None when no analysis
    (ONNX shape inference, constant values, or a small propagation through shape ops) knows it."""
    memo: dict[str, int | None] = ctx.memo(("shp.lengths", id(g)), dict)
    return _length(ctx, g, tensor, memo, 0)


def _length(ctx: Context, g: Graph, t: str, memo: dict, depth: int) -> int | None:
    if t in memo:
        return memo[t]
    memo[t] = None
    memo[t] = n = _compute_length(ctx, g, t, memo, depth)
    return n


def _compute_length(ctx: Context, g: Graph, t: str, memo: dict, depth: int) -> int | None:
    typ = g.type_of(t)
    if typ is not None and typ.shape is not None:
        if len(typ.shape) == 0:
            return 1
        if len(typ.shape) == 1 and isinstance(typ.shape[0], int):
            return typ.shape[0]
    val = ctx.model.constants(g).value(t)
    if val is not None:
        return int(val.size) if val.ndim <= 1 else None
    hit = g.producers.get(t)
    if hit is None or depth > 64:
        return None
    i = hit[0]
    node = g.nodes[i]
    if node.domain not in ("", "ai.onnx"):
        return None
    ins = g.node_inputs[i]
    op = node.op_type
    rec: Callable[[str], int | None] = lambda x: _length(ctx, g, x, memo, depth + 1)  # noqa: E731
    ref = NodeRef(node, g, i)
    if op == "Shape" and ins:
        st = g.type_of(ins[0])
        if st is None or st.shape is None:
            return None
        return len(range(len(st.shape))[ref.attr("start", 0):ref.attr("end", None)])
    if op == "Concat":
        lens = [rec(x) for x in ins if x]
        return sum(lens) if lens and all(n is not None for n in lens) else None  # type: ignore[misc]
    if op == "Unsqueeze" and ins:
        src = g.type_of(ins[0])
        return 1 if src is not None and src.shape == () else None
    if op == "Gather" and len(ins) > 1:
        idx = g.type_of(ins[1])
        if idx is not None and idx.shape is not None:
            if len(idx.shape) == 0:
                return 1
            if len(idx.shape) == 1 and isinstance(idx.shape[0], int):
                return idx.shape[0]
        return None
    if op in _ELEMENTWISE:
        lens = [rec(x) for x in (ins[1:] if op == "Where" else ins) if x]
        if op in ("Cast", "CastLike", "Identity", "Neg", "Abs", "Floor", "Ceil", "Clip"):
            lens = lens[:1]
        return max(lens) if lens and all(n is not None for n in lens) else None  # type: ignore[type-var]
    return None
