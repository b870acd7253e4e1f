"""Bridge to onnx-graphsurgeon (imported lazily: only `fix` pays for it)."""

from __future__ import annotations

import onnx


def import_graph(model: onnx.ModelProto):
    import onnx_graphsurgeon as gs

    return gs.import_onnx(model)


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
    """Remove dead nodes and unused initializers, sort topologically."""
    g = import_graph(model)
    g.cleanup(remove_unused_graph_inputs=False).toposort()
    return export_model(g, model)


def unique_name(taken: set[str], base: str) -> str:
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name
