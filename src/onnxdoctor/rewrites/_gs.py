"""What the rewrites do through onnx-graphsurgeon — import and export (keeping opsets, metadata and
functions), constant folding, cleanup with a topological sort; graphsurgeon is imported lazily, so
only `fix` pays for it — and the repairs after an export (shared constants hoisted out of
control-flow bodies, `Constant` values stored as initializers)."""

from __future__ import annotations

import onnx

from .._proto import bodies, body_reads, graphs


def import_graph(model: onnx.ModelProto):
    import onnx_graphsurgeon as gs

    _quiet_onnxruntime()

    return gs.import_onnx(_without_io_value_info(model))


def _without_io_value_info(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model`, or a copy without the `value_info` entries that repeat a graph input or output.

    graphsurgeon takes a tensor's type from `value_info` over the graph output's: an entry without a
    shape (old ONNX Runtime exports carry them) would drop the output's shape, and onnx.checker then
    rejects the result ("Field 'shape' of 'type' is required but missing")."""

    def duplicates(g: onnx.GraphProto) -> bool:
        io = {v.name for v in g.input} | {v.name for v in g.output}
        return any(vi.name in io for vi in g.value_info)

    if not any(duplicates(g) for g in graphs(model.graph)):
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for g in graphs(out.graph):
        io = {v.name for v in g.input} | {v.name for v in g.output}
        keep = [vi for vi in g.value_info if vi.name not in io]
        del g.value_info[:]
        g.value_info.extend(keep)
    return out


def _quiet_onnxruntime() -> None:
    """graphsurgeon folds through ONNX Runtime, whose optimizer warnings would leak to the user; its
    own logger ("[W] Inference failed ...", colour codes when `colored` is installed) stays quiet too."""
    try:
        from onnx_graphsurgeon.logger import G_LOGGER

        G_LOGGER.severity = G_LOGGER.CRITICAL
        G_LOGGER.colors = False
    except Exception:  # noqa: BLE001 - logging setup is best effort
        pass
    try:
        from ..prove import onnxruntime

        onnxruntime()
    except Exception:  # noqa: BLE001 - logging setup is best effort
        pass


def export_model(graph, like: onnx.ModelProto) -> onnx.ModelProto:
    """Export a graphsurgeon graph, keeping the original model's opsets, IR version, metadata and functions."""
    import onnx_graphsurgeon as gs

    out = gs.export_onnx(graph, do_type_check=False)
    del out.opset_import[:]
    out.opset_import.extend(like.opset_import)
    out.ir_version = like.ir_version
    out.producer_name = like.producer_name
    out.producer_version = like.producer_version
    out.domain = like.domain
    out.model_version = like.model_version
    out.doc_string = like.doc_string
    del out.metadata_props[:]
    out.metadata_props.extend(like.metadata_props)
    del out.functions[:]
    out.functions.extend(like.functions)
    _hoist_shared_constants(out)
    _drop_shapeless_value_info(out)
    _keep_interface_types(out, like)
    return out


def _keep_interface_types(model: onnx.ModelProto, like: onnx.ModelProto) -> None:
    """The main graph's inputs and outputs keep the types the model declared: graphsurgeon writes
    what it knows of a tensor, which may be less (an output's shape dropped)."""
    declared = {vi.name: vi for vi in (*like.graph.input, *like.graph.output)}
    for vi in (*model.graph.input, *model.graph.output):
        orig = declared.get(vi.name)
        if orig is not None and orig.type != vi.type:
            vi.type.CopyFrom(orig.type)


def _drop_shapeless_value_info(model: onnx.ModelProto) -> None:
    """graphsurgeon writes a value_info for every tensor whose type it knows, also without a shape;
    onnx.checker refuses such an entry in models of IR version 3-6 ("Field 'shape' of 'type' is
    required"), and shape inference recomputes what it says."""
    from .._proto import graphs

    for g in graphs(model.graph):
        keep = [vi for vi in g.value_info if not (vi.type.HasField("tensor_type") and not vi.type.tensor_type.HasField("shape"))]
        if len(keep) != len(g.value_info):
            del g.value_info[:]
            g.value_info.extend(keep)


def _hoist_shared_constants(model: onnx.ModelProto) -> None:
    """graphsurgeon exports a constant that control-flow bodies read from an enclosing graph as an
    initializer of every body that reads it (nested bodies included): one copy per body. Keep one copy,
    in the main graph, when every definition of the name is such an identical copy."""
    defs: dict[str, list[tuple[onnx.GraphProto, onnx.TensorProto | None]]] = {}
    stack = [(model.graph, True)]
    while stack:
        g, main = stack.pop()
        for vi in g.input:
            defs.setdefault(vi.name, []).append((g, None))
        for t in g.initializer:
            defs.setdefault(t.name, []).append((g, None if main else t))
        for n in g.node:
            for o in n.output:
                defs.setdefault(o, []).append((g, None))
            stack.extend((sub, False) for sub in bodies(n))
    drop: dict[int, set[str]] = {}
    graphs: dict[int, onnx.GraphProto] = {}
    for name, where in defs.items():
        if len(where) < 2 or any(t is None for _, t in where):
            continue
        first = where[0][1]
        key = (first.data_type, tuple(first.dims), first.SerializeToString(deterministic=True))
        if any((t.data_type, tuple(t.dims), t.SerializeToString(deterministic=True)) != key for _, t in where[1:]):
            continue
        model.graph.initializer.append(first)  # appended copies the message
        for g, _ in where:
            drop.setdefault(id(g), set()).add(name)
            graphs[id(g)] = g
    for gid, names in drop.items():
        g = graphs[gid]
        keep = [t for t in g.initializer if t.name not in names]
        del g.initializer[:]
        g.initializer.extend(keep)


def fold(model: onnx.ModelProto, size_threshold: int) -> onnx.ModelProto:
    """graphsurgeon's constant folding (values computed by ONNX Runtime), in the main graph and in
    every control-flow body, then cleanup and a topological sort.

    graphsurgeon's own flattening of constant-condition `If` nodes is off: it leaves readers of a
    branch output inside the branch, and If outputs that the branch forwards from the outer scope,
    without a producer ("... is not output of any previous nodes"). `inline-constant-if` inlines
    those branches instead."""
    g = import_graph(model)
    if model.functions:
        g.fold_constants(size_threshold=size_threshold, error_ok=True, flatten_subgraphs=False)
    else:
        _fold_graphs(g, size_threshold)
    g.cleanup(remove_unused_graph_inputs=False).toposort()
    return export_model(g, model)


def _fold_graphs(graph, size_threshold: int) -> None:
    """graphsurgeon's fold_constants on `graph` and then on each of its bodies, as its own recursion
    does, but only on the graphs where it can fold something (_may_fold): its fold starts by copying
    the graph, every nested body included, so on a model of many bodies (silero-vad: 51 graphs, most
    of one or two nodes) the copies, not the folding, took most of the time."""
    if _may_fold(graph):
        graph.fold_constants(size_threshold=size_threshold, error_ok=True, flatten_subgraphs=False,
                             recurse_subgraphs=False, recurse_functions=False)
    for body in graph.subgraphs():
        _fold_graphs(body, size_threshold)


def _may_fold(graph) -> bool:
    """Whether graphsurgeon's fold_constants could change `graph` (its bodies aside): a node whose
    inputs, and the values its bodies read from outside, are all constants (a node without inputs
    too), from which its folding starts; a Shape (shape folding) or a Cast (its cast elision)."""
    from onnx_graphsurgeon import Constant

    for node in graph.nodes:
        if node.op in ("Shape", "Cast"):
            return True
        if all(isinstance(t, Constant) for t in node.inputs if not t.is_empty()) and all(
                isinstance(t, Constant) for body in node.subgraphs() for t in body._foreign_tensors().values()):
            return True
    return False


def cleaned(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove dead nodes and unused initializers, sort topologically, and store the values of
    `Constant` nodes as initializers in every graph (the same tensors, one node fewer each)."""
    g = import_graph(model)
    g.cleanup(remove_unused_graph_inputs=False).toposort()
    out = export_model(g, model)
    _constants_to_initializers(out)
    return out


def pruned(model: onnx.ModelProto) -> onnx.ModelProto:
    """What `cleaned` does, without graphsurgeon's import and export of the whole graph (which cost
    0.1-0.4 s per call on a transformer): dead nodes, unused initializers and value_info of removed
    values go, Constant nodes become initializers, in every graph. A graph that is not in
    topological order goes through `cleaned` (graphsurgeon sorts it)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if not _prune_graph(out.graph, outer=set()):
        return cleaned(model)
    _constants_to_initializers(out)
    return out


def _reads(node: onnx.NodeProto) -> set[str]:
    """Every name a node reads, its bodies' reads of enclosing values included (over-approximated)."""
    names = set(node.input) | body_reads(node)
    names.discard("")
    return names


def _prune_graph(g: onnx.GraphProto, outer: set[str]) -> bool:
    """Prune `g` in place (and its bodies); False when it is not topologically sorted."""
    needed = {o.name for o in g.output}
    keep: list[bool] = [False] * len(g.node)
    for i in range(len(g.node) - 1, -1, -1):
        n = g.node[i]
        if any(o in needed for o in n.output if o):
            keep[i] = True
            needed |= _reads(n)
    # sorted: every value a kept node reads is defined before it (or outside the graph)
    defined = set(outer) | {vi.name for vi in g.input} | {t.name for t in g.initializer}
    produced_later = {o for i, n in enumerate(g.node) if keep[i] for o in n.output}
    for i, n in enumerate(g.node):
        if not keep[i]:
            continue
        if any(x in produced_later and x not in defined for x in n.input if x):
            return False
        defined.update(o for o in n.output if o)
    nodes = [n for i, n in enumerate(g.node) if keep[i]]
    removed = {o for i, n in enumerate(g.node) if not keep[i] for o in n.output}
    if len(nodes) != len(g.node):
        del g.node[:]
        g.node.extend(nodes)
    inputs = {vi.name for vi in g.input}
    inits = [t for t in g.initializer if t.name in needed or t.name in inputs]
    if len(inits) != len(g.initializer):
        removed |= {t.name for t in g.initializer} - {t.name for t in inits}
        del g.initializer[:]
        g.initializer.extend(inits)
    if removed:
        vis = [vi for vi in g.value_info if vi.name not in removed]
        if len(vis) != len(g.value_info):
            del g.value_info[:]
            g.value_info.extend(vis)
    visible = defined
    for n in g.node:
        for body in bodies(n):
            if not _prune_graph(body, visible):
                return False
    return True


def big_constants_to_initializers(model: onnx.ModelProto, is_big) -> onnx.ModelProto:
    """A copy of `model` whose main-graph `Constant` nodes holding a tensor `is_big` accepts are
    initializers, named and appended as `pruned` stores them; `model` itself when there is none. The
    fix pipeline does this ahead of its first rewrite, so that its weight store holds those weights
    (exporters such as paddle2onnx put every weight in a Constant node) instead of every rewrite and
    check copying them until the first `pruned`."""
    if model.ir_version < 4:
        return model
    outputs = {o.name for o in model.graph.output}
    big = {i for i, n in enumerate(model.graph.node)
           if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value"
           and n.attribute[0].type == onnx.AttributeProto.TENSOR and is_big(n.attribute[0].t)
           and _constant_tensor(n, outputs) is not None}
    if not big:
        return model
    from .._proto import copy_fields

    out = onnx.ModelProto()  # field by field: the big Constants' tensors are copied once, into initializers
    copy_fields(model, out, skip="graph")
    copy_fields(model.graph, out.graph, skip="node")
    for i, n in enumerate(model.graph.node):
        if i in big:
            out.graph.initializer.append(_constant_tensor(n, outputs))
        else:
            out.graph.node.add().CopyFrom(n)
    return out


def _constants_to_initializers(model: onnx.ModelProto) -> None:
    """Store the values of `Constant` nodes (what GRF410 reports) as initializers of their graph, in
    every graph: the main graph and control-flow bodies. IR version 3 needs initializers to be graph
    inputs too: left alone."""
    if model.ir_version < 4:
        return
    stack = [model.graph]
    while stack:
        g = stack.pop()
        outputs = {o.name for o in g.output}
        keep = []
        moved = False
        for n in g.node:
            t = _constant_tensor(n, outputs)
            if t is not None:
                g.initializer.append(t)
                moved = True
            else:
                keep.append(n)
                stack.extend(bodies(n))
        if moved:
            del g.node[:]
            g.node.extend(keep)


def _constant_tensor(n: onnx.NodeProto, outputs: set[str]) -> onnx.TensorProto | None:
    """The initializer a Constant node's value becomes (named as its output), or None."""
    if n.op_type != "Constant" or n.domain not in ("", "ai.onnx") or len(n.attribute) != 1 or len(n.output) != 1 \
            or not n.output[0] or n.output[0] in outputs:
        return None
    a = n.attribute[0]
    name = n.output[0]
    if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
        t = onnx.TensorProto()
        t.CopyFrom(a.t)
        t.name = name
        return t
    if a.name == "value_float" and a.type == onnx.AttributeProto.FLOAT:
        return onnx.helper.make_tensor(name, onnx.TensorProto.FLOAT, [], [a.f])
    if a.name == "value_int" and a.type == onnx.AttributeProto.INT:
        return onnx.helper.make_tensor(name, onnx.TensorProto.INT64, [], [a.i])
    if a.name == "value_floats" and a.type == onnx.AttributeProto.FLOATS:
        return onnx.helper.make_tensor(name, onnx.TensorProto.FLOAT, [len(a.floats)], list(a.floats))
    if a.name == "value_ints" and a.type == onnx.AttributeProto.INTS:
        return onnx.helper.make_tensor(name, onnx.TensorProto.INT64, [len(a.ints)], list(a.ints))
    return None
