"""Control-flow models through fix: folding inside If/Loop bodies with outer-scope references, the
`inline-constant-if` rewrite (applies where the condition is constant, not where it varies), the
TRT141/GRF401 findings that reach it, and the fix report counting subgraph nodes."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

from onnxdoctor import prove
from onnxdoctor._proto import node_count
from onnxdoctor.engine import analyze
from onnxdoctor.fix import FixOptions, fix_model
from onnxdoctor.model import from_proto
from onnxdoctor.registry import all_rules
from onnxdoctor.report.fix import render_fix, to_dict
from onnxdoctor.rewrites import RewriteContext, get_rewrite
from onnxdoctor.rewrites._gs import cleaned
from onnxdoctor.target import Target

H = '<ir_version: 8, opset_import: ["" : 17]>\n'

# A runtime condition `c` picks a branch; the then branch holds an If whose condition `k` is a
# constant of the enclosing scope, whose branches read `x` and the main-graph constant `two` from
# two levels up, and whose first output is also read inside the branch. graphsurgeon's own
# flattening of `If(k)` left `Mul(inner_b, two)` reading a value nothing produced any more.
NESTED = H + """
g (float[2,3] x, bool c) => (float[2,3] y, float[2,3] z) <float[1] one = {1.0}> {
  k = Constant<value = bool {1}>()
  two = Add(one, one)
  y, z = If(c) <
    then_branch = t () => (float[2,3] a, float[2,3] b) {
      inner_a, inner_b = If(k) <
         then_branch = t2 () => (float[2,3] p, float[2,3] q) { p = Add(x, two) q = Mul(p, p) },
         else_branch = e2 () => (float[2,3] p2, float[2,3] q2) { p2 = Sub(x, two) q2 = Identity(x) }>
      a = Identity(inner_a)
      b = Mul(inner_b, two)
    },
    else_branch = e () => (float[2,3] a3, float[2,3] b3) { a3 = Mul(x, two) b3 = Identity(x) }>
}
"""


def _codes(m: onnx.ModelProto, trt: str = "10.15") -> collections.Counter:
    return collections.Counter(f.code for f in analyze(from_proto(m), Target.make(trt), all_rules()))


def _findings(m: onnx.ModelProto, code: str, trt: str = "10.15"):
    return [f for f in analyze(from_proto(m), Target.make(trt), all_rules()) if f.code == code]


def _equal_in_ort(a: onnx.ModelProto, b: onnx.ModelProto, feeds_list) -> None:
    for feeds in feeds_list:
        ref, got = prove.run(a, feeds), prove.run(b, feeds)
        assert ref.keys() == got.keys()
        for k in ref:
            np.testing.assert_allclose(got[k], ref[k], rtol=1e-6, atol=1e-6)


def _both_conditions(model: onnx.ModelProto, cond: str = "c"):
    feeds = prove.generate_inputs(model, seed=0)
    return [{**feeds, cond: np.array(v)} for v in (True, False)]


def _apply(name: str, model: onnx.ModelProto, **ctx):
    onnx.checker.check_model(model, full_check=True)
    outcome = get_rewrite(name).apply(model, RewriteContext(target=Target.make("10.15"), **ctx))
    if not outcome.changed:
        return outcome, model
    out = cleaned(outcome.model)
    onnx.checker.check_model(out, full_check=True)
    assert [o.name for o in out.graph.output] == [o.name for o in model.graph.output]
    return outcome, out


def _branch(node: onnx.NodeProto, name: str) -> onnx.GraphProto:
    return next(a.g for a in node.attribute if a.name == name)


# ----------------------------------------------------------------------------
# Folding in bodies
# ----------------------------------------------------------------------------
def test_fold_constants_inside_branches_keeps_outer_scope_references():
    model = onnx.parser.parse_model(NESTED)
    assert "GRF401" in _codes(model)  # `two` is read only inside the branches: still reported
    outcome, out = _apply("fold-constants", model)
    assert outcome.changed
    _equal_in_ort(model, out, _both_conditions(model))
    # `two` is folded into one initializer of the main graph, read from every body.
    assert [n.op_type for n in out.graph.node] == ["If"]
    assert [t.name for t in out.graph.initializer] == ["two"]
    inner = _branch(out.graph.node[0], "then_branch")
    assert not any(t.name == "two" for t in inner.initializer)


def test_fix_pipeline_folds_and_inlines_a_nested_constant_if():
    model = onnx.parser.parse_model(NESTED)
    res = fix_model(model, FixOptions(trt="10.15"))
    status = {s.rewrite: s.status for s in res.steps}
    assert status["fold-constants"] == "applied" and status["inline-constant-if"] == "applied", res.steps
    assert not any(s.status == "rolled-back" for s in res.steps), [(s.rewrite, s.reason) for s in res.steps]
    onnx.checker.check_model(res.model, full_check=True)
    _equal_in_ort(model, res.model, _both_conditions(model))
    then_b = _branch(res.model.graph.node[0], "then_branch")
    assert "If" not in [n.op_type for n in then_b.node]
    assert node_count(res.model) < node_count(model) == 12


# ----------------------------------------------------------------------------
# inline-constant-if
# ----------------------------------------------------------------------------
def test_initializer_condition_inlines_the_taken_branch():
    text = H + """g (float[4] x) => (float[4] y) <bool k = {0}> {
      y = If(k) <then_branch = t () => (float[4] a) { a = Relu(x) },
                 else_branch = e () => (float[4] b) { b = Neg(x) }>
    }"""
    model = onnx.parser.parse_model(text)
    outcome, out = _apply("inline-constant-if", model)
    assert [n.op_type for n in out.graph.node] == ["Neg"] and list(out.graph.node[0].output) == ["y"]
    assert "else branch" in outcome.changes[0]
    _equal_in_ort(model, out, [prove.generate_inputs(model, seed=0)])


def test_runtime_condition_is_left_alone():
    text = H + """g (bool c, float[4] x) => (float[4] y) {
      y = If(c) <then_branch = t () => (float[4] a) { a = Relu(x) },
                 else_branch = e () => (float[4] b) { b = Neg(x) }>
    }"""
    outcome, out = _apply("inline-constant-if", onnx.parser.parse_model(text))
    assert not outcome.changed and "no If" in outcome.skipped[0]
    assert not _findings(out, "GRF401")


def test_if_nested_in_a_branch_of_an_if_on_the_same_condition_takes_that_branch():
    # 25 levels of If(c) in each other's then_branch: only the outer If decides; inside it, c is
    # true. The parser accepts 24 levels (TRT141); inlining leaves one If.
    text_body = "o25 = Neg(x)"
    for d in range(24, 0, -1):
        text_body = (f"o{d} = If(c) <then_branch = t{d + 1} () => (float[2] o{d + 1}) {{ {text_body} }}, "
                     f"else_branch = e{d + 1} () => (float[2] p{d + 1}) {{ p{d + 1} = Sigmoid(x) }}>")
    text = H + f"""g (bool c, float[2] x) => (float[2] y) {{
      y = If(c) <then_branch = t1 () => (float[2] o1) {{ {text_body} }},
                 else_branch = e1 () => (float[2] p1) {{ p1 = Identity(x) }}>
    }}"""
    model = onnx.parser.parse_model(text)
    nesting = [f for f in _findings(model, "TRT141") if "nested" in f.message]
    assert nesting and nesting[0].fix and nesting[0].fix.rewrite == "inline-constant-if"
    outcome, out = _apply("inline-constant-if", model)
    assert len([c for c in outcome.changes if "decided by an enclosing If" in c]) == 24
    assert [n.op_type for n in out.graph.node] == ["If"]
    assert [n.op_type for n in _branch(out.graph.node[0], "then_branch").node] == ["Neg"]
    assert not _findings(out, "TRT141")
    _equal_in_ort(model, out, _both_conditions(model))


def test_if_nested_on_another_condition_or_one_redefined_in_the_branch_is_left_alone():
    other = H + """g (bool c, bool d, float[2] x) => (float[2] y) {
      y = If(c) <then_branch = t () => (float[2] a) {
          a = If(d) <then_branch = t2 () => (float[2] a2) { a2 = Neg(x) }, else_branch = e2 () => (float[2] b2) { b2 = Relu(x) }> },
        else_branch = e () => (float[2] b) { b = Identity(x) }>
    }"""
    outcome, _ = _apply("inline-constant-if", onnx.parser.parse_model(other))
    assert not outcome.changed and "decided by an enclosing If" in outcome.skipped[0]
    # In the else branch the same condition is false: the nested If takes its else branch.
    text = H + """g (bool c, float[2] x) => (float[2] y) {
      y = If(c) <then_branch = t () => (float[2] a) { a = Identity(x) },
        else_branch = e () => (float[2] b) {
          b = If(c) <then_branch = t2 () => (float[2] a2) { a2 = Neg(x) }, else_branch = e2 () => (float[2] b2) { b2 = Relu(x) }> }>
    }"""
    model = onnx.parser.parse_model(text)
    outcome, out = _apply("inline-constant-if", model)
    assert "inlined the else branch" in outcome.changes[0]
    assert [n.op_type for n in _branch(out.graph.node[0], "else_branch").node] == ["Relu"]
    _equal_in_ort(model, out, _both_conditions(model))


def test_condition_computed_from_a_static_shape_is_folded_then_inlined():
    # The exported-RNN pattern: squeeze the batch axis only when it is 1. With x: float[1,4] the
    # branches have different ranks (TRT141), and the condition is constant once folded.
    text = H + """g (float[1,4] x) => (float[?] y) {
      s = Shape(x)
      zero = Constant<value = int64 {0}>()
      d = Gather(s, zero)
      one = Constant<value = int64 {1}>()
      k = Equal(d, one)
      y = If(k) <then_branch = t () => (float[4] a) { ax = Constant<value = int64[1] {0}>() a = Squeeze(x, ax) },
                 else_branch = e () => (float[1,4] b) { b = Identity(x) }>
    }"""
    model = onnx.parser.parse_model(text)
    trt141 = _findings(model, "TRT141")
    assert len(trt141) == 1 and trt141[0].fix.rewrite == "inline-constant-if"
    assert "constant once folded" in trt141[0].message
    outcome, out = _apply("inline-constant-if", model)
    assert "If" not in [n.op_type for n in out.graph.node]
    assert "Squeeze" in [n.op_type for n in out.graph.node]
    _equal_in_ort(model, out, [prove.generate_inputs(model, seed=0)])
    assert not _findings(out, "TRT141")


def test_branch_output_from_the_outer_scope_and_output_read_inside_the_branch():
    # Output 0 of the taken branch is the outer `x` itself (forwarded by an Identity); output 1 is
    # computed in the branch and also read by another branch node; output 2 repeats output 1.
    text = H + """g (float[4] x) => (float[4] y0, float[4] y1, float[4] y2, float[4] y3) <bool k = {1}> {
      y0, y1, y2 = If(k) <
        then_branch = t () => (float[4] a, float[4] b, float[4] b2) { b = Relu(x) c = Add(b, b) b2 = Identity(b) },
        else_branch = e () => (float[4] d, float[4] f, float[4] f2) { d = Neg(x) f = Neg(x) f2 = Neg(x) }>
      y3 = Mul(y1, y2)
    }"""
    text = text.replace("{ b = Relu(x) c = Add(b, b) b2 = Identity(b) }", "{ b = Relu(x) b2 = Add(b, b) a = Identity(x) }")
    model = onnx.parser.parse_model(text)
    outcome, out = _apply("inline-constant-if", model)
    assert "If" not in [n.op_type for n in out.graph.node]
    _equal_in_ort(model, out, [prove.generate_inputs(model, seed=0)])


def test_branch_names_that_clash_are_renamed_and_nested_readers_follow():
    # Both the main graph (after the If) and the branch define `t`; a Loop body inside the branch
    # reads the branch's `t` from the outer scope. After inlining, the branch's `t` is renamed and the
    # body reads the renamed value.
    text = H + """g (float[4] x, int64 n) => (float[4] y, float[4] w) <bool k = {1}> {
      y = If(k) <
        then_branch = th () => (float[4] a) {
          t = Relu(x)
          cond = Constant<value = bool {1}>()
          a = Loop(n, cond, x) <body = b (int64 i, bool ci, float[4] s) => (bool co, float[4] so) {
            co = Identity(ci)
            so = Add(s, t)
          }>
        },
        else_branch = el () => (float[4] a2) { a2 = Neg(x) }>
      t = Sigmoid(x)
      w = Mul(t, y)
    }"""
    model = onnx.parser.parse_model(text)
    outcome, out = _apply("inline-constant-if", model)
    defined = collections.Counter(o for n in out.graph.node for o in n.output)
    assert defined["t"] == 1 and all(c == 1 for c in defined.values())
    feeds = prove.generate_inputs(model, seed=0)
    feeds["n"] = np.array(3, np.int64)
    _equal_in_ort(model, out, [feeds])


def test_constant_if_inside_a_loop_body_is_inlined():
    text = H + """g (float[4] x, int64 n) => (float[4] y) <bool k = {0}> {
      cond = Constant<value = bool {1}>()
      y = Loop(n, cond, x) <body = b (int64 i, bool ci, float[4] s) => (bool co, float[4] so) {
        co = Identity(ci)
        so = If(k) <then_branch = t () => (float[4] p) { p = Add(s, x) },
                    else_branch = e () => (float[4] q) { q = Mul(s, x) }>
      }>
    }"""
    model = onnx.parser.parse_model(text)
    assert any(f.fix and f.fix.rewrite == "inline-constant-if" for f in _findings(model, "GRF401"))
    outcome, out = _apply("inline-constant-if", model)
    body = _branch(out.graph.node[-1], "body")
    assert [n.op_type for n in body.node] == ["Identity", "Mul"]
    feeds = prove.generate_inputs(model, seed=0)
    feeds["n"] = np.array(3, np.int64)
    _equal_in_ort(model, out, [feeds])


# ----------------------------------------------------------------------------
# TRT141 and the constant condition
# ----------------------------------------------------------------------------
RANKS = H + """g (float[2,3] x) => (float[?] y) <bool k = {1}> {
  y = If(k) <then_branch = t () => (float[2,3] a) { a = Identity(x) },
             else_branch = e () => (float[6] b) { s = Constant<value = int64[1] {6}>() b = Reshape(x, s) }>
}"""


def test_branch_ranks_are_not_an_error_when_the_condition_is_an_initializer():
    # onnx-tensorrt's If importer parses only the selected branch when the condition is weights.
    model = onnx.parser.parse_model(RANKS)
    assert not _findings(model, "TRT141")
    assert any(f.fix and f.fix.rewrite == "inline-constant-if" for f in _findings(model, "GRF401"))


def test_branch_output_count_is_an_error_even_with_a_constant_condition_and_inlining_fixes_it():
    text = H + """g (float[2,3] x) => (float[2,3] y) <bool k = {1}> {
      y = If(k) <then_branch = t () => (float[2,3] a) { a = Relu(x) },
                 else_branch = e () => (float[2,3] b, float[2,3] b2) { b = Neg(x) b2 = Neg(x) }>
    }"""
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model)
    found = _findings(model, "TRT141")
    assert len(found) == 1 and found[0].fix.rewrite == "inline-constant-if"
    # ONNX Runtime refuses the original (different output counts), so there is nothing to prove
    # against: the result is checked against the branch's formula instead.
    res = fix_model(model, FixOptions(trt="10.15", rules="TRT141", prove=False))
    assert not res.after
    assert [n.op_type for n in res.model.graph.node] == ["Relu"]
    onnx.checker.check_model(res.model, full_check=True)
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(prove.run(res.model, {"x": x})["y"], np.maximum(x, 0))


# ----------------------------------------------------------------------------
# The report counts subgraph nodes and prints one line per rewrite
# ----------------------------------------------------------------------------
def test_report_counts_subgraph_nodes_and_merges_passes():
    model = onnx.parser.parse_model(NESTED)
    res = fix_model(model, FixOptions(trt="10.15"))
    text = render_fix(res, "m.onnx", [], "text")
    assert f"nodes: 12 -> {node_count(res.model)} (subgraphs included)" in text
    applied = [line.split()[1] for line in text.splitlines() if line.startswith("  applied")]
    assert len(applied) == len(set(applied)), text
    assert to_dict(res, "m.onnx", [])["nodes"] == {"before": 12, "after": node_count(res.model)}


def test_report_merges_a_rewrite_applied_in_several_iterations():
    from onnxdoctor.fix import Step

    res = fix_model(onnx.parser.parse_model(NESTED), FixOptions(trt="10.15"))
    res.steps = [Step("remove-noops", 1, "applied", ["removed a"]), Step("fold-constants", 1, "applied", ["folded"]),
                 Step("remove-noops", 2, "applied", ["removed b"])]
    text = render_fix(res, "m.onnx", [], "text", explain=True)
    lines = [line for line in text.splitlines() if "remove-noops" in line]
    assert len(lines) == 1 and "2 passes" in lines[0]
    assert "removed a" in text and "removed b" in text


@pytest.mark.parametrize("value", [True, False])
def test_constant_valued_condition_from_a_constant_node_in_the_outer_graph(value):
    text = H + f"""g (float[4] x) => (float[4] y) {{
      k = Constant<value = bool {{{int(value)}}}>()
      y = If(k) <then_branch = t () => (float[4] a) {{ a = Relu(x) }},
                 else_branch = e () => (float[4] b) {{ b = Neg(x) }}>
    }}"""
    model = onnx.parser.parse_model(text)
    outcome, out = _apply("inline-constant-if", model)
    assert [n.op_type for n in out.graph.node] == ["Relu" if value else "Neg"]
    _equal_in_ort(model, out, [prove.generate_inputs(model, seed=0)])


def test_branch_initializers_move_with_the_branch():
    model = onnx.parser.parse_model(H + """g (float[4] x) => (float[4] y) <bool k = {1}> {
      y = If(k) <then_branch = t () => (float[4] a) <float[4] w = {1, 2, 3, 4}> { a = Mul(x, w) },
                 else_branch = e () => (float[4] b) { b = Neg(x) }>
    }""")
    outcome, out = _apply("inline-constant-if", model)
    assert [t.name for t in out.graph.initializer] == ["w"]
    np.testing.assert_array_equal(numpy_helper.to_array(out.graph.initializer[0]), [1, 2, 3, 4])
    _equal_in_ort(model, out, [prove.generate_inputs(model, seed=0)])


# ----------------------------------------------------------------------------
# The evidence of issue 14: folding, freezing and FP16 conversion on a control-flow model
# ----------------------------------------------------------------------------
# A runtime condition `c` picks a branch. Both branches read main-graph values from the outer scope
# (the input `x`, the weight `w`, the folded constant `scale`); the then branch holds the exported-RNN
# pattern `If(Shape(h)[0] == 1)` (squeeze the batch axis only when it is 1), whose branches have
# different ranks until `--shape x:2x8` makes the condition constant.
CONTROL_FLOW = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,8] x, bool c) => (float[N,8] y) <float[1] half = {0.75}> {
  scale = Add(half, half)
  y = If(c) <
    then_branch = t () => (float[N,8] a) {
      h = MatMul(x, w)
      s = Shape(h)
      zero = Constant<value = int64 {0}>()
      d = Gather(s, zero)
      one = Constant<value = int64 {1}>()
      k = Equal(d, one)
      r = If(k) <then_branch = t1 () => (float[8] p) { ax = Constant<value = int64[1] {0}>() p = Squeeze(h, ax) },
                 else_branch = e1 () => (float[N,8] q) { q = Relu(h) }>
      a = Mul(r, scale)
    },
    else_branch = e () => (float[N,8] b) { m = MatMul(x, w) b = Sub(m, scale) }>
}
"""


def control_flow_model() -> onnx.ModelProto:
    m = onnx.parser.parse_model(CONTROL_FLOW)
    w = np.random.default_rng(1).standard_normal((8, 8)).astype(np.float32) * 0.5
    m.graph.initializer.append(numpy_helper.from_array(w, "w"))
    onnx.checker.check_model(m, full_check=True)
    return m


def test_control_flow_model_survives_folding_freezing_and_fp16_conversion():
    model = control_flow_model()
    assert "TRT141" in _codes(model, "10.15")  # then-branch output rank 1 vs 2 while N is unknown
    res = fix_model(model, FixOptions(trt="10.15", shapes=("x:2x8",), precision="fp16", unsafe=True))
    applied = {s.rewrite for s in res.steps if s.status == "applied"}
    assert not [s for s in res.steps if s.status == "rolled-back"], [(s.rewrite, s.reason) for s in res.steps]
    # the conversion is the final stage: it folds the Casts of weights its bodies read before its proof
    assert {"freeze-shapes", "convert-precision"} <= applied and res.steps[-1].rewrite == "convert-precision", res.steps
    assert res.proof is not None and res.proof.passed, res.proof.summary()
    onnx.checker.check_model(res.model, full_check=True)
    # Folding: `scale = half + half` is a constant; freezing: the shape-conditioned If is gone (its
    # condition became constant and its else branch was inlined); conversion: the MatMuls inside the
    # branches run in FP16 with one FP16 copy of `w` in the main graph, read from both branches;
    # Casts at the branch edges keep the If's output FP32.
    top = res.model.graph
    assert [n.op_type for n in top.node] == ["If"]
    inits = {t.name: t for t in top.initializer}
    assert {t.data_type for t in inits.values()} == {onnx.TensorProto.FLOAT16}
    assert numpy_helper.to_array(next(t for n, t in inits.items() if n.startswith("scale"))).tolist() == [1.5]
    w16 = next(n for n in inits if n.startswith("w"))
    branches = {a.name: a.g for a in top.node[0].attribute}
    then_ops = [n.op_type for n in branches["then_branch"].node]
    assert "If" not in then_ops and "Shape" not in then_ops and "Relu" in then_ops
    for b in branches.values():
        assert not b.initializer
        assert [n.op_type for n in b.node].count("Cast") == 2  # x in, result out
        assert next(n for n in b.node if n.op_type == "MatMul").input[1] == w16
    assert _findings(res.model, "TRT141") == [] and not [f for f in res.after if f.severity.name == "ERROR"]
    # Equal in ONNX Runtime on both branches (the pipeline's own proof ran one value of `c`).
    x = np.random.default_rng(2).standard_normal((2, 8)).astype(np.float32)
    for c in (True, False):
        feeds = {"x": x, "c": np.array(c)}
        ref, got = prove.run(model, feeds)["y"], prove.run(res.model, feeds)["y"]
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref, atol=1e-2, rtol=1e-2)


def _strongly_typed_and_equal(model, converted, feeds_list, tol=2e-2):
    onnx.checker.check_model(converted, full_check=True)
    from onnxdoctor import mixed_precision as mp

    assert mp.mixed_type_nodes(converted) == []
    for feeds in feeds_list:
        ref, got = prove.run(model, feeds), prove.run(converted, feeds)
        for k in ref:
            assert got[k].dtype == ref[k].dtype
            np.testing.assert_allclose(got[k], ref[k], atol=tol, rtol=tol)


def test_fp16_conversion_inside_a_loop_body_keeps_carried_values_fp32():
    from onnxdoctor import mixed_precision as mp

    m = onnx.parser.parse_model(H + """g (float[2,4] x, int64 n) => (float[2,4] y, float[?,2,4] ys) {
      cond = Constant<value = bool {1}>()
      y, ys = Loop(n, cond, x) <body = b (int64 i, bool ci, float[2,4] s) => (bool co, float[2,4] so, float[2,4] scan) {
        co = Identity(ci)
        t = MatMul(s, w)
        so = Tanh(t)
        scan = Add(so, x)
      }>
    }""")
    m.graph.initializer.append(numpy_helper.from_array(np.eye(4, dtype=np.float32) * 0.5, "w"))
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32), "n": np.array(3, np.int64)}
    res = mp.convert(m, "fp16", feeds=feeds)
    assert res.passed, res.render_text()
    body = next(a.g for a in res.model.graph.node[-1].attribute if a.name == "body")
    converted = {d.node for d in res.decisions if not d.kept_fp32}
    assert {"MatMul_t", "Tanh_so", "Add_scan"} <= {n.name for n in body.node} and "MatMul_t" in converted
    # The body's interface is unchanged: carried value and scan output stay FP32.
    assert [o.type.tensor_type.elem_type for o in body.output] == [onnx.TensorProto.BOOL] + [onnx.TensorProto.FLOAT] * 2
    _strongly_typed_and_equal(m, res.model, [feeds])


def test_fp16_conversion_of_nested_bodies_and_main_weights_read_only_inside_a_branch():
    # `w` is read only inside the branches: the main-graph conversion must not drop it as unused.
    from onnxdoctor import mixed_precision as mp

    m = onnx.parser.parse_model(H + """g (float[2,4] x, bool c, bool d) => (float[2,4] y) {
      h = MatMul(x, v)
      y = If(c) <
        then_branch = t () => (float[2,4] a) {
          g1 = MatMul(h, w)
          a = If(d) <then_branch = tt () => (float[2,4] p) { p = Mul(g1, h) },
                     else_branch = te () => (float[2,4] q) { q = Sub(g1, x) }>
        },
        else_branch = e () => (float[2,4] b) { b = MatMul(x, w) }>
    }""")
    rng = np.random.default_rng(0)
    m.graph.initializer.extend([numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32) * 0.5, n) for n in ("v", "w")])
    feeds = {"x": rng.standard_normal((2, 4)).astype(np.float32), "c": np.array(True), "d": np.array(True)}
    res = mp.convert(m, "fp16", feeds=feeds)
    assert res.passed, res.render_text()
    inner = next(a.g for a in res.model.graph.node[-1].attribute if a.name == "then_branch")
    inner_if = next(n for n in inner.node if n.op_type == "If")
    deepest = next(a.g for a in inner_if.attribute if a.name == "then_branch")
    assert any(n.op_type == "Cast" for n in deepest.node)  # the nested body converted too
    # `g1` is read by the nested If: its producer stays FP32 in the branch, with its reason.
    assert any(d.kept_fp32 and "read inside a control-flow subgraph" in d.reason for d in res.decisions)
    _strongly_typed_and_equal(m, res.model, [{**feeds, "c": np.array(c), "d": np.array(d)} for c in (True, False) for d in (True, False)])


def test_fp16_conversion_of_main_graph_only_when_asked():
    from onnxdoctor import mixed_precision as mp

    model = control_flow_model()
    feeds = {"x": np.ones((2, 8), np.float32), "c": np.array(True)}
    flat = mp.convert(model, "fp16", feeds=feeds, convert_subgraphs=False)
    deep = mp.convert(model, "fp16", feeds=feeds)
    from onnxdoctor.mixed_precision.builder import _count_op

    assert _count_op(flat.model.graph, "Cast") < _count_op(deep.model.graph, "Cast")
    assert flat.passed and deep.passed


def test_fp16_overflowing_mask_inside_a_branch_is_clamped():
    model = onnx.parser.parse_model(H + """g (bool c, float[2,4] x) => (float[2,4] y) {
      y = If(c) <
        then_branch = t () => (float[2,4] a) {
          m = Constant<value = float[2,4] {0, 0, -1e9, -1e9, 0, 0, 0, -1e9}>()
          s = Add(x, m)
          a = Softmax<axis = -1>(s)
        },
        else_branch = e () => (float[2,4] b) { b = Softmax<axis = -1>(x) }>
    }""")
    found = [f for f in analyze(from_proto(model), Target.make("10.15", precision="fp16"), all_rules()) if f.code == "PRC301"]
    assert found and found[0].location.subgraph
    res = fix_model(model, FixOptions(trt="10.15", precision="fp16", unsafe=True))
    step = next(s for s in res.steps if s.rewrite == "clamp-fp16-constants")
    assert step.status == "applied", (step.reason, step.skipped)
    assert not [f for f in res.after if f.code == "PRC301"]
    for c in (True, False):
        feeds = {"x": np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32), "c": np.array(c)}
        np.testing.assert_allclose(prove.run(res.model, feeds)["y"], prove.run(model, feeds)["y"], atol=1e-2)


def test_freezing_shapes_that_make_a_branch_invalid_is_refused_with_the_reason():
    # The then branch squeezes the batch axis: valid only for a batch of 1. Freezing the batch to 2
    # would make the model fail to load in ONNX Runtime (the branch no longer type-checks).
    model = onnx.parser.parse_model(H + """g (bool c, float[N,4] x) => (float[?] y) {
      y = If(c) <then_branch = t () => (float[4] a) { ax = Constant<value = int64[1] {0}>() a = Squeeze(x, ax) },
                 else_branch = e () => (float[N,4] b) { b = Relu(x) }>
    }""")
    outcome = get_rewrite("freeze-shapes").apply(model, RewriteContext(target=Target.make("10.15"), shapes={"x": (2, 4)}))
    assert not outcome.changed and "no longer type-checks" in outcome.skipped[0] and "x:2x4" in outcome.skipped[0]
    fine = get_rewrite("freeze-shapes").apply(model, RewriteContext(target=Target.make("10.15"), shapes={"x": (1, 4)}))
    assert fine.changed
