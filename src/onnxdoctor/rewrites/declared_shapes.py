"""Shape annotations that contradict the graph: the exporter's value_info and graph-output shapes."""

from __future__ import annotations

import re

import onnx

from .._proto import graphs
from ..findings import Applicability
from .base import Outcome, Rewrite, RewriteContext

_MADE_UP = re.compile(r"^unk__\d+$")


def _dims(tt: onnx.TypeProto.Tensor) -> list[int | str | None] | None:
    """The dims of a tensor type: sizes, names, None for an unknown dim; None for an unknown rank.
    The names ONNX's inference makes up for unknown dims (`unk__3`) are unknown dims."""
    if not tt.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else
            (d.dim_param if d.dim_param and not _MADE_UP.match(d.dim_param) else None) for d in tt.shape.dim]


def _conflict(declared: list | None, inferred: list | None) -> bool:
    """Whether two shapes cannot describe one tensor: other ranks, or two sizes that differ."""
    if declared is None or inferred is None:
        return False
    if len(declared) != len(inferred):
        return True
    return any(isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(declared, inferred))


def _text(dims: list | None) -> str:
    return "?" if dims is None else "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


class CorrectAnnotations(Rewrite):
    """Correct shape annotations that contradict what the graph computes.

    ## What it does
    Infers every shape with the model's own annotations set aside (value_info dropped, graph
    outputs without their shapes), then: a value_info entry that contradicts the inferred shape (an
    other rank, or another size) is removed; a graph output declared with such a shape is declared
    with the inferred one (a dim that inference leaves unknown keeps the declared name when the
    ranks agree). Nothing else changes: no node, no value.

    ## When it applies
    MOD501 findings whose shape inference failed on such a contradiction ("Inferred shape and
    existing shape differ"). Exporters write them (an OCR model declares its output `[1, seqlen]`
    and computes `[16, 1, 8210]`; ONNX Runtime runs it and warns), and they surface when a rewrite
    makes the shape known: after `fold-shape-computations` turns the Reshape's computed shape into a
    constant, the model no longer passes `onnx.checker`'s full check until the annotation is
    corrected.

    ## Example
    `y = Relu(x)` with `x: float[2, 3]` and the output declared `float[2, 3, 4]` is declared `float[2, 3]`.

    ## Safety
    Safe: annotations are not computed, the outputs are the same values (the proof runs both).

    ## Resolves
    MOD501
    """

    name = "correct-annotations"
    phase = 10
    summary = "correct value_info and output shapes that contradict what the graph computes"
    applicability = Applicability.SAFE
    resolves = ("MOD501",)

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        from ..weights import weightless

        bare = onnx.ModelProto()
        bare.CopyFrom(weightless(model))
        for g in graphs(bare.graph):
            del g.value_info[:]
        for vi in bare.graph.output:
            vi.type.tensor_type.ClearField("shape")
        try:
            inferred = onnx.shape_inference.infer_shapes(bare, strict_mode=False, data_prop=True)
        except Exception as e:  # noqa: BLE001 - nothing inferred, nothing to correct against
            return Outcome(model, skipped=[f"ONNX shape inference fails without the annotations too ({' '.join(str(e).split())[:160]})"])
        known: dict[str, list | None] = {}
        for g in graphs(inferred.graph):
            for vi in (*g.value_info, *g.output):
                if vi.type.HasField("tensor_type"):
                    known[vi.name] = _dims(vi.type.tensor_type)
        out = onnx.ModelProto()
        out.CopyFrom(model)
        changes: list[str] = []
        for g in graphs(out.graph):
            keep = []
            for vi in g.value_info:
                declared = _dims(vi.type.tensor_type) if vi.type.HasField("tensor_type") else None
                if _conflict(declared, known.get(vi.name)):
                    changes.append(f"dropped value_info {vi.name!r}: annotated {_text(declared)}, the graph computes "
                                   f"{_text(known[vi.name])}")
                else:
                    keep.append(vi)
            if len(keep) != len(g.value_info):
                del g.value_info[:]
                g.value_info.extend(keep)
        for vi in out.graph.output:
            if not vi.type.HasField("tensor_type"):
                continue
            declared, computed = _dims(vi.type.tensor_type), known.get(vi.name)
            if not _conflict(declared, computed):
                continue
            shape = vi.type.tensor_type.shape
            names = declared if len(declared) == len(computed) else [None] * len(computed)
            del shape.dim[:]
            for d, name in zip(computed, names):
                dim = shape.dim.add()
                if isinstance(d, int):
                    dim.dim_value = d
                elif d is not None:
                    dim.dim_param = d
                elif isinstance(name, str):
                    dim.dim_param = name
            changes.append(f"output {vi.name!r} was declared {_text(declared)}, the graph computes {_text(computed)}: "
                           f"declared {_text(_dims(vi.type.tensor_type))}")
        if not changes:
            return Outcome(model, skipped=["no annotation contradicts the inferred shapes"])
        return Outcome(out, changes)


REWRITES = (CorrectAnnotations,)
