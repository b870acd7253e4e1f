"""Where no equivalent graph exists, check's hint, the rule's page and the fix report say so and why,
and point to the plugin route (issue 14)."""

from __future__ import annotations

import onnx.parser
import pytest

import onnxdoctor
from onnxdoctor.checks.trt._substitutes import NO_EQUIVALENT
from onnxdoctor.checks.trt.unsupported_operator import UnsupportedOperator
from onnxdoctor.fix import FixOptions, fix_model
from onnxdoctor.report.fix import render_fix
from onnxdoctor.target import Target

UNIQUE = """<ir_version: 8, opset_import: ["" : 11]>
g (float[6] x) => (float[?] y) { y = Unique(x) }"""


def test_no_equivalent_ops_are_never_imported_and_have_no_rewrite():
    kb = Target.make("10.15").kb
    from onnxdoctor.rule_fixes import SUBSTITUTIONS

    for op in NO_EQUIVALENT:
        assert not any(op in kb.release(v).ops for v in kb.versions), op
        assert ("", op) not in SUBSTITUTIONS, op


def test_the_rule_page_lists_every_op_without_an_equivalent():
    doc = UnsupportedOperator.doc()
    assert all(f"`{op}`" in doc for op in NO_EQUIVALENT), [op for op in NO_EQUIVALENT if f"`{op}`" not in doc]


def test_check_and_fix_say_why_and_point_to_a_plugin():
    model = onnx.parser.parse_model(UNIQUE)
    finding = next(f for f in onnxdoctor.check(model, trt="10.15", config=False).findings if f.code == "TRT101")
    assert finding.fix is None
    assert "depend on the values" in finding.hint and "--plugin Unique" in finding.hint
    result = fix_model(model, FixOptions(trt="10.15"))
    text = render_fix(result, "m.onnx", [], "text")
    assert "remaining error   TRT101" in text and "--plugin Unique" in text and "depend on the values" in text


@pytest.mark.parametrize("op", ["Hardmax"])
def test_ops_with_a_rewrite_get_no_such_hint(op):
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 13]>\ng (float[2,5] x) => (float[2,5] y) { y = Hardmax<axis = 1>(x) }')
    finding = next(f for f in onnxdoctor.check(model, trt="8.6", config=False).findings if f.code == "TRT101")
    assert finding.fix is not None and "no graph of TensorRT-imported ops" not in (finding.hint or "")


def test_string_inputs_say_there_is_no_equivalent():
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 11]>\ng (string[2] x) => (string[2] y) { y = Identity(x) }')
    hints = {f.hint for f in onnxdoctor.check(model, trt="10.15", config=False).findings if f.code == "TRT111"}
    assert hints and all("no string tensors" in h for h in hints)
