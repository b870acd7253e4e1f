"""sequences-to-tensors: build-time-known sequences replaced by their element tensors, exactly;
left alone at the interface and where an op it does not replace reads them."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

from onnxdoctor import prove
from onnxdoctor.engine import analyze
from onnxdoctor.fix import FixOptions, fix_model
from onnxdoctor.model import from_proto
from onnxdoctor.registry import all_rules
from onnxdoctor.rewrites import RewriteContext, get_rewrite
from onnxdoctor.rewrites._gs import cleaned
from onnxdoctor.target import Target

H = '<ir_version: 8, opset_import: ["" : 17]>\n'


def _ops(g: onnx.GraphProto) -> list[str]:
    return [n.op_type for n in g.node]


def _errors(m: onnx.ModelProto, trt: str = "10.15") -> list:
    return [f for f in analyze(from_proto(m), Target.make(trt), all_rules()) if str(f.severity) == "error"]


def apply(text: str, feeds_list=None):
    model = onnx.parser.parse_model(H + text)
    onnx.checker.check_model(model, full_check=True)
    outcome = get_rewrite("sequences-to-tensors").apply(model, RewriteContext(target=Target.make("10.15")))
    if not outcome.changed:
        return outcome, model, model
    out = cleaned(outcome.model)
    onnx.checker.check_model(out, full_check=True)
    for feeds in feeds_list or [prove.generate_inputs(model, seed=0)]:
        ref, got = prove.run(model, feeds), prove.run(out, feeds)
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k])
    return outcome, model, out


@pytest.mark.parametrize("keepdims,new_axis", [(1, 0), (0, 1)])
def test_split_to_sequence_then_concat(keepdims, new_axis):
    outcome, model, out = apply(f"""g (float[4,3] x) => (float[4,3] y) {{
      s = SplitToSequence<axis = 0, keepdims = {keepdims}>(x)
      y = ConcatFromSequence<axis = 0, new_axis = {new_axis}>(s)
    }}""")
    assert "SplitToSequence" not in _ops(out.graph) and "Concat" in _ops(out.graph)
    assert any(f.fix and f.fix.rewrite == "sequences-to-tensors" for f in _errors(model))
    assert not _errors(out)


def test_constant_split_sizes_and_sequence_at():
    outcome, model, out = apply("""g (float[5,3] x) => (float[2,3] y, float[3,3] z, int64 n) <int64[2] sp = {2, 3}, int64 one = {1}, int64 zero = {0}> {
      s = SplitToSequence<axis = 0>(x, sp)
      y = SequenceAt(s, zero)
      z = SequenceAt(s, one)
      n = SequenceLength(s)
    }""")
    assert not {"SplitToSequence", "SequenceAt", "SequenceLength"} & set(_ops(out.graph))
    assert not _errors(out)


def test_sequence_construct_insert_concat():
    outcome, model, out = apply("""g (float[2,3] a, float[2,3] b, float[2,3] c) => (float[6,3] y) {
      s = SequenceConstruct(a, b)
      t = SequenceInsert(s, c)
      y = ConcatFromSequence<axis = 0>(t)
    }""")
    assert _ops(out.graph) == ["Concat"] and list(out.graph.node[0].input) == ["a", "b", "c"]


def test_inside_an_if_branch():
    text = """g (bool c, float[4,3] x) => (float[4,3] y) {
      y = If(c) <then_branch = t () => (float[4,3] a) { s = SplitToSequence<axis = 0>(x) a = ConcatFromSequence<axis = 0>(s) },
                 else_branch = e () => (float[4,3] b) { b = Identity(x) }>
    }"""
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    outcome, model, out = apply(text, [{"x": x, "c": np.array(v)} for v in (True, False)])
    then_b = next(a.g for a in out.graph.node[0].attribute if a.name == "then_branch")
    assert "SplitToSequence" not in _ops(then_b) and not _errors(out)


def test_left_alone_at_the_interface_and_with_a_dynamic_split_axis():
    outcome, model, out = apply("""g (float[4,3] a, float[4,3] b) => (seq(float[4,3]) s) { s = SequenceConstruct(a, b) }""")
    assert not outcome.changed
    assert all(f.fix is None for f in _errors(model) if f.code == "TRT151")  # an output: no fix named
    outcome, _, _ = apply("""g (float[N,3] x) => (float[N,3] y) {
      s = SplitToSequence<axis = 0>(x)
      y = ConcatFromSequence<axis = 0>(s)
    }""")
    assert not outcome.changed and "not static" in outcome.skipped[0]


def test_through_the_pipeline():
    model = onnx.parser.parse_model(H + """g (float[4,3] x) => (float[4,3] y) {
      s = SplitToSequence<axis = 1, keepdims = 0>(x)
      y = ConcatFromSequence<axis = 1, new_axis = 1>(s)
    }""")
    res = fix_model(model, FixOptions(trt="8.6"))
    assert "sequences-to-tensors" in [s.rewrite for s in res.steps if s.status == "applied"]
    assert res.proof.passed and not [f for f in res.after if str(f.severity) == "error"]
