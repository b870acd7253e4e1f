"""TRT151 non-tensor-value."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule


# Ops that make a sequence whose elements `sequences-to-tensors` can know at build time.
_SEQUENCE_MAKERS = frozenset({"SplitToSequence", "SequenceConstruct", "SequenceEmpty", "SequenceInsert", "SequenceErase"})


class NonTensorValue(Rule):
    """A sequence, optional, map or sparse value where TensorRT needs a dense tensor.

    ## What it does
    Flags graph inputs, outputs and typed intermediate values whose ONNX type is not a dense
    tensor: `seq(...)`, `optional(...)`, `map(...)`, `sparse_tensor(...)`.

    ## Why it breaks TensorRT
    TensorRT networks carry dense tensors only. Such values reach the parser's type conversion
    as UNDEFINED and fail; the Sequence*/Optional* ops have no importer at all.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2] a, float[2] b) => (seq(float[2]) s) { s = SequenceConstruct(a, b) }

    ## How to fix
    Replace sequences with stacked tensors (Concat/Unsqueeze, Split with fixed outputs) and
    optionals with explicit tensors before export.

    ## Fix safety
    A sequence inside the network that `SplitToSequence` (static sizes), `SequenceConstruct`,
    `SequenceEmpty`, `SequenceInsert` or `SequenceErase` makes and `ConcatFromSequence`,
    `SequenceAt` or `SequenceLength` reads is replaced by its element tensors by
    `sequences-to-tensors` (safe). No automatic fix for sequences or optionals at the model's
    interface.

    ## TensorRT versions
    All releases.

    ## Sources
    `ModelImporter.cpp` input/output import (`convertDtype` of the tensor type); operators.md
    (Sequence*, Optional* not supported); docs/research/parser-facts.md.
    """

    code = "TRT151"
    name = "non-tensor-value"
    severity = Severity.ERROR
    summary = "sequence/optional/map/sparse value"
    release_independent = True

    def check(self, ctx: Context):
        for g in ctx.model.graphs:
            if all(kind in ("tensor", "unknown") for kind, _ in g.type_summary[0]):
                continue
            reported: set[str] = set()
            for name in g.types.names():
                kind = g.types.kind(name)
                if kind in ("tensor", "unknown") or name in reported:
                    continue
                reported.add(name)
                hit = g.producers.get(name)
                node = g.ref(hit[0]) if hit else None
                role = "input" if name in g.inputs else "output" if name in g.outputs else "value"
                known = kind == "sequence" and role == "value" and node is not None and node.op_type in _SEQUENCE_MAKERS
                yield self.finding(
                    ctx,
                    f"{role} {name!r} is a {kind.replace('_', ' ')}; TensorRT supports dense tensors only",
                    node=node,
                    tensor=name,
                    subgraph=g.path,
                    versions=ctx.kb.versions,
                    hint="use stacked tensors instead of sequences/optionals",
                    fix=self.fix_by("sequences-to-tensors") if known else None,
                )
