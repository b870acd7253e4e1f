"""Shape-value analysis shared by the SHP rules: where each tensor's value comes from. One linear pass
per graph, memoized in the check Context (lengths of 1-D shape tensors and ranks: checks/_ranks.py)."""

from __future__ import annotations

from ...model import FOLDABLE_OPS, Graph, Model, NodeRef
from ...rule import Context

# Value classes, ordered: the class of a computed value is the highest class among its inputs.
CONST = 0  # a build-time constant now: initializer, Constant, or foldable from those (incl. Shape of one)
FREEZABLE = 1  # computed from constants and dims of graph inputs: constant once input shapes are fixed
SHAPE = 2  # computed from shapes that are unknown even with fixed inputs (e.g. after a data-dependent op)
DATA = 3  # depends on tensor values

# Ops whose output value is a function of their input values only (what ConstantView folds), minus
# Shape/Size, which read shapes and are classified on their own.
_VALUE_OPS = FOLDABLE_OPS - {"Shape", "Size"}
# ValueClasses.class_of visits the unclassified inputs of a node with up to this many one by one.
_ONE_AT_A_TIME = 8


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


class ValueClasses:
    """Per graph, computed on demand: the class (CONST/FREEZABLE/SHAPE/DATA) of a tensor, the
    FREEZABLE tensors, and the constants that exist only thanks to `--shape`-frozen inputs.
    Only the part of the graph a question touches is visited; each tensor is classified once."""

    def __init__(self, ctx: Context, g: Graph, outer: ValueClasses | None) -> None:
        self.ctx = ctx
        self.graph = g
        self.outer = outer
        self.consts = ctx.model.constants(g)
        self.dim_names: frozenset[str] = ctx.model_memo("shp.input_dim_names", lambda: input_dim_names(ctx.model))
        self.frozen = set(ctx.model.frozen_inputs) if g.outer is None and g.function is None else set()
        self.inputs = set(g.inputs)
        self.cls: dict[str, int] = {}
        self.dims_read: dict[str, frozenset[str]] = {}  # FREEZABLE Shape/Size output -> input dim names read
        self._reach: dict[str, bool] = {}

    def _local(self, t: str) -> bool:
        g = self.graph
        return t in g.producers or t in g.initializers or t in self.inputs

    def class_of(self, t: str) -> int:
        c = self.cls.get(t)
        if c is not None:
            return c
        if not self._local(t):
            return self.outer.class_of(t) if self.outer is not None else DATA
        g, cls = self.graph, self.cls
        producers, inits, inputs = g.producers, g.initializers, self.inputs  # what _local reads
        ops, standard, node_inputs, node_outputs = g.op_types, g.standard, g.node_inputs, g.node_outputs
        is_constant = self.consts.is_constant
        # Waiting for their inputs' classes. One reached again while it waits is on a cycle of
        # producers, which only a name written twice (SSA broken, MOD504) makes: DATA ends the cycle.
        waiting: set[str] = set()
        stack = [t]
        while stack:
            x = stack[-1]
            if x in cls:
                stack.pop()
                continue
            if is_constant(x):  # CONST is what the one constant evaluator says
                cls[x] = CONST
                stack.pop()
                continue
            hit = producers.get(x)
            if hit is None:
                cls[x] = DATA
                stack.pop()
                continue
            i = hit[0]
            op = ops[i]
            outs = node_outputs[i]
            if not standard[i]:
                c = DATA
            elif op in ("Shape", "Size"):
                ins = node_inputs[i]
                src = ins[0] if ins else ""
                read = _dims_read(g, g.ref(i), src) if src else None
                if read is not None and all(isinstance(d, int) or d in self.dim_names for d in read):
                    c = FREEZABLE
                    self.dims_read.update((o, frozenset(d for d in read if isinstance(d, str))) for o in outs if o)
                elif not src:
                    c = DATA
                else:
                    sc = cls.get(src) if self._local(src) else self.class_of(src)
                    if sc is None:
                        if src in waiting:
                            cls[src] = DATA
                        else:
                            waiting.add(x)
                            stack.append(src)
                        continue
                    # the shape of a foldable value is foldable; of a value fixed by the input
                    # shapes, fixed by them too
                    c = sc if sc <= FREEZABLE else SHAPE
            elif op in _VALUE_OPS:
                known, pending = [], []
                for s in node_inputs[i]:
                    if not s:
                        continue
                    sc = cls.get(s) if s in producers or s in inits or s in inputs else self.class_of(s)
                    if sc is None:
                        # Classified here as they would be once pushed, without the visit: a constant,
                        # and the DATA outputs of a graph input or of an op that is not a value op.
                        if is_constant(s):
                            known.append(CONST)
                            cls[s] = CONST
                            continue
                        hit_s = producers.get(s)
                        if hit_s is None:
                            known.append(DATA)
                            cls[s] = DATA
                            continue
                        k = hit_s[0]
                        if not standard[k] or not (ops[k] in _VALUE_OPS or ops[k] in ("Shape", "Size")):
                            known.append(DATA)
                            cls.update((o, DATA) for o in node_outputs[k] if o)
                            continue
                        pending.append(s)
                    else:
                        known.append(sc)
                if DATA in known:
                    c = DATA
                elif pending:
                    # One input at a time, the last first: the first DATA one decides, the others
                    # are not visited (a LayerNorm's output is DATA through its variance, whatever
                    # its input's history). All at once for a wide node, which is revisited per push.
                    pushed = pending[-1:] if len(pending) <= _ONE_AT_A_TIME else pending
                    if waiting.isdisjoint(pushed):
                        waiting.add(x)
                        stack.extend(pushed)
                    else:
                        cls.update((s, DATA) for s in pushed if s in waiting)
                    continue
                else:
                    c = max(known, default=CONST)
            else:
                c = DATA
            for o in outs:
                if o:
                    cls[o] = c
            stack.pop()
        return cls[t]

    def _forward(self, seeds: list[str], keep) -> set[str]:
        """Tensors reachable from `seeds` through value ops (and Shape/Size) whose outputs satisfy `keep`."""
        g = self.graph
        out = set(seeds)
        queue = list(seeds)
        while queue:
            t = queue.pop()
            for c in g.consumers.get(t, ()):
                op = g.op_types[c]
                if not g.standard[c] or not (op in _VALUE_OPS or op in ("Shape", "Size")):
                    continue
                for o in g.node_outputs[c]:
                    if o and o not in out and keep(o):
                        out.add(o)
                        queue.append(o)
        return out

    def _shape_nodes(self) -> list[NodeRef]:
        g = self.graph
        return [r for r in self.ctx.nodes_of("Shape", "Size") if r.graph is g]

    def freezable(self) -> set[str]:
        """Every FREEZABLE tensor of this graph."""
        seeds = [o for r in self._shape_nodes() for o in r.graph.node_outputs[r.index][:1]
                 if o and self.class_of(o) == FREEZABLE]
        return self._forward(seeds, lambda o: self.class_of(o) == FREEZABLE)

    def frozen_const(self) -> set[str]:
        """Constants that exist only because a frozen input's shape is now fixed: outputs of Shape/Size
        of tensors computed from frozen inputs, and what value ops compute from them."""
        if not self.frozen:
            return set()
        seeds = []
        for r in self._shape_nodes():
            o = r.graph.node_outputs[r.index][0] if r.graph.node_outputs[r.index] else ""
            src = r.input(0)
            if o and src and self.class_of(o) == CONST and self.reaches(src):
                seeds.append(o)
        return self._forward(seeds, lambda o: self.class_of(o) == CONST)

    def reaches(self, t: str) -> bool:
        """Whether `t` is computed from a frozen graph input."""
        g, memo = self.graph, self._reach
        stack = [t]
        while stack:
            x = stack[-1]
            if x in memo:
                stack.pop()
                continue
            hit = g.producers.get(x)
            if hit is None:
                memo[x] = x in self.frozen
                stack.pop()
                continue
            ins = [s for s in g.node_inputs[hit[0]] if s]
            pending = [s for s in ins if s not in memo]
            if pending:
                stack.extend(pending)
                continue
            memo[x] = any(memo[s] for s in ins)
            stack.pop()
        return memo[t]


def _dims_read(g: Graph, ref: NodeRef, src: str) -> tuple | None:
    """The dims of `src` that Shape (with start/end) or Size reads; None when unknown."""
    dims = g.shape_of(src)  # type_of(src).shape, without making the TensorType
    if dims is None:
        return None
    if ref.op_type == "Shape":
        start, end = ref.attr("start", 0), ref.attr("end", None)
        dims = dims[start:end]
    if None in dims:
        return None
    return tuple(dims)


def value_classes(ctx: Context, g: Graph) -> ValueClasses:
    """The ValueClasses of `g`, built once per check run (outer graphs first)."""

    def build() -> ValueClasses:
        outer = value_classes(ctx, g.outer) if g.outer is not None else None
        return ValueClasses(ctx, g, outer)

    return ctx.model_memo(("shp.classes", id(g)), build)
