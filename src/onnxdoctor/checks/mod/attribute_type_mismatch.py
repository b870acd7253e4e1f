"""MOD506 attribute-type-mismatch."""

from __future__ import annotations

from ...findings import Finding, Severity
from ...rule import Context, Rule

_TYPE_NAMES = {0: "UNDEFINED", 1: "FLOAT", 2: "INT", 3: "STRING", 4: "TENSOR", 5: "GRAPH", 6: "FLOATS", 7: "INTS",
               8: "STRINGS", 9: "TENSORS", 10: "GRAPHS", 11: "SPARSE_TENSOR", 12: "SPARSE_TENSORS", 13: "TYPE_PROTO",
               14: "TYPE_PROTOS"}


class AttributeTypeMismatch(Rule):
    """A node attribute holds another kind of value than its operator defines.

    ## What it does
    Reports an attribute that onnxdoctor's checks read and found holding the wrong kind of value:
    a list where the operator defines one integer (a Q/DQ `axis = [1, 2]`), a string where it
    defines a number, and so on. The check that read it goes on with the attribute's default value,
    so its own findings about that node may be incomplete. Attributes no check reads are not
    examined (`onnx.checker.check_model` examines all).

    ## Why it breaks TensorRT
    The parser reads each attribute as the type the operator defines; a value of another type
    makes the import fail or use a value the exporter did not mean. ONNX Runtime refuses the model
    (`Mismatched attribute type`).

    ## Example
    `QuantizeLinear<axis = [1, 2]>(x, scale, zero_point)`: ONNX defines `axis` as one INT.

    ## How to fix
    Fix the exporter or the graph-editing script that wrote the attribute (`onnx.helper.make_node`
    infers the attribute type from the Python value: `axis=1`, not `axis=[1]`).

    ## Fix safety
    No automatic fix: which value was meant is not in the model.

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX operator schemas (attribute types); `onnx.checker` ("Mismatched attribute type");
    onnx-tensorrt `OnnxAttrs::get<T>`.
    """

    code = "MOD506"
    name = "attribute-type-mismatch"
    severity = Severity.ERROR
    release_independent = True
    summary = "an attribute holds another kind of value than its operator defines"

    def check(self, ctx: Context):
        return ()  # reported after every other rule has run: see report()

    def report(self, ctx: Context) -> list[Finding]:
        """The mismatches the rules of this run met (model.Graph.attribute_errors)."""
        out = []
        for g in ctx.model.graphs:
            for (index, name), (stored, expected) in sorted(g.attribute_errors.items()):
                ref = g.ref(index)
                out.append(self.finding(
                    ctx, f"attribute {name!r} is {_TYPE_NAMES.get(stored, stored)}, where {ref.op_type} defines {expected}",
                    node=ref, versions=ctx.kb.versions, hint=f"write {name} as {expected}",
                ))
        return out
