"""The machinery the op substitutions share: a node-by-node replacement loop and a builder that
emits opset-correct nodes (Reduce/Squeeze axes as attribute or input) with unique names."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..._proto import bodies, default_opset, graphs, unique_name
from ...findings import Applicability
from ..base import Outcome, Rewrite, RewriteContext


class Skip(Exception):
    """Raised by `Substitution.replace` when a node cannot be replaced exactly; the message says why."""


class ModelInfo:
    """What the substitutions need to know about a model: opset, types and shapes (from ONNX shape
    inference, which skips contrib ops), which tensors are read, and every name already taken."""

    def __init__(self, model: onnx.ModelProto):
        self.opset = default_opset(model)
        self.types: dict[str, int] = {}
        self.shapes: dict[str, list[int | None]] = {}
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        except Exception:  # noqa: BLE001 - inference is best effort; unknown types fall back below
            inferred = model
        for g in graphs(inferred.graph):
            for vi in (*g.input, *g.output, *g.value_info):
                tt = vi.type.tensor_type
                if not vi.type.HasField("tensor_type"):
                    continue
                if tt.elem_type:
                    self.types[vi.name] = tt.elem_type
                if tt.HasField("shape"):
                    self.shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            for t in g.initializer:
                self.types[t.name] = t.data_type
                self.shapes[t.name] = list(t.dims)
        self.taken: set[str] = set()
        self.read: set[str] = set()
        for g in graphs(model.graph):
            self.taken.update(t.name for t in g.initializer)
            self.taken.update(vi.name for vi in (*g.input, *g.output, *g.value_info))
            self.read.update(vi.name for vi in g.output)
            for n in g.node:
                self.taken.add(n.name)
                self.taken.update(n.output)
                self.read.update(n.input)
        self.functions = {(f.domain, f.name) for f in model.functions}
        self._graph_list = list(graphs(model.graph))
        self._values: dict[int, dict[str, onnx.TensorProto | None]] = {}
        self._producers: dict[int, dict[str, onnx.NodeProto]] = {}
        # Enclosing graph of each subgraph (by `graphs` index), for outer-scope constants.
        index = {id(g): i for i, g in enumerate(self._graph_list)}
        self._parent: dict[int, int] = {}
        for i, g in enumerate(self._graph_list):
            for n in g.node:
                for sub in bodies(n):
                    if id(sub) in index:
                        self._parent[index[id(sub)]] = i
        # Small constants already in each graph, by value: new scalars reuse them instead of adding
        # duplicate initializers (which GRF404 would report).
        self.constants: dict[tuple, str] = {}
        for gi, g in enumerate(graphs(model.graph)):
            for t in g.initializer:
                if len(t.dims) <= 1 and sum(t.dims) <= 16 and not t.external_data:
                    self.constants.setdefault(_const_key(gi, numpy_helper.to_array(t), t.data_type), t.name)

    def unique(self, base: str) -> str:
        return unique_name(self.taken, base)

    def used(self, name: str) -> bool:
        return bool(name) and name in self.read

    def producer(self, graph_index: int, name: str) -> onnx.NodeProto | None:
        """The node of that graph that outputs `name`, if any."""
        table = self._producers.get(graph_index)
        if table is None:
            table = self._producers[graph_index] = {o: n for n in self._graph_list[graph_index].node for o in n.output if o}
        return table.get(name)

    def outer_producer(self, graph_index: int, name: str) -> onnx.NodeProto | None:
        """The node of the nearest enclosing graph that outputs `name` (an outer-scope reference of
        that control-flow body), if any."""
        while graph_index in self._parent:
            graph_index = self._parent[graph_index]
            node = self.producer(graph_index, name)
            if node is not None:
                return node
        return None

    def value(self, graph_index: int, name: str) -> np.ndarray | None:
        """The value of `name` when it is an initializer or a `Constant` node output of that graph
        (inline data only), else None."""
        if not name:
            return None
        while True:
            table = self._values.get(graph_index)
            if table is None:
                # Every name the graph defines: its constants with their tensor, the rest with None.
                g = self._graph_list[graph_index]
                table = dict.fromkeys((vi.name for vi in g.input), None)
                table.update((t.name, t) for t in g.initializer)
                for n in g.node:
                    constant = n.op_type == "Constant" and n.domain in ("", "ai.onnx") and len(n.attribute) == 1 \
                        and n.attribute[0].name == "value"
                    table.update((o, n.attribute[0].t if constant else None) for o in n.output)
                self._values[graph_index] = table
            if name in table:
                t = table[name]
                if t is None or t.data_location == TensorProto.EXTERNAL:
                    return None
                return numpy_helper.to_array(t)
            if graph_index not in self._parent:
                return None
            graph_index = self._parent[graph_index]


def _const_key(graph_index: int, arr: np.ndarray, dtype: int) -> tuple:
    # Graphs are numbered in `graphs` order, which the substitutions never change.
    return (graph_index, dtype, arr.shape, arr.tobytes())


class Builder:
    """Collects the nodes and initializers that replace one node."""

    def __init__(self, info: ModelInfo, graph_index: int, node: onnx.NodeProto, ctx: RewriteContext):
        self.info = info
        self.graph_index = graph_index
        self.ctx = ctx
        self.new_constants: dict[tuple, str] = {}
        self.node = node
        self.base = node.name or f"{node.op_type}_{node.output[0] if node.output else ''}"
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []

    @property
    def opset(self) -> int:
        return self.info.opset

    # -- what is known about tensors ---------------------------------------------------------

    def dtype(self, *names: str) -> int | None:
        for n in names:
            if n and self.info.types.get(n):
                return self.info.types[n]
        return None

    def float_type(self, *names: str) -> int:
        """The element type of the first of `names` whose type is known (the op's inputs share it),
        FLOAT when none is (the proof in ONNX Runtime catches a wrong guess)."""
        t = self.dtype(*names)
        if t is None:
            return TensorProto.FLOAT
        if t not in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16):
            raise Skip(f"input type {TensorProto.DataType.Name(t)} is not a floating-point type")
        return t

    def shape(self, name: str) -> list[int | None] | None:
        return self.info.shapes.get(name)

    def rank(self, name: str) -> int | None:
        s = self.shape(name)
        return None if s is None else len(s)

    def input(self, i: int) -> str:
        """The node's i-th input, '' when absent."""
        return self.node.input[i] if i < len(self.node.input) else ""

    def attr(self, name: str, default=None):
        for a in self.node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def output_used(self, i: int) -> bool:
        return i < len(self.node.output) and self.info.used(self.node.output[i])

    # -- emitting ----------------------------------------------------------------------------

    def const(self, value, dtype: int, suffix: str = "const") -> str:
        arr = np.asarray(value, dtype=helper.tensor_dtype_to_np_dtype(dtype))
        key = _const_key(self.graph_index, arr, dtype)
        known = self.info.constants.get(key) or self.new_constants.get(key)
        if known:
            return known
        name = self.info.unique(f"{self.base}/{suffix}")
        self.new_constants[key] = name
        t = numpy_helper.from_array(arr, name)
        if dtype == TensorProto.BFLOAT16:
            t = helper.make_tensor(name, dtype, arr.shape, arr.astype(np.float32).ravel().tolist())
        self.inits.append(t)
        self.info.types[name] = dtype
        self.info.shapes[name] = list(arr.shape)
        return name

    def value(self, name: str) -> np.ndarray | None:
        """The constant value of `name` in this node's graph (initializer or Constant), if it is one."""
        return self.info.value(self.graph_index, name)

    def tensor(self, value: np.ndarray, base: str) -> str:
        """A new initializer holding `value` (a weight: never shared with other constants)."""
        name = self.info.unique(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        dtype = helper.np_dtype_to_tensor_dtype(value.dtype)
        self.info.types[name] = dtype
        self.info.shapes[name] = list(value.shape)
        return name

    def ints(self, values, suffix: str = "axes") -> str:
        return self.const(np.asarray(values, dtype=np.int64), TensorProto.INT64, suffix)

    def op(self, op_type: str, inputs, out: str | None = None, *, outputs: int = 1, domain: str = "", **attrs) -> str:
        """Emit a node; returns its (first) output. `out` names the output (used for the node's
        original outputs, so consumers and graph outputs keep their names)."""
        name = self.info.unique(f"{self.base}/{op_type}")
        outs = [out or self.info.unique(f"{name}_output")]
        outs += [self.info.unique(f"{name}_output_{k}") for k in range(1, outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=name, domain=domain or None, **attrs))
        return outs[0]

    def reduce(self, op_type: str, x: str, axes, keepdims: int = 1, out: str | None = None) -> str:
        # ReduceSum takes axes as an input from opset 13, the other Reduce ops from opset 18.
        as_input = self.opset >= (13 if op_type == "ReduceSum" else 18)
        if as_input:
            return self.op(op_type, [x, self.ints(list(axes))], out, keepdims=keepdims)
        return self.op(op_type, [x], out, axes=list(axes), keepdims=keepdims)

    def unsqueeze(self, x: str, axes, out: str | None = None) -> str:
        if self.opset >= 13:
            return self.op("Unsqueeze", [x, self.ints(list(axes))], out)
        return self.op("Unsqueeze", [x], out, axes=list(axes))

    def squeeze(self, x: str, axes, out: str | None = None) -> str:
        if self.opset >= 13:
            return self.op("Squeeze", [x, self.ints(list(axes))], out)
        return self.op("Squeeze", [x], out, axes=list(axes))

    def slice(self, x: str, starts, ends, axes, out: str | None = None) -> str:
        if self.opset >= 10:
            return self.op("Slice", [x, self.ints(list(starts), "starts"), self.ints(list(ends), "ends"),
                                     self.ints(list(axes), "axes")], out)
        return self.op("Slice", [x], out, starts=list(starts), ends=list(ends), axes=list(axes))

    def cast(self, x: str, to: int, out: str | None = None, **attrs) -> str:
        return self.op("Cast", [x], out, to=to, **attrs)

    def mul(self, a: str, b: str, out: str | None = None) -> str:
        return self.op("Mul", [a, b], out)

    def add(self, a: str, b: str, out: str | None = None) -> str:
        return self.op("Add", [a, b], out)

    def identity_or(self, x: str, out: str | None) -> str:
        """Route `x` to `out` (an original output name) with an Identity, or return `x` unchanged."""
        return self.op("Identity", [x], out) if out else x

    # -- shared formulas ---------------------------------------------------------------------

    def gelu_erf(self, x: str, dtype: int, out: str | None) -> str:
        """0.5 * x * (1 + erf(x / sqrt(2)))"""
        scaled = self.mul(x, self.const(1 / np.sqrt(2.0), dtype, "inv_sqrt2"))
        e = self.op("Erf", [scaled])
        one_plus = self.add(e, self.const(1.0, dtype, "one"))
        half_x = self.mul(x, self.const(0.5, dtype, "half"))
        return self.mul(half_x, one_plus, out)

    def gelu_tanh(self, x: str, dtype: int, out: str | None) -> str:
        """0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))"""
        x3 = self.mul(self.mul(x, x), x)
        inner = self.add(x, self.mul(x3, self.const(0.044715, dtype, "gelu_c")))
        t = self.op("Tanh", [self.mul(inner, self.const(np.sqrt(2.0 / np.pi), dtype, "sqrt_2_over_pi"))])
        one_plus = self.add(t, self.const(1.0, dtype, "one"))
        half_x = self.mul(x, self.const(0.5, dtype, "half"))
        return self.mul(half_x, one_plus, out)

    def activation(self, kind: str, x: str, dtype: int, out: str | None, alpha=None, beta=None, gamma=None) -> str:
        """The ONNX op for an activation named the way ORT's fused kernels name it."""
        if kind in ("Relu", "Tanh", "Sigmoid", "Softplus", "Softsign"):
            return self.op(kind, [x], out)
        if kind in ("LeakyRelu", "Elu", "ThresholdedRelu"):
            default = {"LeakyRelu": 0.01, "Elu": 1.0, "ThresholdedRelu": 1.0}[kind]
            return self.op(kind, [x], out, alpha=float(default if alpha is None else alpha))
        if kind == "HardSigmoid":
            return self.op(kind, [x], out, alpha=float(0.2 if alpha is None else alpha), beta=float(0.5 if beta is None else beta))
        if kind == "Selu":
            return self.op(kind, [x], out, alpha=None if alpha is None else float(alpha), gamma=None if gamma is None else float(gamma))
        if kind == "Clip":
            if alpha is None or beta is None:
                raise Skip("Clip activation without both bounds")
            if self.opset >= 11:
                return self.op("Clip", [x, self.const(alpha, dtype, "min"), self.const(beta, dtype, "max")], out)
            return self.op("Clip", [x], out, min=float(alpha), max=float(beta))
        raise Skip(f"activation {kind!r} has no exact ONNX equivalent here")

    def layer_norm(self, x: str, gamma: str, beta: str, epsilon: float, dtype: int, out: str | None) -> str:
        """LayerNormalization over the last axis: the ONNX op from opset 17, reductions before."""
        if self.opset >= 17:
            return self.op("LayerNormalization", [x, gamma, beta] if beta else [x, gamma], out, axis=-1, epsilon=float(epsilon))
        mean = self.reduce("ReduceMean", x, [-1])
        d = self.op("Sub", [x, mean])
        var = self.reduce("ReduceMean", self.mul(d, d), [-1])
        std = self.op("Sqrt", [self.add(var, self.const(epsilon, dtype, "epsilon"))])
        y = self.op("Div", [d, std])
        if beta:
            return self.add(self.mul(y, gamma), beta, out)
        return self.mul(y, gamma, out)

    def rms_norm(self, x: str, scale: str, axes, epsilon: float, dtype: int, stash_float: bool, out: str | None) -> str:
        """x / sqrt(mean(x^2 over axes) + epsilon) * scale, in FLOAT when `stash_float` (as the ONNX
        function body of RMSNormalization and ORT's SimplifiedLayerNormalization compute it)."""
        compute = TensorProto.FLOAT if stash_float else dtype
        xu = self.cast(x, compute) if compute != dtype else x
        ms = self.reduce("ReduceMean", self.mul(xu, xu), axes)
        rms = self.op("Sqrt", [self.add(ms, self.const(epsilon, compute, "epsilon"))])
        y = self.op("Div", [xu, rms])
        if compute != dtype:
            y = self.cast(y, dtype)
        return self.mul(y, scale, out) if scale else self.identity_or(y, out)


class Substitution(Rewrite):
    """Base of the op substitutions: replaces every node of (`domain`, `op_type`) by the nodes
    `replace` emits, or records why it could not."""

    op_type: ClassVar[str]
    domain: ClassVar[str] = ""
    # What `matches` looks for, when narrower than every node of the op ("LpPool with p other than 1, 2").
    pattern: ClassVar[str | None] = None
    phase = 30
    applicability = Applicability.SAFE
    resolves = ("TRT101",)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "op_type" in cls.__dict__ and "ops" not in cls.__dict__ and {"TRT101", "TRT102"} & set(cls.resolves):
            cls.ops = ((cls.domain, cls.op_type),)

    def replace(self, b: Builder) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def matches(self, node: onnx.NodeProto) -> bool:
        dom = "" if node.domain == "ai.onnx" else node.domain
        return node.op_type == self.op_type and dom == self.domain

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        out = onnx.ModelProto()
        out.CopyFrom(model)
        info = ModelInfo(out)
        changes: list[str] = []
        skipped: list[str] = []
        label = f"{self.domain}::{self.op_type}" if self.domain else self.op_type
        if (self.domain, self.op_type) in info.functions:
            return Outcome(model, skipped=[f"{label} is a model-local function here, not the operator this rewrite replaces"])
        # Innermost graphs first: rebuilding a graph's node list copies its nodes, subgraphs included.
        for gi, g in reversed(list(enumerate(graphs(out.graph)))):
            new_nodes: list[onnx.NodeProto] = []
            for node in g.node:
                if not self.matches(node):
                    new_nodes.append(node)
                    continue
                b = Builder(info, gi, node, ctx)
                where = node.name or (node.output[0] if node.output else "?")
                try:
                    self.replace(b)
                except Skip as e:
                    skipped.append(f"{label} {where!r}: {e}")
                    new_nodes.append(node)
                    continue
                new_nodes.extend(b.nodes)
                g.initializer.extend(b.inits)
                info.constants.update(b.new_constants)
                ops = ", ".join(dict.fromkeys(n.op_type for n in b.nodes))
                changes.append(f"replaced {label} {where!r} by {len(b.nodes)} node(s) ({ops})")
            del g.node[:]
            g.node.extend(new_nodes)
        if not changes:
            return Outcome(model, skipped=skipped or [f"no {self.pattern or label} node"])
        return Outcome(out, changes, skipped)
