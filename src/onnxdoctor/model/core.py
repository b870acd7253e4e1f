"""`Model`: a loaded ModelProto and the views built from it on first use (every graph, main graph
first, and per graph its ConstantView). Types come from the shape-inferred model (`attach_types`)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterator

from .. import external
from .._onnx import FunctionProto, GraphProto, ModelProto
from .._typeinfo import graph_order, subgraphs_of, value_types
from .constants import ConstantView, constant_view
from .graph import ExternalRef, Graph, LazyBytes, NodeRef, TypeTable

MAX_SUBGRAPH_DEPTH = 64


class Model:
    """A loaded model: the ModelProto plus lazily built views."""

    def __init__(self, proto: ModelProto, path: str | None = None, *, base_dir: Path | None = None) -> None:
        self.proto = proto
        self.path = path or "<memory>"
        self.base_dir = base_dir.resolve() if base_dir is not None else None
        self.external: list[ExternalRef] = []
        self.external_problems: list[tuple[str, str]] = []  # (tensor, problem) for missing/short data files
        self.external_files: dict[str, external.Resolved] = {}  # location -> its file and size, resolved once
        self.lazy_raw: dict[str, LazyBytes] = {}  # main-graph raw_data left in the file (load(lazy_weights=True))
        self.shape_inference_error: str | None = None
        self.frozen_inputs: tuple[str, ...] = ()  # graph inputs whose dims --shape fixed
        self.inferred: ModelProto = proto
        self.opsets: dict[str, int] = _opsets(proto)
        # Text fields that were not valid UTF-8, as repaired at load time (repair_text).
        self.text_repairs: list[str] = []
        # id(graph) -> its ConstantView (see `constants`); emptied when the graph views are rebuilt
        self.constant_views: dict[int, ConstantView] = {}

    @functools.cached_property
    def external_refs(self) -> dict[str, ExternalRef]:
        """tensor name -> its external-data reference, as validated at load time."""
        return {ref.tensor: ref for ref in self.external}

    @property
    def opset(self) -> int:
        return self.opsets.get("", 0)

    def op_version(self, ref: NodeRef) -> int:
        return self.opsets.get(ref.domain, 0)

    # -- graphs ---------------------------------------------------------------
    @functools.cached_property
    def graphs(self) -> list[Graph]:
        """Every graph: main graph first, then subgraphs depth-first, then local function bodies.
        Structure comes from `proto`; value types from `inferred` (see `attach_types`)."""
        out: list[Graph] = []
        main = _make_graph(self.proto.graph, (), None, 0)
        main.lazy_raw = self.lazy_raw
        stack = [main]
        while stack:
            g = stack.pop()
            out.append(g)
            children = [_make_graph(sub, g.path + (label,), g, g.depth + 1) for label, sub in subgraphs_of(g.nodes, g.op_types, g.standard)]
            stack.extend(reversed(children))
        out.extend(_make_function_graph(f) for f in self.proto.functions)
        # Before inference the views' own protos are the ones to type them from (the views were just
        # built from them, in graph_order's order): no second walk of every node to find them.
        protos = [g.function if g.function is not None else g.proto for g in out] \
            if self.inferred is self.proto else _graph_protos(self.inferred, out)
        _fill_types(out, protos)
        return out

    def attach_types(self, inferred: ModelProto) -> None:
        """Use the value types of `inferred` (the same model after shape inference), also when the
        graph views were built before inference finished."""
        self.inferred = inferred
        if "graphs" in self.__dict__:
            _fill_types(self.graphs, _graph_protos(inferred, self.graphs))

    @property
    def main(self) -> Graph:
        return self.graphs[0]

    def iter_nodes(self) -> Iterator[NodeRef]:
        for g in self.graphs:
            for i in range(len(g.nodes)):
                yield g.ref(i)

    @functools.cached_property
    def local_functions(self) -> dict[tuple[str, str], FunctionProto]:
        return {(f.domain, f.name): f for f in self.proto.functions}

    # -- constants --------------------------------------------------------------
    def constants(self, graph: Graph) -> ConstantView:
        view = self.constant_views.get(id(graph))
        return view if view is not None else constant_view(self.constant_views, graph)


def _graph_protos(proto: ModelProto, views: list[Graph]) -> list[GraphProto | FunctionProto]:
    """The graphs and functions of `proto` in the order of `views`, which were built from a model of
    the same structure (e.g. before shape inference)."""
    out = graph_order(proto)
    if len(out) != len(views):
        raise ValueError(f"the inferred model has {len(out)} graphs and functions, the model {len(views)}")
    return out


def _fill_types(views: list[Graph], protos: list) -> None:
    """(Re)build each view's TypeTable from the matching graph or function proto."""
    for g, gp in zip(views, protos):
        g.types.reset(raw=value_types(gp, g.function is not None))
        g.__dict__.pop("type_summary", None)


def _make_graph(proto: GraphProto, path: tuple[str, ...], outer: Graph | None, depth: int) -> Graph:
    if depth > MAX_SUBGRAPH_DEPTH:
        raise _TooDeep()
    dense = inits = {t.name: t for t in proto.initializer}
    if len(proto.sparse_initializer):
        inits = dict(dense)
        for st in proto.sparse_initializer:
            inits.setdefault(st.values.name, st.values)
    return Graph(
        proto=proto,
        path=path,
        nodes=list(proto.node),
        inputs=[vi.name for vi in proto.input],
        outputs=[vi.name for vi in proto.output],
        initializers=inits,
        types=TypeTable(dense),  # a sparse initializer's values tensor does not have its shape
        outer=outer,
        depth=depth,
    )


def _make_function_graph(f: FunctionProto) -> Graph:
    return Graph(
        proto=None,
        path=(f"function:{f.domain + '.' if f.domain else ''}{f.name}",),
        nodes=list(f.node),
        inputs=list(f.input),
        outputs=list(f.output),
        initializers={},
        types=TypeTable(),
        function=f,
    )


class _TooDeep(Exception):
    pass


def _opsets(proto: ModelProto) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in proto.opset_import:
        domain = "" if o.domain in ("", "ai.onnx") else o.domain
        out[domain] = int(o.version)
    return out
