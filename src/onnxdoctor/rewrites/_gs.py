"""Bridge to onnx-graphsurgeon (imported lazily: only `fix` pays for it)."""

from __future__ import annotations

import onnx


def import_graph(model: onnx.ModelProto):
    import onnx_graphsurgeon as gs

    _quiet_onnxruntime()

    return gs.import_onnx(model)


def _quiet_onnxruntime() -> None:
    """graphsurgeon folds through ONNX Runtime, whose optimizer warnings would leak to the user."""
    try:
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)
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
    return out


def node_count(model: onnx.ModelProto) -> int:
    return len(model.graph.node)


def cleaned(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove dead nodes and unused initializers, sort topologically, and store the values of
    main-graph `Constant` nodes as initializers (the same tensors, one node fewer each)."""
    g = import_graph(model)
    g.cleanup(remove_unused_graph_inputs=False).toposort()
    out = export_model(g, model)
    _constants_to_initializers(out)
    return out


def _constants_to_initializers(model: onnx.ModelProto) -> None:
    g = model.graph
    outputs = {o.name for o in g.output}
    keep = []
    moved = False
    for n in g.node:
        attr = n.attribute[0] if n.op_type == "Constant" and len(n.attribute) == 1 else None
        if (attr is not None and attr.name == "value" and n.domain in ("", "ai.onnx") and len(n.output) == 1
                and n.output[0] not in outputs):
            t = onnx.TensorProto()
            t.CopyFrom(attr.t)
            t.name = n.output[0]
            g.initializer.append(t)
            moved = True
        else:
            keep.append(n)
    if moved:
        del g.node[:]
        g.node.extend(keep)


def unique_name(taken: set[str], base: str) -> str:
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name
