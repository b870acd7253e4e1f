"""Graph simplifications onnxslim and onnx-simplifier also make: layout chains collapsed, BatchNormalization
folded into the layer before it, chained constant arithmetic merged. Each replaces what its GRF rule
reports, through the rule's own detector."""

from __future__ import annotations

import onnx
from onnx import helper, numpy_helper

from ..findings import Applicability
from .base import Outcome, Rewrite, RewriteContext
from .._proto import default_opset, graph_protos, rename_reads as _rename_inputs, taken_names, unique_name


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
        from ..model import from_proto

        view = from_proto(model)
        out = onnx.ModelProto()
        out.CopyFrom(model)
        protos = graph_protos(out)
        taken = taken_names(out)
        opset = default_opset(model, 1)
        changes: list[str] = []
        skipped: list[str] = []
        for g in view.graphs:
            gp = protos.get(g.path)
            if gp is None or g.function is not None:
                continue
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
    resolves = ("GRF414",)
    reads_weights = True

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        from ..patterns.batch_norm import batch_norm_fold
        from ..model import from_proto

        view = from_proto(model)
        folds = [f for g in view.graphs if g.function is None
                 for k in g.op_positions.get("BatchNormalization", ()) if (f := batch_norm_fold(view, g.ref(k)))]
        if not folds:
            return Outcome(model, skipped=["no BatchNormalization to fold"])
        out = onnx.ModelProto()
        out.CopyFrom(model)
        protos = graph_protos(out)
        taken = taken_names(out)
        changes: list[str] = []
        skipped: list[str] = []
        by_graph: dict[tuple[str, ...], list] = {}
        for f in folds:
            by_graph.setdefault(f.bn.graph.path, []).append(f)
        for path, fs in by_graph.items():
            gp = protos[path]
            g = fs[0].bn.graph
            values = _values(view, g, gp)
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
        from ..model import from_proto

        view = from_proto(model)
        out = onnx.ModelProto()
        out.CopyFrom(model)
        protos = graph_protos(out)
        taken = taken_names(out)
        changes: list[str] = []
        for g in view.graphs:
            gp = protos.get(g.path)
            if gp is None or g.function is not None:
                continue
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


REWRITES = (CollapseLayoutChains, FoldBatchNorm, MergeConstantArithmetic)
