"""correct-annotations: MOD501 names it only for an annotation the graph contradicts, and fix then
leaves a model that passes onnx.checker's full check (before, a fixed OCR model whose exporter
declared its output [1, seqlen] failed it once folding made the computed [16, 1, 8210] known)."""

from __future__ import annotations

import onnx
import onnx.parser

from onnxdoctor.api import check
from onnxdoctor.fix import FixOptions, fix_model


def _mod501(text: str):
    found = [f for f in check(onnx.parser.parse_model(text), trt="10.15").findings if f.code == "MOD501"]
    assert len(found) == 1, found
    return found[0]


def test_only_a_contradicted_annotation_names_the_rewrite():
    mismatch = _mod501("""<ir_version: 8, opset_import: ["" : 17]>
        g (float[2,3] a, float[4,5] b) => (float[2,5] y) { y = MatMul(a, b) }""")
    assert mismatch.fix is None
    contradicted = _mod501("""<ir_version: 8, opset_import: ["" : 17]>
        g (float[2,3] x) => (float[2,3,4] y) { y = Relu(x) }""")
    assert contradicted.fix is not None and contradicted.fix.rewrite == "correct-annotations"


def test_a_computed_reshape_declared_with_the_wrong_rank_ends_valid():
    """The exporter's pattern: Reshape(x, Concat(Shape(x)[0], [2, 4])) declared as x's own rank."""
    m = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 8] x) => (float[N, 8] y) <int64[1] zero = {0}, int64[2] tail = {2, 4}> {
            s = Shape(x)
            n = Gather<axis = 0>(s, zero)
            shape = Concat<axis = 0>(n, tail)
            y = Reshape(x, shape)
        }""")
    result = fix_model(m, FixOptions(trt="10.15"))
    applied = [s.rewrite for s in result.steps if s.status == "applied"]
    assert "correct-annotations" in applied, [(s.rewrite, s.status, s.reason) for s in result.steps]
    onnx.checker.check_model(result.model, full_check=True)
    dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in result.model.graph.output[0].type.tensor_type.shape.dim]
    assert len(dims) == 3 and dims[1:] == [2, 4], dims
    assert result.proof is not None and result.proof.passed
    assert not [f for f in result.after if f.code == "MOD501"]
