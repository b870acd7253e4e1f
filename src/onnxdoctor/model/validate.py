"""Load-time validation: every tensor's size and external-data reference, text that is not UTF-8,
and each graph's structure (defined inputs, no cycles). Every problem is a ModelLoadError."""

from __future__ import annotations

import math

from .. import external
from .._onnx import TensorProto
from ..errors import ModelLoadError
from .core import MAX_SUBGRAPH_DEPTH, Model, _opsets, _TooDeep
from .graph import ExternalRef, Graph, LazyBytes

# Initializers claiming more elements than this are not real weights.
MAX_ELEMENTS = 2**40


def _validate_tensors(model: Model) -> None:
    """Every tensor of the model, wherever it hides (external.tensors): sane sizes, and each
    external-data reference validated before anything reads it."""
    lazy = model.lazy_raw
    views = model.__dict__.get("graphs")  # built already (loading._prepare): their op types serve
    main_nodes = _may_hold_tensors_of(views[0]) if views else None
    try:
        for where, t, depth in external.tensors(model.proto, MAX_SUBGRAPH_DEPTH, main_nodes):
            _check_tensor(model, t, where, lazy.get(t.name) if lazy and depth == 0 else None)
    except RecursionError:
        raise ModelLoadError(model.path, f"subgraphs are nested more than {MAX_SUBGRAPH_DEPTH} levels deep") from None


# Kept for tests and plugins that imported them from here.
_may_hold_tensors = external.may_hold_tensors


def _may_hold_tensors_of(g: Graph) -> tuple[list, list[int]]:
    """(g's nodes, indices in order of those that may hold tensors or graphs), from the op types the
    view read once: a node walk reading every node's op type and domain again costs ~0.01 s per
    20,000 nodes."""
    may = external.may_hold_tensors
    indices = [i for op, idxs in g.op_positions.items() if may(op, "") for i in idxs]
    if not g.all_standard:
        indices.extend(i for i, std in enumerate(g.standard) if not std)
    indices.sort()
    return g.nodes, indices


def _validate(model: Model) -> None:
    shown = model.path
    try:
        graphs = model.graphs
    except _TooDeep:
        raise ModelLoadError(shown, f"subgraphs are nested more than {MAX_SUBGRAPH_DEPTH} levels deep") from None
    if _undecodable_text(model, graphs):
        model.text_repairs = repair_text(model.proto)
        model.__dict__.pop("graphs", None)
        model.constant_views.clear()
        model.opsets = _opsets(model.proto)
        graphs = model.graphs
    for g in graphs:
        where = _where(g)
        # A negative dim_value on graph I/O is how some exporters (Paddle) write "dynamic"; ONNX Runtime,
        # the TensorRT parser and onnxdoctor's type table all read it so.
        _check_structure(model, g, where)


def _undecodable_text(model: Model, graphs: list[Graph]) -> bool:
    """Whether a name the analysis keys on is not valid UTF-8 (Python's protobuf then returns the
    field's bytes, not text). Cheap: it looks at what the views collected anyway. Node names, dim
    params and doc strings are decoded where they are read (external.text)."""
    for g in graphs:
        for names in (g.producers, g.consumers, g.initializers, g.inputs, g.outputs, g.op_types):
            if bytes in set(map(type, names)):
                return True
        for i, std in enumerate(g.standard):
            if not std and type(g.nodes[i].domain) is bytes:
                return True
    p = model.proto
    if any(type(k) is bytes for k in model.opsets):
        return True
    return any(type(v) is bytes for e in p.metadata_props for v in (e.key, e.value)) or \
        any(type(v) is bytes for f in p.functions for v in (f.name, f.domain))


def repair_text(message) -> list[str]:
    """Replace, in place, every string field of `message` (recursively) that is not valid UTF-8 by its
    lenient decoding (invalid bytes as \\xNN escapes: distinct names stay distinct). Returns the
    repaired values, decoded."""
    repaired: list[str] = []
    stack = [message]
    while stack:
        msg = stack.pop()
        for fd, value in msg.ListFields():
            if fd.type == fd.TYPE_STRING:
                if fd.is_repeated:
                    for i, v in enumerate(value):
                        if type(v) is bytes:
                            value[i] = v.decode("utf-8", "backslashreplace")
                            repaired.append(value[i])
                elif type(value) is bytes:
                    fixed = value.decode("utf-8", "backslashreplace")
                    setattr(msg, fd.name, fixed)
                    repaired.append(fixed)
            elif fd.type == fd.TYPE_MESSAGE:
                if fd.is_repeated:
                    if fd.message_type.GetOptions().map_entry:
                        continue  # no map fields in onnx.proto
                    stack.extend(value)
                else:
                    stack.append(value)
    return repaired


def _where(g: Graph) -> str:
    if not g.path:
        return "the main graph"
    if len(g.path) > 3:
        return f"subgraph .../{'/'.join(g.path[-2:])} (nested {len(g.path)} deep)"
    return f"subgraph {'/'.join(g.path)}"


def _check_tensor(model: Model, t: TensorProto, where: str, lazy: LazyBytes | None = None) -> None:
    dims = t.dims[:]
    n = math.prod(dims)
    if n > MAX_ELEMENTS or (dims and min(dims) < 0):
        shown = model.path
        name = external.text(t.name)
        if min(dims) < 0:
            raise ModelLoadError(shown, f"initializer {name!r} in {where} has a negative dimension {list(dims)}")
        raise ModelLoadError(shown, f"initializer {name!r} in {where} claims {n:.3g} elements (dims {list(t.dims)}): absurd size")
    size = _FIXED_SIZES.get(t.data_type)
    # the bytes its dims need (None: a type without a fixed size), as external.expected_bytes(t)
    expected = None if size is None else math.ceil(n * size)
    if t.data_location == _EXTERNAL:
        try:
            ref = external.parse_ref(t)
        except external.RefError as e:
            raise ModelLoadError(model.path, str(e)) from None
        _check_external(model, ref, expected)
        return
    if expected is not None and (lazy is not None or t.HasField("raw_data")):
        held = lazy.length if lazy is not None else len(t.raw_data)
        if held != expected:
            raise ModelLoadError(
                model.path, f"initializer {external.text(t.name)!r} in {where} holds {held} bytes but dims {list(t.dims)} need {expected}"
            )


_EXTERNAL = TensorProto.EXTERNAL
_FIXED_SIZES = external.FIXED_SIZES


def _check_external(model: Model, ref: ExternalRef, expected: int | None) -> None:
    """Resolve the reference's file inside the model's folder (refused: ModelLoadError) and record
    whether it can hold the tensor's `expected` bytes (a missing or short file is a finding, MOD502)."""
    model.external.append(ref)
    # Thousands of tensors usually share one data file: resolve and stat each location once.
    hit = model.external_files.get(ref.location)
    if hit is None:
        base = model.base_dir
        if base is None:
            return
        try:
            hit = model.external_files[ref.location] = external.resolve(str(base), ref)
        except external.RefError as e:
            raise ModelLoadError(model.path, str(e)) from None
    if hit.size is None:
        model.external_problems.append((ref.tensor, f"external data file {ref.location!r} not found"))
        return
    problem = external.range_problem(ref, hit.size, expected)
    if problem is not None:
        model.external_problems.append((ref.tensor, problem))


def _check_structure(model: Model, g: Graph, where: str) -> None:
    """Every node input must be defined somewhere in scope; the graph must be acyclic."""
    shown = model.path
    known = set(g.inputs) | set(g.initializers)
    outer_names: set[str] = set()
    o = g.outer
    while o is not None:
        outer_names |= set(o.inputs) | set(o.initializers) | set(o.producers)
        o = o.outer
    # subgraph-implicit inputs: a body may reference anything in an enclosing scope
    producers = g.producers
    # One pass: every input must be defined somewhere (in this graph or an enclosing one), and most
    # graphs are already topologically sorted, which the same pass proves. onnx-tensorrt sorts nodes
    # itself, so only a cycle is fatal: Kahn's algorithm runs only for unsorted graphs.
    seen = set(known) | outer_names
    in_order = True
    for i, (ins, outs) in enumerate(zip(g.node_inputs, g.node_outputs)):
        for inp in ins:
            if inp and inp not in seen:
                if inp not in producers:
                    node = g.nodes[i]
                    label = node.name or f"{node.op_type}#{i}"
                    raise ModelLoadError(shown, f"node {label!r} ({node.op_type}) in {where} reads {inp!r}, which no node, input or initializer defines")
                in_order = False
        seen.update(outs)
    for out in g.outputs:
        if out and out not in seen:
            raise ModelLoadError(shown, f"graph output {out!r} of {where} is not produced by any node, input or initializer")
    if in_order:
        g.topo_sorted = True
        return
    order = g.topo_order
    if len(order) != len(g.nodes):
        placed = set(order)
        stuck = next(i for i in range(len(g.nodes)) if i not in placed)
        node = g.nodes[stuck]
        label = node.name or f"{node.op_type}#{stuck}"
        raise ModelLoadError(shown, f"{where} has a cycle through node {label!r} ({node.op_type})")
