"""Running a model with every intermediate tensor observed, at a cost linear in the graph.

Marking every tensor as an output of the whole model and running it chunk by chunk builds one ONNX
Runtime session over the whole graph per chunk: quadratic (a 100,000-node chain ran for many
minutes). Here the main graph, in topological order, is cut into segments; each segment is a small
model of its own (its nodes, the initializers they read, and as inputs the values earlier segments
computed), run once. Each node is thus built and run once, and memory holds one segment's outputs
plus the values later segments still read.

Cuts never split a value that is not a tensor (a sequence, an optional) from its readers, and the
values of Constant nodes cross cuts as initializers (some kernels want constant inputs). Segments
grow and shrink with the bytes their outputs take.

`Budget` (budget.py) bounds the run: the command's deadline, checked between segments, activation
bytes held at once, nodes per segment. Over budget is `BudgetExceeded`: one line naming the model and the limit.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

import numpy as np
import onnx

from ._proto import bodies, has_body, outer_reads
from .budget import DEFAULT_ACTIVATION_MB, DEFAULT_SECONDS, MAX_SEGMENT_NODES, Budget, BudgetExceeded  # noqa: F401

# ----------------------------------------------------------------------------------------------
# Graph helpers
# ----------------------------------------------------------------------------------------------
def subgraph_reads(node: onnx.NodeProto) -> set[str]:
    """Names a node's subgraphs (If/Loop/Scan bodies, at any depth) read from enclosing scopes."""
    return {name for body in bodies(node) for name in outer_reads(body)}


def node_reads(node: onnx.NodeProto) -> list[str]:
    """The values a node reads: its inputs, and what its subgraphs read from outside them."""
    reads = [i for i in node.input if i]
    if has_body(node):
        reads.extend(sorted(subgraph_reads(node) - set(reads)))
    return reads


def toposort(model: onnx.ModelProto, priority: dict[str, int] | None = None,
             reads: list[list[str]] | None = None) -> list[int]:
    """Indices of the main graph's nodes in a topological order (Kahn's algorithm, linear). With
    `priority` (tensor name -> rank), ready nodes go in the order of their outputs' ranks: a
    candidate model then runs in an order close to its reference's. Nodes on a cycle (refused at
    load, but a hand-made proto) go last, in file order."""
    nodes = model.graph.node
    producer: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for o in n.output:
            if o:
                producer.setdefault(o, i)
    if reads is None:
        reads = [node_reads(n) for n in nodes]
    indeg = [0] * len(nodes)
    users: list[list[int]] = [[] for _ in nodes]
    for i, names in enumerate(reads):
        deps = {producer[t] for t in names if t in producer and producer[t] != i}
        indeg[i] = len(deps)
        for d in deps:
            users[d].append(i)
    big = 1 << 62

    def key(i: int) -> tuple[int, int]:
        if priority is None:
            return (i, i)
        return (min((priority.get(o, big) for o in nodes[i].output if o), default=big), i)

    ready = [key(i) for i in range(len(nodes)) if indeg[i] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(ready, key(u))
    if len(order) != len(nodes):
        seen = set(order)
        order.extend(i for i in range(len(nodes)) if i not in seen)
    return order


def value_kinds(model: onnx.ModelProto) -> dict[str, str]:
    """tensor name -> 'tensor_type', 'sequence_type', ... from ONNX shape inference of a copy without
    the big weights (empty when inference fails: every value is then taken for a tensor)."""
    from .weights import weightless

    try:
        inferred = onnx.shape_inference.infer_shapes(weightless(model))
    except Exception:  # noqa: BLE001 - no types: every value is a tensor
        return {}
    g = inferred.graph
    return {vi.name: vi.type.WhichOneof("value") or "" for vi in (*g.value_info, *g.output, *g.input)}


# ----------------------------------------------------------------------------------------------
# The segmented run
# ----------------------------------------------------------------------------------------------
class Plan:
    """What a segmented run of `model` needs, computed once: order, readers, kinds."""

    def __init__(self, model: onnx.ModelProto, priority: dict[str, int] | None = None) -> None:
        self.model = model
        g = model.graph
        self.nodes = list(g.node)
        self.reads = [node_reads(n) for n in self.nodes]
        self.order = toposort(model, priority, self.reads)
        self.kinds = value_kinds(model)
        self.inits = {t.name: t for t in g.initializer}
        self.sparse = {st.values.name: st for st in g.sparse_initializer}
        self.inputs = {vi.name: vi for vi in g.input}
        self.constant = {n.output[0] for n in self.nodes if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and n.output}
        # position in `order` of each tensor's last reader (graph outputs: read "after the end")
        last: dict[str, int] = {}
        for pos, i in enumerate(self.order):
            for t in self.reads[i]:
                last[t] = pos
        self.last_read = last
        # positions after which a cut is allowed: no non-tensor value produced before it is read after it
        self.cut_ok = self._cuts()

    def is_tensor(self, name: str) -> bool:
        return self.kinds.get(name, "tensor_type") in ("tensor_type", "")

    def _cuts(self) -> list[bool]:
        """ok[p]: a cut before position p is allowed. A non-tensor value forbids the cuts between its
        producer and its last reader (counted with a difference array: linear)."""
        n = len(self.order)
        depth = [0] * (n + 2)
        for pos, i in enumerate(self.order):
            for o in self.nodes[i].output:
                if o and not self.is_tensor(o):
                    end = self.last_read.get(o, pos)
                    if end > pos:
                        depth[pos + 1] += 1
                        depth[end + 1] -= 1
        ok, running = [], 0
        for p in range(n + 1):
            running += depth[p]
            ok.append(running == 0)
        return ok

    def not_a_tensor(self, name: str) -> None:
        """ONNX Runtime returned something else than a tensor for `name`: never cut across it."""
        self.kinds[name] = "sequence_type"
        self.cut_ok = self._cuts()

    @property
    def size(self) -> int:
        return len(self.order)


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], *, wanted: set[str] | None = None,
        budget: Budget | None = None, plan: Plan | None = None, what: str = "the layerwise run",
        progress=None, segments: list | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Run `model` on `feeds` segment by segment and yield, per segment, {tensor: value} of the
    tensors its nodes produce (only those in `wanted`, when given; else all but Constant outputs). `segments`, when given, receives
    the (start, end) positions in topological order of each segment run. Raises BudgetExceeded, or
    ONNX Runtime's error when a segment does not run."""
    from . import prove as proving

    budget = budget or Budget()
    plan = plan or Plan(model)
    live: dict[str, np.ndarray] = {}  # values of earlier segments that later ones read
    total = plan.size
    start = 0
    size = min(64, budget.max_segment_nodes)
    while start < total:
        end = min(total, start + size)
        while end < total and not plan.cut_ok[end]:
            end += 1
        sub, outputs, input_names = _segment(plan, start, end, live, feeds, wanted)
        if outputs:
            sess = proving.session(sub)
            values = sess.run(outputs, {n: live[n] if n in live else feeds[n] for n in input_names})
        else:
            values = []
        got = dict(zip(outputs, values))
        odd = [n for n, v in got.items() if not isinstance(v, np.ndarray)]
        if odd:  # values the type inference did not know were not tensors: do not fetch them, nor cut there
            for name in odd:
                plan.not_a_tensor(name)
            continue
        if segments is not None:
            segments.append((start, end))
        for name, value in got.items():
            if plan.last_read.get(name, -1) >= end:
                live[name] = value
        for name in [n for n in live if plan.last_read.get(n, -1) < end]:
            del live[name]
        held = sum(v.nbytes for v in got.values() if isinstance(v, np.ndarray)) + sum(v.nbytes for v in live.values())
        budget.check_memory(what, held, end, total)
        out = {k: v for k, v in got.items() if _yielded(plan, k, wanted)}
        del got, values
        yield out
        del out
        # segments follow the bytes their outputs take: a quarter of the budget per segment at most
        seg_bytes = held
        if seg_bytes > budget.activation_bytes // 4 and size > 1:
            size = max(1, size // 2)
        elif seg_bytes < budget.activation_bytes // 16:
            size = min(budget.max_segment_nodes, size * 2)
        if progress:
            progress(end, total)
        start = end
        if start < total:
            budget.check_time(what, start, total)


def _segment(plan: Plan, start: int, end: int, live: dict[str, np.ndarray], feeds: dict[str, np.ndarray],
             wanted: set[str] | None):
    """The model of segment [start, end) of plan.order, the outputs to fetch, the input names to feed."""
    model = plan.model
    nodes = [plan.nodes[plan.order[p]] for p in range(start, end)]
    produced: set[str] = set()
    needed: list[str] = []
    seen: set[str] = set()
    for p in range(start, end):
        i = plan.order[p]
        for t in plan.reads[i]:
            if t not in produced and t not in seen:
                seen.add(t)
                needed.append(t)
        produced.update(o for o in plan.nodes[i].output if o)
    sub = onnx.ModelProto()
    sub.ir_version = model.ir_version
    sub.opset_import.extend(model.opset_import)
    sub.functions.extend(model.functions)
    g = sub.graph
    g.name = f"{model.graph.name or 'graph'}_segment_{start}"
    g.node.extend(nodes)
    input_names = []
    for t in needed:
        if t in live:
            value = live[t]
            if t in plan.constant:  # a Constant's value stays constant for the kernels that want one
                g.initializer.append(onnx.numpy_helper.from_array(value, t))
            else:
                g.input.append(onnx.helper.make_tensor_value_info(t, _elem_type(value), list(value.shape)))
                input_names.append(t)
        elif t in feeds:
            g.input.append(plan.inputs[t] if t in plan.inputs else
                           onnx.helper.make_tensor_value_info(t, _elem_type(feeds[t]), list(feeds[t].shape)))
            input_names.append(t)
        elif t in plan.inits:
            g.initializer.append(plan.inits[t])
        elif t in plan.sparse:
            g.sparse_initializer.append(plan.sparse[t])
        elif t in plan.inputs:  # a graph input with no value (optional): left for ORT to complain about
            g.input.append(plan.inputs[t])
    outputs = [o for p in range(start, end) for o in plan.nodes[plan.order[p]].output
               if o and plan.is_tensor(o) and (_yielded(plan, o, wanted) or plan.last_read.get(o, -1) >= end)]
    outputs = list(dict.fromkeys(outputs))
    g.output.extend(onnx.ValueInfoProto(name=o) for o in outputs)
    return sub, outputs, input_names


def _yielded(plan: Plan, name: str, wanted: set[str] | None) -> bool:
    """Whether run() yields `name`: the wanted tensors, or by default every node output but the
    Constant nodes' (weights, not layers)."""
    return name in wanted if wanted is not None else name not in plan.constant


def _elem_type(value: np.ndarray) -> int:
    if value.dtype.kind in "OUS":
        return onnx.TensorProto.STRING
    return onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
