"""Shape computations whose values are known without running the model (GRF409,
fold-shape-computations)."""

from __future__ import annotations

from typing import NamedTuple, Union

import numpy as np

from ..model import Graph, Model, NodeRef

# A dim of a tensor whose value is not a number: ("p", dim_param) for a named (symbolic) dim, equal
# wherever the name is; ("d", tensor, axis) for an unnamed one, equal only to itself.


Dim = tuple
# An element of a shape value: a number, a dim, or None (not known at all).
Item = Union[int, Dim, None]

# Ops the evaluator follows; everything else ends a shape computation.
_OPS = frozenset({"Shape", "Gather", "Slice", "Concat", "Unsqueeze", "Squeeze", "Cast", "Identity", "Reshape",
                  "ReduceProd", "Add", "Sub", "Mul", "Div", "Max", "Min"})
_MAX_ITEMS = 64
_IS_INT = int.__instancecheck__  # isinstance(x, int), for map()
_MISSING = object()


class ShapeValue(NamedTuple):
    scalar: bool  # a 0-D tensor (one item) rather than 1-D
    items: tuple[Item, ...]

    @property
    def static(self) -> bool:
        return all(map(_IS_INT, self.items))


class Action(NamedTuple):
    kind: str  # constant | reshape | expand
    node: NodeRef  # the producer of the constant, the Reshape, the Expand
    tensor: str  # the tensor replaced: the constant, the Reshape's shape input, the Expand's output
    value: np.ndarray | None  # the constant (kind constant, reshape); None for expand (removed)
    text: str


class ShapeValues:
    """The ShapeValue of each tensor of a graph, computed on demand (memoized)."""

    OPS = _OPS  # the ops `evaluate` follows (a subclass that evaluates more ops extends it)

    def __init__(self, model: Model, g: Graph) -> None:
        self.model = model
        self.g = g
        self.cv = model.constants(g)
        self.memo: dict[str, ShapeValue | None] = {}
        self._shapes: dict[str, tuple[Item, ...] | None] = {}

    def dim(self, tensor: str, axis: int) -> Item:
        dims = self._dims(tensor)
        if dims is None or not -len(dims) <= axis < len(dims):
            return None
        return dims[axis]

    def _dims(self, tensor: str) -> tuple[Item, ...] | None:
        """The Items of every dim of `tensor` (None: rank unknown), once per tensor: a tensor's
        shape is often read by several Shape nodes, and its dims compared with several values."""
        dims = self._shapes
        hit = dims.get(tensor, _MISSING)
        if hit is _MISSING:
            shape = self.g.shape_of(tensor)
            # a number; ("p", name) for a named dim; ("d", tensor, axis) for an unnamed one
            hit = dims[tensor] = None if shape is None else tuple([
                d if isinstance(d, int) else ("p", d) if isinstance(d, str) and d else ("d", tensor, a)
                for a, d in enumerate(shape)])
        return hit  # type: ignore[return-value]

    def value(self, tensor: str) -> ShapeValue | None:
        """The value of a tensor `evaluate` reached, or of a constant."""
        v = self.memo.get(tensor, _MISSING)
        if v is _MISSING:
            v = self.memo[tensor] = self._const(tensor) if self.cv.is_constant(tensor) else None
        return v  # type: ignore[return-value]

    def evaluate(self) -> list[str]:
        """Evaluates, in one forward pass, every node reachable from a `Shape` through the ops the
        evaluator follows; returns their outputs in topological order."""
        g = self.g
        ops, std, outs_, followed, consumers = g.op_types, g.standard, g.node_outputs, self.OPS, g.consumers
        shapes = g.op_positions.get("Shape", ())
        nodes = set(shapes)
        stack = list(shapes)
        while stack:
            for o in outs_[stack.pop()]:
                for c in consumers.get(o, ()):  # (nothing consumes "", an omitted output)
                    if c not in nodes and ops[c] in followed and std[c]:
                        nodes.add(c)
                        stack.append(c)
        order = sorted(nodes) if g.topo_sorted else [k for k in g.topo_order if k in nodes]
        reached = []
        memo = self.memo
        evaluate_node = self._evaluate_node
        for k in order:
            outs = outs_[k]
            out = outs[0] if outs else ""
            if not out:
                continue
            try:
                memo[out] = evaluate_node(k)
            except (ValueError, IndexError, TypeError, OverflowError):
                memo[out] = None
            reached.append(out)
        return reached

    def _const(self, t: str) -> ShapeValue | None:
        g = self.g
        tp = g.initializers.get(t)
        if tp is None:
            hit = g.producers.get(t)
            if hit is not None and g.op_types[hit[0]] == "Constant":
                attrs = g.nodes[hit[0]].attribute
                a = attrs[0] if len(attrs) == 1 else None
                if a is not None and a.name == "value":
                    tp = a.t
        if tp is not None and tp.data_type == 7 and tp.data_location != 1:
            dims = tp.dims
            if len(dims) <= 1:
                # INT64, the common case, read without numpy
                if tp.HasField("raw_data"):
                    raw = g.raw_data(t) if t in g.initializers else tp.raw_data
                    if raw is not None and len(raw) <= 8 * _MAX_ITEMS:
                        return ShapeValue(not dims, tuple(int.from_bytes(raw[k:k + 8], "little", signed=True)
                                                          for k in range(0, len(raw), 8)))
                else:
                    values = tp.int64_data
                    if len(values) <= _MAX_ITEMS:
                        return ShapeValue(not dims, tuple(values[:]))  # (a list first: quicker)
        v = self.cv.value(t)
        if v is None or v.dtype.kind not in "iu" or v.ndim > 1 or v.size > _MAX_ITEMS:
            return None
        return ShapeValue(v.ndim == 0, tuple(int(x) for x in v.reshape(-1)))

    def _evaluate_node(self, i: int) -> ShapeValue | None:
        """The value of node i's output from its inputs' (`_arg`); an op without an evaluator of its
        own is integer arithmetic."""
        return _EVALUATORS.get(self.g.op_types[i], ShapeValues._arithmetic)(self, i, self.g.node_inputs[i])

    def _arg(self, ins: list[str], k: int) -> ShapeValue | None:
        """The value of input k (None when absent or unknown): `value`, with the common case, an
        input that was reached before (every input of a reached node was) or already read, first."""
        t = ins[k] if k < len(ins) else ""
        if not t:
            return None
        v = self.memo.get(t, _MISSING)
        return self.value(t) if v is _MISSING else v  # type: ignore[return-value]

    def _shape(self, i: int, ins: list[str]) -> ShapeValue | None:
        items = self._dims(ins[0]) if ins else None
        if items is None:
            return None
        g = self.g
        if g.nodes[i].attribute:  # start, end
            rank = len(items)
            items = items[_clamp(_int_attr(g, i, "start", 0), rank):_clamp(_int_attr(g, i, "end", rank), rank)]
        return ShapeValue(False, items)

    def _cast(self, i: int, ins: list[str]) -> ShapeValue | None:
        v = self._arg(ins, 0)
        if v is None or (self.g.op_types[i] == "Cast" and _int_attr(self.g, i, "to", None) not in (6, 7)):  # INT32, INT64
            return None
        return v

    def _gather(self, i: int, ins: list[str]) -> ShapeValue | None:
        v, idx = self._arg(ins, 0), self._arg(ins, 1)
        if v is None or idx is None or v.scalar or _int_attr(self.g, i, "axis", 0) != 0 or not idx.static:
            return None
        items = v.items
        n = len(items)
        return ShapeValue(idx.scalar, tuple([items[k + n if k < 0 else k] for k in idx.items]))  # type: ignore[operator]

    def _slice(self, i: int, ins: list[str]) -> ShapeValue | None:
        arg = self._arg
        v = arg(ins, 0)
        if v is None or v.scalar or len(ins) < 3:
            return None
        params = [arg(ins, k) if ins[k] else None for k in range(1, min(len(ins), 5))]
        if any(ins[k + 1] and (p is None or not p.static or len(p.items) != 1) for k, p in enumerate(params)):
            return None
        start, end = params[0].items[0], params[1].items[0]  # type: ignore[union-attr]
        if len(params) > 2 and params[2] is not None and params[2].items[0] not in (0, -1):
            return None
        step = params[3].items[0] if len(params) > 3 and params[3] is not None else 1
        if step == 0:
            return None
        return ShapeValue(False, tuple(v.items[slice(start, end, step)]))  # type: ignore[misc]

    def _concat(self, i: int, ins: list[str]) -> ShapeValue | None:
        items: list[Item] = []
        arg = self._arg
        for k in range(len(ins)):
            v = arg(ins, k)
            if v is None or v.scalar:
                return None
            items += v.items
        if _int_attr(self.g, i, "axis", 0) not in (0, -1) or len(items) > _MAX_ITEMS:
            return None
        return ShapeValue(False, tuple(items))

    def _unsqueeze(self, i: int, ins: list[str]) -> ShapeValue | None:
        v = self._arg(ins, 0)
        if v is None or not v.scalar:
            return None
        return ShapeValue(False, v.items)

    def _squeeze(self, i: int, ins: list[str]) -> ShapeValue | None:
        v = self._arg(ins, 0)
        if v is None or v.scalar or len(v.items) != 1:
            return None
        return ShapeValue(True, v.items)

    def _reshape(self, i: int, ins: list[str]) -> ShapeValue | None:
        shape = self._arg(ins, 1)  # first: a Reshape reached through its data input rarely has a 1-D shape
        if shape is None or len(shape.items) > 1 or not shape.static:
            return None
        v = self._arg(ins, 0)
        if v is None:
            return None
        if shape.items in ((), (1,)) or (shape.items == (-1,)):
            if shape.items == () and len(v.items) != 1:
                return None
            return ShapeValue(shape.items == (), v.items)
        return None

    def _reduce_prod(self, i: int, ins: list[str]) -> ShapeValue | None:
        g = self.g
        v = self._arg(ins, 0)
        if v is None or v.scalar or (len(ins) > 1 and ins[1]) or g.ref(i).has_attr("axes") and g.ref(i).attr("axes") not in ([0], [-1]):
            return None
        if len(v.items) == 1:
            prod: Item = v.items[0]
        elif v.static:
            prod = int(np.prod(v.items, dtype=np.int64))
        else:
            return None
        return ShapeValue(False, (prod,)) if _int_attr(g, i, "keepdims", 1) else ShapeValue(True, (prod,))

    def _arithmetic(self, i: int, ins: list[str]) -> ShapeValue | None:
        """Integer arithmetic, element by element (numbers only; x*1, x+0, x-0, x/1 keep a dim)."""
        a, b = self._arg(ins, 0), self._arg(ins, 1)
        if a is None or b is None:
            return None
        if len(a.items) != len(b.items) and 1 not in (len(a.items), len(b.items)):
            return None
        n = max(len(a.items), len(b.items))
        xs = a.items if len(a.items) == n else a.items * n
        ys = b.items if len(b.items) == n else b.items * n
        op = self.g.op_types[i]
        return ShapeValue(a.scalar and b.scalar, tuple(_arith(op, x, y) for x, y in zip(xs, ys)))


# The evaluator of each op `ShapeValues.evaluate` follows (the others of _OPS: `_arithmetic`).
_EVALUATORS = {"Shape": ShapeValues._shape, "Cast": ShapeValues._cast, "Identity": ShapeValues._cast,
               "Gather": ShapeValues._gather, "Slice": ShapeValues._slice, "Concat": ShapeValues._concat,
               "Unsqueeze": ShapeValues._unsqueeze, "Squeeze": ShapeValues._squeeze,
               "Reshape": ShapeValues._reshape, "ReduceProd": ShapeValues._reduce_prod}


def _int_attr(g: Graph, i: int, name: str, default: int | None):
    """NodeRef.attr(name, default) for an INT attribute without making the NodeRef: read straight from
    the proto when the node's first attribute of that name is an INT; anything else (absent, another
    kind: recorded for MOD506) goes through NodeRef.attr."""
    for a in g.nodes[i].attribute:
        if a.name == name:
            if a.type == _INT:
                return int(a.i)
            break
    else:
        return default
    return g.ref(i).attr(name, default)


_INT = 2  # AttributeProto.INT


def _clamp(k: int, rank: int) -> int:
    k = k + rank if k < 0 else k
    return min(max(k, 0), rank)


def _arith(op: str, x: Item, y: Item) -> Item:
    if isinstance(x, int) and isinstance(y, int):
        if op == "Add":
            return x + y
        if op == "Sub":
            return x - y
        if op == "Mul":
            return x * y
        if op == "Div":
            return int(x / y) if y else None  # ONNX integer Div truncates
        if op == "Max":
            return max(x, y)
        if op == "Min":
            return min(x, y)
    if op in ("Add", "Sub") and y == 0 or op in ("Mul", "Div") and y == 1:
        return x
    if op in ("Add", "Mul") and x == (0 if op == "Add" else 1):
        return y
    return None


def known_shape_actions(model: Model, g: Graph) -> list[Action]:
    """What GRF409 reports and fold-shape-computations replaces in graph `g`."""
    shapes = g.op_positions.get("Shape")
    if not shapes:
        return []
    sv = ShapeValues(model, g)
    cv = sv.cv
    actions: list[Action] = []
    memo, is_constant = sv.memo, cv.is_constant
    static = {t: v for t in sv.evaluate() if (v := memo[t]) is not None and v.static and not is_constant(t)}
    outputs = set(g.outputs)
    elem = g.elem_type_of
    for t, v in static.items():
        readers = g.consumers.get(t, ())
        # the frontier: a value read by something that is not itself a known constant
        if t in outputs or not any(o not in static for c in readers for o in g.node_outputs[c] if o):
            continue
        et = elem(t)
        if et not in (6, 7):
            continue
        arr = np.array(v.items, dtype=np.int64 if et == 7 else np.int32)
        if v.scalar:
            arr = arr.reshape(())
        node = g.producer_ref(t)
        shown = arr.tolist()
        actions.append(Action("constant", node, t, arr,
                              f"{node.op_type} computes {shown} from static dims: it is a constant"))
    for k in g.op_positions.get("Reshape", ()):
        ins = g.node_inputs[k]
        x, s = (ins[0], ins[1]) if len(ins) > 1 else ("", "")
        if not x or not s or is_constant(s) or s in static:
            continue
        ref = g.ref(k)
        if ref.attr("allowzero", 0):
            continue
        v = sv.value(s)
        if v is None or v.scalar:
            continue
        dims = sv._dims(x) or ()
        target = []
        for i, item in enumerate(v.items):
            if isinstance(item, int):
                target.append(item)
            elif item is not None and i < len(dims) and dims[i] == item:
                target.append(0)
            else:
                break
        else:
            if -1 in target and 0 in target:
                # a -1 beside copied dims is ambiguous for empty tensors (SHP205): written out when the
                # dims that are not copied are static
                xt = g.type_of(x)
                rest = [d for j, d in enumerate(xt.shape) if not (j < len(target) and target[j] == 0)] \
                    if xt is not None and xt.shape is not None else [None]
                known = int(np.prod([t for t in target if t > 0], dtype=np.int64))
                if all(isinstance(d, int) for d in rest) and known > 0:
                    total = int(np.prod(rest, dtype=np.int64))
                    if total % known == 0 and total // known > 0:
                        target[target.index(-1)] = total // known
            arr = np.array(target, dtype=np.int64)
            actions.append(Action("reshape", ref, s, arr, f"Reshape to a computed shape that is the constant {target} "
                                  f"(0 copies the input's dim)"))
    for k in g.op_positions.get("Expand", ()):
        ref = g.ref(k)
        x, s, y = ref.input(0), ref.input(1), ref.output(0)
        if not x or not s or not y or y in outputs:
            continue
        v = sv.value(s)
        rank = g.rank_of(x)
        if v is None or v.scalar or rank is None or len(v.items) > rank:
            continue
        off = rank - len(v.items)
        if all(item == 1 or (item is not None and sv.dim(x, off + i) == item) for i, item in enumerate(v.items)):
            actions.append(Action("expand", ref, y, None, "Expand to the input's own shape (a computed shape whose "
                                  "every element is 1 or the input's dim) changes nothing"))
    return actions
