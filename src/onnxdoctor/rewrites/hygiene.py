"""Hygiene passes: constant folding and dead-code cleanup."""

from __future__ import annotations

import collections

import onnx

from ..findings import Applicability
from .._proto import graph_protos, node_count, rename_reads
from ._gs import fold, pruned
from .base import Outcome, Rewrite, RewriteContext


class FoldConstants(Rewrite):
    """Evaluate subgraphs whose inputs are all constants and replace them by initializers.

    ## What it does
    Runs onnx-graphsurgeon's constant folding (values computed by ONNX Runtime), including shape
    computations on inputs whose shapes are static, then removes the dead nodes. Folded values
    larger than the size cap (64 MiB per tensor) are left unfolded, so folding never explodes a
    model (e.g. an `Expand` of a constant to a huge shape).

    ## When it applies
    Findings GRF401 (constant-foldable subgraph), TRT122 warnings (value constant only after
    propagation: the importer needs an initializer), SHP204 with frozen shapes, and TRT101 on an op
    the release cannot import whose inputs are all build-time constants.

    ## Example
    `Constant(int32 1) -> Cast(to=INT64) -> ReduceSum.axes` becomes an INT64 initializer.

    ## Safety
    Safe: the values are computed by ONNX Runtime from the same graph.

    ## Resolves
    GRF401, TRT122, SHP204, TRT101
    """

    name = "fold-constants"
    phase = 20
    summary = "evaluate constant subgraphs into initializers"
    applicability = Applicability.SAFE
    resolves = ("GRF401", "TRT122", "SHP204", "TRT101")
    reads_weights = True

    def weights_needed(self, model: onnx.ModelProto) -> set[str]:
        """The initializers that nodes computing constants read (a Transpose of a weight, ...)."""
        from ..model import from_proto

        view = from_proto(model, infer_shapes=False)
        needed: set[str] = set()
        for g in view.graphs:
            for i in view.constants(g).computed_constants:
                needed.update(g.node_inputs[i])
        return needed

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        before = node_count(model)
        out = fold(model, ctx.max_constant_bytes)
        after = node_count(out)
        if after >= before:
            return Outcome(model, skipped=["no constant subgraph could be folded"])
        return Outcome(out, [f"folded {before - after} node(s) into constants ({before} -> {after} nodes)"])


class Cleanup(Rewrite):
    """Remove nodes whose results are never used and initializers nothing reads; store Constant nodes
    as initializers.

    ## What it does
    Removes dead nodes (no path to a graph output) and unused initializers, stores the value of each
    `Constant` node as an initializer of its graph (control-flow bodies included), and sorts the
    graph topologically.

    ## When it applies
    Findings GRF402 (dead node), GRF403 (unused initializer), GRF410 (Constant node); also run after
    every other rewrite.

    ## Example
    A debugging `Shape` node left in an export whose output nobody reads; `two = Constant(2.0)`
    becomes the initializer `two`.

    ## Safety
    Safe: graph outputs do not depend on what is removed, and a Constant's tensor is the same as an
    initializer.

    ## Resolves
    GRF402, GRF403, GRF410
    """

    name = "cleanup"
    phase = 90
    summary = "remove dead nodes and unused initializers, store Constant nodes as initializers"
    applicability = Applicability.SAFE
    size_independent = True  # names only: what nothing reads, Constant nodes
    resolves = ("GRF402", "GRF403", "GRF410")

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        nodes, inits, consts = node_count(model), len(model.graph.initializer), _constant_count(model)
        # pruned: the same removals in every graph without graphsurgeon's import and export of the
        # whole model (0.05-0.1 s on a 1,500-node model, and the pipeline runs cleanup every
        # iteration); a graph out of topological order still goes through graphsurgeon's sort
        out = pruned(model)
        moved = consts - _constant_count(out)
        dn, di = nodes - node_count(out) - moved, inits - len(out.graph.initializer) + moved
        if dn <= 0 and di <= 0 and moved <= 0:
            return Outcome(model, skipped=["nothing dead or unused, no Constant nodes to store"])
        changes = []
        if dn > 0 or di > 0:
            changes.append(f"removed {max(dn, 0)} dead node(s) and {max(di, 0)} unused initializer(s)")
        if moved > 0:
            changes.append(f"stored {moved} Constant node(s) as initializers")
        return Outcome(out, changes)


def _constant_count(model: onnx.ModelProto) -> int:
    return sum(1 for g in graph_protos(model).values() for n in g.node if n.op_type == "Constant")


class DedupeInitializers(Rewrite):
    """Merge initializers that have the same element type, dims and bytes.

    ## What it does
    In each graph, groups initializers by (element type, dims, content) — content compared as GRF404
    does: a digest of the inline bytes, or (location, offset, length) for external data — keeps the
    first of each group, points every reader of the others (including reads from inside control-flow
    bodies) at it, and drops the copies.

    ## When it applies
    GRF404 findings. An initializer that is also a graph input (an overridable default) or a graph
    output keeps its own name and is not merged.

    ## Example
    `s = Add(x, a); y = Mul(s, b)` with `a = b = [1, 2]` becomes `s = Add(x, a); y = Mul(s, a)`.

    ## Safety
    Safe: the merged tensors are bit-identical.

    ## Resolves
    GRF404
    """

    name = "dedupe-initializers"
    phase = 90
    summary = "merge identical initializers"
    applicability = Applicability.SAFE
    size_independent = True  # compares initializers only
    resolves = ("GRF404",)

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        from ..patterns.duplicates import content_key

        out = onnx.ModelProto()
        out.CopyFrom(model)
        changes: list[str] = []
        skipped: list[str] = []
        for g in graph_protos(out).values():
            if len(g.initializer) < 2:
                continue
            pinned = {vi.name for vi in (*g.input, *g.output)}
            first: dict[tuple, str] = {}
            mapping: dict[str, str] = {}
            for t in g.initializer:
                external = t.data_location == onnx.TensorProto.EXTERNAL
                key = content_key(t, external)
                if key is None:
                    continue
                key = (t.data_type, tuple(t.dims), key)
                if key not in first:
                    if t.name not in pinned:
                        first[key] = t.name
                    continue
                if t.name in pinned:
                    skipped.append(f"initializer {t.name!r} duplicates {first[key]!r} but is a graph input or output")
                    continue
                mapping[t.name] = first[key]
                changes.append(f"initializer {t.name!r} merged into {first[key]!r}")
            if not mapping:
                continue
            rename_reads(g, mapping)
            keep = [t for t in g.initializer if t.name not in mapping]
            del g.initializer[:]
            g.initializer.extend(keep)
            vis = [vi for vi in g.value_info if vi.name not in mapping]
            del g.value_info[:]
            g.value_info.extend(vis)
        if not changes:
            return Outcome(model, skipped=skipped or ["no duplicate initializers"])
        return Outcome(out, changes, skipped)


class DedupeNodes(Rewrite):
    """Common-subexpression elimination: a node that computes what an earlier node computes is removed.

    ## What it does
    Finds what GRF407 reports — nodes with the same op, attributes and inputs as an earlier node
    (inputs compared after earlier duplicates are merged, small initializers by content), skipping
    random ops, `Dropout`, nodes with subgraphs and nodes of other domains — points every reader of
    a duplicate's outputs (also inside control-flow bodies) at the original's, and deletes the
    duplicate. Runs in every graph.

    ## When it applies
    GRF407 findings. A duplicate whose output is a graph output is kept.

    ## Example
    `a = Relu(x); b = Relu(x); y = Add(a, b)` becomes `a = Relu(x); y = Add(a, a)`.

    ## Safety
    Safe: a deterministic op computes the same values from the same inputs and attributes.

    ## Resolves
    GRF407
    """

    name = "dedupe-nodes"
    phase = 90
    summary = "merge nodes that compute the same thing (common-subexpression elimination)"
    applicability = Applicability.SAFE
    resolves = ("GRF407",)

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        from ..patterns.duplicates import duplicates
        from ..model import from_proto

        view = from_proto(model, infer_shapes=False)
        out = onnx.ModelProto()
        out.CopyFrom(model)
        protos = graph_protos(out)
        changes: list[str] = []
        for g in view.graphs:
            gp = protos.get(g.path)
            if gp is None or len(g.nodes) < 2:
                continue
            found = duplicates(view, g)
            if not found:
                continue
            gone = {d.index for d in found}
            mapping: dict[str, str] = {}
            for d in found:
                mapping.update(d.mapping)
            keep = [n for i, n in enumerate(gp.node) if i not in gone]
            del gp.node[:]
            gp.node.extend(keep)
            rename_reads(gp, mapping)
            vis = [vi for vi in gp.value_info if vi.name not in mapping]
            del gp.value_info[:]
            gp.value_info.extend(vis)
            ops = collections.Counter(g.op_types[i] for i in gone)
            where = f" in {'/'.join(g.path)}" if g.path else ""
            changes.append(f"merged {len(gone)} duplicate node(s){where}: "
                           + ", ".join(f"{op}×{n}" if n > 1 else op for op, n in ops.most_common()))
        if not changes:
            return Outcome(model, skipped=["no duplicate nodes"])
        return Outcome(out, changes)


class RemoveNoops(Rewrite):
    """Remove nodes that pass a value through unchanged, and exact Cast round trips.

    ## What it does
    Removes what GRF405, GRF406 and GRF408 report: `Identity`; `Dropout` in inference mode whose mask
    is unused; `Cast` to the type its input already has; the second `Cast` of a round trip through a
    wider type that is exact (FLOAT → DOUBLE → FLOAT, INT32 → INT64 → INT32, ...; the first Cast goes
    too when nothing else reads it); and `x + 0`, `x - 0`, `x * 1`, `x / 1` with a constant whose
    broadcast leaves `x`'s shape unchanged. Readers of the removed output read its input instead. When the
    removed output is a graph output, the producer of the input is renamed to produce the graph
    output, so the model's interface keeps its names.

    ## When it applies
    GRF405, GRF406 and GRF408 findings. Kept (with the reason) when the output is a graph output and the input
    is a graph input, an initializer, another graph output or an outer-scope value — the node is then
    what gives the output its name.

    ## Example
    `a = Identity(x); y = Relu(a)` becomes `y = Relu(x)`; `y = Identity(r)` with `y` a graph output and
    `r = Relu(x)` becomes `y = Relu(x)`.

    ## Safety
    Safe: the values are identical (the Cast round trips are exact for every value of the type; `x + 0`
    turns `-0.0` into `+0.0`, which compares equal).

    ## Resolves
    GRF405, GRF406, GRF408
    """

    name = "remove-noops"
    phase = 90
    summary = "remove Identity, inference Dropout, same-type Cast, exact Cast round trips, x+0 and x*1"
    applicability = Applicability.SAFE
    resolves = ("GRF405", "GRF406", "GRF408")

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        from ..model import from_proto

        view = from_proto(model)
        out = onnx.ModelProto()
        out.CopyFrom(model)
        protos = graph_protos(out)
        changes: list[str] = []
        skipped: list[str] = []
        for g in view.graphs:
            gp = protos.get(g.path)
            if gp is None:
                continue  # local function bodies: their interface is the function's, not rewritten
            found = _noops(view, g)
            if found:
                c, s = _remove(g, gp, found)
                changes += c
                skipped += s
        if not changes:
            return Outcome(model, skipped=skipped or ["no no-op nodes"])
        return Outcome(out, changes, skipped)


def _noops(model, g) -> list[tuple[int, str, str, str]]:
    """(node index, input, output, what) for each no-op of graph `g`: GRF405/406/408's detector."""
    from ..patterns.noops import noops

    return [(n.index, n.input, n.output, n.what) for n in noops(model, g)]


def _remove(g, gp: onnx.GraphProto, found: list[tuple[int, str, str, str]]) -> tuple[list[str], list[str]]:
    from ..patterns.noops import needed

    changes: list[str] = []
    skipped: list[str] = []
    outputs = set(g.outputs)
    alias: dict[str, str] = {}  # removed output -> the value it equals

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    removed: set[int] = set()
    to_output: list[tuple[int, str, str, str]] = []
    for i, x, y, what in sorted(found):
        if y in outputs:
            to_output.append((i, x, y, what))
            continue
        alias[y] = x
        removed.add(i)
        changes.append(f"removed {what} {g.nodes[i].name or y!r}")
    # A removed node's output that is a graph output: its (resolved) input's producer is renamed to
    # produce the graph output instead, once per input.
    rename: dict[str, str] = {}
    for i, x, y, what in to_output:
        src = resolve(x)
        why = needed(g, src, y) or ("already renamed to another graph output" if src in rename else None)
        if why:
            skipped.append(f"{what} {g.nodes[i].name or y!r} kept: its output {y!r} is a graph output and its input {src!r} {why}")
            continue
        rename[src] = y
        removed.add(i)
        changes.append(f"removed {what} {g.nodes[i].name or y!r} ({y!r} is now produced by its input's producer)")
    if not removed:
        return changes, skipped
    mapping = {name: resolve(name) for name in alias}
    mapping = {k: rename.get(v, v) for k, v in mapping.items()}
    mapping.update({k: v for k, v in rename.items()})
    nodes = [n for i, n in enumerate(gp.node) if i not in removed]
    for n in nodes:
        for k, o in enumerate(n.output):
            if o in rename:
                n.output[k] = rename[o]
    del gp.node[:]
    gp.node.extend(nodes)
    rename_reads(gp, mapping)
    gone = set(mapping)
    vis = [vi for vi in gp.value_info if vi.name not in gone]
    del gp.value_info[:]
    gp.value_info.extend(vis)
    return changes, skipped


REWRITES = (FoldConstants, Cleanup, DedupeInitializers, DedupeNodes, RemoveNoops)
