"""Constant evaluation: which values are build-time constants, and the small ones' values."""

from __future__ import annotations

import math
import numpy as np

from .. import _onnx
from .graph import MAX_VALUE_ELEMENTS, Graph, attribute_value, tensor_value

# Ops whose output is a build-time constant when all their (present) inputs are (Shape and Size also
# when their input's shape is static). The SHP analyses classify values through the same ops.
FOLDABLE_OPS = frozenset(
    """Identity Cast CastLike Reshape Flatten Squeeze Unsqueeze Concat Gather Slice Transpose Expand Tile
    Add Sub Mul Div Neg Abs Floor Ceil Min Max Mod Equal Less Greater LessOrEqual GreaterOrEqual Not And Or Where
    Range ConstantOfShape ReduceProd ReduceSum ReduceMin ReduceMax Sqrt Pow Clip Split Size Shape""".split()
)
_SHAPE_OPS = frozenset({"Shape", "Size"})
# Ops whose output value does not need their inputs' values.
_VALUE_FREE_OPS = frozenset({"Constant", "Shape", "Size"})
_PENDING = object()
_EXTERNAL = 1  # TensorProto.EXTERNAL


class ConstantView:
    """Answers 'is this tensor a build-time constant?' and, for small constants, 'what is its value?'.

    One forward pass over the graph's nodes in topological order (`Graph.topo_order`: node order when
    the file is sorted) decides every node output's constant-ness from its inputs', so the answer does
    not depend on the order the file lists the nodes in. Values are computed on demand, inputs first."""

    def __init__(self, graph: Graph, views: dict[int, ConstantView]) -> None:
        self._views = views  # the model's views, one per graph: an enclosing graph's answers come from its own
        self.graph = graph
        # The constant tensors: this graph's, and the enclosing graphs' constants it reads.
        self._constants: set[str] = set()
        self._value: dict[str, np.ndarray | None] = {}
        self._scalar: dict[str, float | None] = {}
        # Indices of the nodes (other than Constant) whose outputs are all constant.
        self.computed_constants: list[int] = []
        self._forward()
        if graph.outer is None:
            # the common question, answered by the set itself (rules ask it tens of thousands of times)
            self.is_constant = self._constants.__contains__  # type: ignore[method-assign]

    def _forward(self) -> None:
        g = self.graph
        ops, std_, ins_, outs_ = g.op_types, g.standard, g.node_inputs, g.node_outputs
        order = range(len(ops)) if g.topo_sorted else g.topo_order
        # Graph inputs are constants when an initializer gives their value; a body's reads of
        # enclosing graphs' values are constants when those graphs say so.
        const = self._constants
        const.update(g.initializers)
        if g.outer is not None:
            const.update(self._outer_constants(order))
        # A name given a value twice (a model breaking SSA) takes the last one: then a non-constant
        # assignment must take the name out again. Rare: looked for only when the counts say so.
        redefined = const.intersection(g.producers)
        if sum(map(len, outs_)) != len(g.producers):  # an output named twice, or an omitted ("") one
            seen: set[str] = set()
            for outs in outs_:
                for o in outs:
                    if o in seen:
                        redefined.add(o)
                    seen.add(o)
            redefined.discard("")
        const.add("")  # an omitted input: constant-ness is decided by the present ones
        computed = self.computed_constants
        all_constant = const.issuperset
        for k in order:
            op, outs = ops[k], outs_[k]
            if not std_[k]:
                folds = False
            elif op in FOLDABLE_OPS:
                ins = ins_[k]
                if op in _SHAPE_OPS:
                    # Shape and Size also fold when their input's shape is static, whatever its value.
                    src = ins[0] if ins else ""
                    st = g.type_of(src) if src else None
                    folds = bool(src) and (st is not None and st.is_static or all_constant(ins))
                else:
                    folds = all_constant(ins)
                if folds and any(outs):
                    computed.append(k)
            else:
                folds = op == "Constant"
            if folds:
                const.update(outs)
            elif redefined:
                const.difference_update(redefined.intersection(outs))
        const.discard("")

    def _outer_constants(self, order) -> list[str]:
        """The names this body reads from enclosing graphs (before any local definition) that are
        constants there."""
        g = self.graph
        outer_view = constant_view(self._views, g.outer)  # type: ignore[arg-type]
        defined = set(g.inputs)
        defined.update(g.initializers)
        defined.add("")
        out = []
        for k in order:
            for i in g.node_inputs[k]:
                if i not in defined:
                    defined.add(i)
                    if outer_view.is_constant(i):
                        out.append(i)
            defined.update(g.node_outputs[k])
        return out

    def _owner(self, tensor: str) -> tuple[Graph, ConstantView] | None:
        g: Graph | None = self.graph
        while g is not None:
            if tensor in g.producers or tensor in g.initializers or tensor in g.inputs:
                view = self if g is self.graph else constant_view(self._views, g)
                return g, view
            g = g.outer
        return None

    def is_constant(self, tensor: str) -> bool:
        # (a main graph's view answers with its set's __contains__ instead: see __init__)
        if tensor in self._constants:
            return True
        owner = self._owner(tensor) if tensor else None
        if owner is None or owner[1] is self:  # unknown, or this graph's and not constant
            return False
        return owner[1].is_constant(tensor)

    def is_weights(self, tensor: str) -> bool:
        """What the parser itself treats as weights: an initializer or a Constant node's output."""
        owner = self._owner(tensor) if tensor else None
        if owner is None:
            return False
        g, _ = owner
        if tensor in g.initializers:
            return True
        node = g.producer(tensor)
        return node is not None and node.op_type == "Constant" and node.domain in ("", "ai.onnx")

    def value(self, tensor: str) -> np.ndarray | None:
        """The value of a small constant, or None when unknown (non-constant, external, big, or not evaluable)."""
        hit = self._value.get(tensor, _PENDING)  # only constants of this graph are memoized
        if hit is not _PENDING:
            return hit
        if not tensor or not self.is_constant(tensor):
            return None
        init = self.graph.initializers.get(tensor)
        if init is not None and init.data_location == _EXTERNAL:
            # the common case of a weight: never read (as tensor_value says), without the evaluation below
            self._value[tensor] = None
            return None
        g, view = self._owner(tensor)  # type: ignore[misc]
        if view is not self:
            return view.value(tensor)
        # The local constants it is computed from first, deepest first: no recursion, for constant
        # chains are as long as models are deep.
        values = self._value
        stack = [tensor]
        expanded: set[str] = set()
        while stack:
            t = stack[-1]
            if t in values:
                stack.pop()
                continue
            if t not in expanded:
                expanded.add(t)
                pending = [i for i in self._computed_from(g, t) if i not in values and i not in expanded]
                if pending:
                    stack.extend(pending)
                    continue
            stack.pop()
            try:
                val = self._evaluate(g, t)
            except Exception:  # noqa: BLE001 - evaluation is best effort; unknown is a valid answer
                val = None
            values[t] = val if val is None or val.size <= MAX_VALUE_ELEMENTS else None
        return values[tensor]

    def scalar(self, tensor: str) -> float | None:
        """The value of a one-element numeric constant as a float (a pattern's epsilon, exponent or
        factor), else None. Memoized: a few such constants are read by hundreds of pattern matches."""
        hit = self._scalar.get(tensor, _PENDING)
        if hit is _PENDING:
            hit = None
            if self.is_constant(tensor):
                v = self.value(tensor)
                if v is not None and v.size == 1 and v.dtype.kind in "biufc":
                    hit = float(v.reshape(-1)[0])
            self._scalar[tensor] = hit
        return hit  # type: ignore[return-value]

    def _computed_from(self, g: Graph, tensor: str) -> list[str]:
        """The constant inputs produced by this graph's nodes whose values `tensor`'s value needs."""
        hit = g.producers.get(tensor)
        if hit is None or tensor in g.initializers:
            return []
        k = hit[0]
        if g.op_types[k] in _VALUE_FREE_OPS:
            return []
        const, producers = self._constants, g.producers
        return [i for i in g.node_inputs[k] if i and i in producers and i in const]

    def _evaluate(self, g: Graph, tensor: str) -> np.ndarray | None:
        if tensor in g.initializers:
            return g.initializer_value(tensor)
        ref = g.producer_ref(tensor)
        if ref is None:
            return None
        node, op = ref.node, ref.op_type
        if op == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    return tensor_value(a.t)
                if a.name in ("value_int", "value_float"):
                    return np.array(attribute_value(a))
                if a.name in ("value_ints", "value_floats"):
                    return np.array(attribute_value(a))
            return None
        if op == "Shape":
            st = g.type_of(node.input[0])
            if not (st and st.is_static):
                return None
            shape = np.array(st.shape, dtype=np.int64)
            start, end = ref.attr("start", 0), ref.attr("end", None)
            return shape[start:end]
        if op == "Size":
            st = g.type_of(node.input[0])
            return np.array(math.prod(st.shape), dtype=np.int64) if st and st.is_static else None
        values = self._value
        args = [(values[i] if i in values else self.value(i)) if i else None for i in node.input]
        if any(a is None for a, name in zip(args, node.input) if name):
            return None
        if op == "Identity":
            return args[0]
        if op == "Cast":
            to = ref.attr("to")
            return args[0].astype(_onnx.np_dtype(to))
        if op == "Unsqueeze":
            axes = ref.attr("axes") if ref.has_attr("axes") else (args[1].tolist() if len(args) > 1 else [])
            out = args[0]
            rank = out.ndim + len(axes)
            for ax in sorted(a % rank for a in axes):
                out = np.expand_dims(out, ax)
            return out
        if op == "Squeeze":
            axes = ref.attr("axes") if ref.has_attr("axes") else (args[1].tolist() if len(args) > 1 and args[1] is not None else None)
            return np.squeeze(args[0], axis=tuple(axes) if axes else None)
        if op == "Concat":
            return np.concatenate([a for a in args if a is not None], axis=ref.attr("axis", 0))
        if op == "Gather":
            return np.take(args[0], args[1], axis=ref.attr("axis", 0))
        if op == "Reshape":
            target = [int(x) for x in args[1]]
            target = [args[0].shape[i] if d == 0 else d for i, d in enumerate(target)]
            return args[0].reshape(target)
        if op == "Slice" and len(args) >= 3:
            data, starts, ends = args[0], args[1], args[2]
            axes = args[3] if len(args) > 3 and args[3] is not None else range(len(starts))
            steps = args[4] if len(args) > 4 and args[4] is not None else [1] * len(starts)
            index = [slice(None)] * data.ndim
            for s, e, ax, st in zip(starts, ends, axes, steps):
                index[int(ax)] = slice(int(s), int(e), int(st))
            return data[tuple(index)]
        binary = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Max": np.maximum, "Min": np.minimum}
        if op in binary and len(args) == 2:
            return binary[op](args[0], args[1])
        if op == "Div" and len(args) == 2:
            if np.issubdtype(args[0].dtype, np.integer):
                return np.floor_divide(args[0], args[1]) if np.all(args[1] != 0) else None
            return np.divide(args[0], args[1])
        if op == "Neg":
            return -args[0]
        if op == "ConstantOfShape":
            shape = [int(x) for x in args[0]]
            if math.prod(shape) > MAX_VALUE_ELEMENTS:
                return None
            fill = ref.attr("value")
            fv = tensor_value(fill) if fill is not None else np.zeros(1, np.float32)
            if fv is None:
                return None
            return np.full(shape, fv.reshape(-1)[0], dtype=fv.dtype)
        return None


def constant_view(views: dict[int, ConstantView], graph: Graph) -> ConstantView:
    """The ConstantView of `graph` in `views` (a model's views, keyed by graph), built on first use."""
    view = views.get(id(graph))
    if view is None:
        view = views[id(graph)] = ConstantView(graph, views)
    return view
