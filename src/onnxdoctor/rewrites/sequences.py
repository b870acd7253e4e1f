"""Sequences whose elements are known at build time, replaced by the tensors themselves."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..findings import Applicability
from .._proto import bodies
from .base import Outcome, Rewrite, RewriteContext

_MAKERS = frozenset({"SplitToSequence", "SequenceConstruct", "SequenceEmpty", "SequenceInsert", "SequenceErase"})


class SequencesToTensors(Rewrite):
    """Replace sequence values whose elements are known at build time by the element tensors.

    ## What it does
    Follows each sequence from where it is made — `SplitToSequence` (split sizes and the split axis's
    dimension static), `SequenceConstruct`, `SequenceEmpty`, `SequenceInsert`/`SequenceErase` at a
    constant position — and replaces its readers: `ConcatFromSequence` becomes `Concat` (with
    `Unsqueeze` for `new_axis=1`), `SequenceAt` at a constant position the element itself,
    `SequenceLength` a constant. `SplitToSequence` becomes `Split` (plus `Squeeze` for
    `keepdims=0`). Sequences that are graph inputs or outputs, read by other ops or by control-flow
    bodies stay (the rewrite says which); the sequence ops nothing reads any more are removed.

    ## When it applies
    TRT151 on a sequence value inside the network that one of those ops makes (the TRT101 findings
    on the sequence ops go with it).

    ## Example
    `s = SplitToSequence<axis=0>(x); y = ConcatFromSequence<axis=0>(s)` with `x: float[4,3]` becomes
    `a, b, c, d = Split<axis=0>(x, [1,1,1,1]); y = Concat<axis=0>(a, b, c, d)`.

    ## Safety
    Safe: the same tensors, concatenated or picked in the same order.

    ## Resolves
    TRT151
    """

    name = "sequences-to-tensors"
    phase = 30
    summary = "replace build-time-known sequences by their element tensors"
    applicability = Applicability.SAFE
    resolves = ("TRT151",)

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        from .substitutions._build import ModelInfo

        out = onnx.ModelProto()
        out.CopyFrom(model)
        info = ModelInfo(out)
        changes: list[str] = []
        skipped: list[str] = []
        stack = [out.graph]
        while stack:
            g = stack.pop()
            _rewrite(g, info, changes, skipped)
            stack.extend(b for n in g.node for b in bodies(n))
        if not changes:
            return Outcome(model, skipped=skipped or ["no sequence whose elements are known at build time"])
        return Outcome(out, changes, skipped)


def _const(g: onnx.GraphProto, info, name: str) -> np.ndarray | None:
    if not name:
        return None
    for t in g.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    for n in g.node:
        if n.op_type == "Constant" and n.output and n.output[0] == name:
            a = next((a for a in n.attribute if a.name == "value"), None)
            return numpy_helper.to_array(a.t) if a is not None else None
    value = getattr(info, "value", None)
    return value(name) if callable(value) else None


def _attr(n: onnx.NodeProto, name: str, default):
    a = next((a for a in n.attribute if a.name == name), None)
    return helper.get_attribute_value(a) if a is not None else default


def _rewrite(g: onnx.GraphProto, info, changes: list[str], skipped: list[str]) -> None:
    elements: dict[str, list[str]] = {}
    opset = info.opset
    new_nodes: list[onnx.NodeProto] = []

    def emit(op: str, inputs, outputs, **attrs) -> None:
        new_nodes.append(helper.make_node(op, list(inputs), list(outputs), name=info.unique(f"{outputs[0]}/{op}"), **attrs))

    def ints(values, base: str) -> str:
        name = info.unique(base)
        g.initializer.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    for n in list(g.node):
        op = n.op_type if n.domain in ("", "ai.onnx") else None
        label = n.name or (n.output[0] if n.output else op)
        if op == "SplitToSequence":
            x, axis = n.input[0], _attr(n, "axis", 0)
            shape = info.shapes.get(x)
            dim = None
            if shape is not None and shape:
                axis %= len(shape)
                dim = shape[axis]
            split = _const(g, info, n.input[1]) if len(n.input) > 1 and n.input[1] else None
            if len(n.input) > 1 and n.input[1] and split is None:
                skipped.append(f"SplitToSequence {label!r}: the split sizes are not constant")
            elif split is None and not dim:
                skipped.append(f"SplitToSequence {label!r}: the split axis's dimension is not static")
            else:
                if split is None:
                    sizes = [1] * dim
                elif split.ndim == 0:
                    if not dim:
                        skipped.append(f"SplitToSequence {label!r}: the split axis's dimension is not static")
                        new_nodes.append(n)
                        continue
                    s = int(split)
                    sizes = [s] * (dim // s) + ([dim % s] if dim % s else [])
                else:
                    sizes = [int(v) for v in split.reshape(-1)]
                parts = [info.unique(f"{n.output[0]}_{k}") for k in range(len(sizes))]
                if len(parts) == 1:
                    emit("Identity", [x], parts)
                elif opset >= 13:
                    emit("Split", [x, ints(sizes, f"{n.output[0]}_sizes")], parts, axis=axis)
                else:
                    emit("Split", [x], parts, axis=axis, split=sizes)
                keep = _attr(n, "keepdims", 1)
                if split is None and not keep:
                    squeezed = [info.unique(f"{p}_squeezed") for p in parts]
                    for p, q in zip(parts, squeezed):
                        if opset >= 13:
                            emit("Squeeze", [p, ints([axis], f"{p}_axes")], [q])
                        else:
                            emit("Squeeze", [p], [q], axes=[axis])
                    parts = squeezed
                elements[n.output[0]] = parts
        elif op == "SequenceConstruct":
            elements[n.output[0]] = list(n.input)
        elif op == "SequenceEmpty":
            elements[n.output[0]] = []
        elif op in ("SequenceInsert", "SequenceErase") and n.input[0] in elements:
            seq = list(elements[n.input[0]])
            pos_name = n.input[2] if op == "SequenceInsert" and len(n.input) > 2 else n.input[1] if op == "SequenceErase" and len(n.input) > 1 else ""
            pos = _const(g, info, pos_name)
            if pos_name and pos is None:
                skipped.append(f"{op} {label!r}: the position is not constant")
            else:
                if op == "SequenceInsert":
                    p = len(seq) if pos is None else int(pos) % (len(seq) + 1) if int(pos) < 0 else int(pos)
                    seq.insert(p, n.input[1])
                else:
                    if not seq:
                        new_nodes.append(n)
                        continue
                    p = len(seq) - 1 if pos is None else int(pos)
                    del seq[p]
                elements[n.output[0]] = seq
        elif op == "ConcatFromSequence" and n.input[0] in elements and elements[n.input[0]]:
            parts, axis, new_axis = elements[n.input[0]], _attr(n, "axis", 0), _attr(n, "new_axis", 0)
            if new_axis:
                parts = [_unsqueeze(p, axis, info, g, emit, ints, opset) for p in parts]
            emit("Concat", parts, [n.output[0]], axis=axis)
            changes.append(f"ConcatFromSequence {label!r} -> Concat of {len(parts)} tensor(s)")
            continue
        elif op == "SequenceAt" and n.input[0] in elements:
            pos = _const(g, info, n.input[1])
            seq = elements[n.input[0]]
            if pos is None or not seq:
                skipped.append(f"SequenceAt {label!r}: the position is not constant")
            else:
                emit("Identity", [seq[int(pos)]], [n.output[0]])
                changes.append(f"SequenceAt {label!r} -> element {int(pos)}")
                continue
        elif op == "SequenceLength" and n.input[0] in elements:
            value = onnx.helper.make_tensor("value", onnx.TensorProto.INT64, [], [len(elements[n.input[0]])])
            new_nodes.append(helper.make_node("Constant", [], [n.output[0]], name=n.name or info.unique(f"{n.output[0]}/Constant"), value=value))
            changes.append(f"SequenceLength {label!r} -> {len(elements[n.input[0]])}")
            continue
        new_nodes.append(n)
    kept = {i for n in new_nodes for i in n.input} | {vi.name for vi in g.output}
    kept |= {i for n in new_nodes for b in bodies(n) for i in _reads(b)}
    for seq in elements:
        if seq in kept:
            skipped.append(f"sequence {seq!r} stays: a graph output, a control-flow body or an op this rewrite does not replace reads it")
    del g.node[:]
    g.node.extend(new_nodes)


def _unsqueeze(p: str, axis: int, info, g, emit, ints, opset) -> str:
    out = info.unique(f"{p}_unsqueezed")
    if opset >= 13:
        emit("Unsqueeze", [p, ints([axis], f"{p}_axes")], [out])
    else:
        emit("Unsqueeze", [p], [out], axes=[axis])
    return out


def _reads(g: onnx.GraphProto) -> set[str]:
    out: set[str] = set()
    stack = [g]
    while stack:
        cur = stack.pop()
        out.update(i for n in cur.node for i in n.input)
        out.update(vi.name for vi in cur.output)
        stack.extend(b for n in cur.node for b in bodies(n))
    return out


REWRITES = (SequencesToTensors,)
