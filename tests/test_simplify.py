"""The graph simplifications of issue 15 (dedupe-nodes, identity arithmetic in remove-noops,
collapse-reshapes, fold-batch-norm, merge-constant-arithmetic, fold-shape-computations, Constant
nodes to initializers in every graph): each applies where its rule reports, does not where it must
not, passes onnx.checker's full check, and gives ONNX Runtime the original's outputs; through the
pipeline its proof passes."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

from onnxdoctor import prove
from onnxdoctor.engine import analyze
from onnxdoctor.fix import FixOptions, fix_model
from onnxdoctor.model import from_proto
from onnxdoctor.registry import all_rules
from onnxdoctor.rewrites import RewriteContext, get_rewrite
from onnxdoctor.rewrites._gs import cleaned
from onnxdoctor.target import Target

H = '<ir_version: 8, opset_import: ["" : 17]>\n'


def _ops(m: onnx.ModelProto, graph: onnx.GraphProto | None = None) -> list[str]:
    return [n.op_type for n in (graph or m.graph).node]


def _codes(m: onnx.ModelProto, trt: str = "10.15") -> collections.Counter:
    return collections.Counter(f.code for f in analyze(from_proto(m), Target.make(trt), all_rules()))


def _parse(text: str, **inits: np.ndarray) -> onnx.ModelProto:
    m = onnx.parser.parse_model(text)
    m.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in inits.items())
    onnx.checker.check_model(m, full_check=True)
    return m


def rewrite(name: str, model: onnx.ModelProto, *, exact: bool = True, feeds=None):
    """Apply one rewrite as the pipeline does (then cleanup); check the result fully and compare it
    with the original in ONNX Runtime."""
    outcome = get_rewrite(name).apply(model, RewriteContext(target=Target.make("10.15")))
    if not outcome.changed:
        return outcome, model
    out = cleaned(outcome.model)
    onnx.checker.check_model(out, full_check=True)
    assert [o.name for o in out.graph.output] == [o.name for o in model.graph.output]
    feeds = feeds or prove.generate_inputs(model, seed=0)
    ref, got = prove.run(model, feeds), prove.run(out, feeds)
    for k in ref:
        if exact:
            np.testing.assert_array_equal(ref[k], got[k])
        else:
            np.testing.assert_allclose(ref[k], got[k], rtol=1e-5, atol=1e-5)
    return outcome, out


def _through_pipeline(model: onnx.ModelProto, rewrite_name: str, **opts):
    res = fix_model(model, FixOptions(trt="10.15", **opts))
    step = next((s for s in res.steps if s.rewrite == rewrite_name), None)
    assert step is not None and step.status == "applied", [(s.rewrite, s.status, s.reason) for s in res.steps]
    assert step.proof is not None and step.proof.passed
    assert res.proof is not None and res.proof.passed
    onnx.checker.check_model(res.model, full_check=True)
    return res


# ----------------------------------------------------------------------------
# dedupe-nodes (GRF407)
# ----------------------------------------------------------------------------
def test_dedupe_nodes_merges_cascades_and_equal_constants():
    m = _parse(H + """g (float[2,4] x) => (float[2,1,4] y) <int64[1] a0 = {1}, int64[1] a1 = {1}> {
        u0 = Unsqueeze(x, a0)
        u1 = Unsqueeze(x, a1)
        r0 = Relu(u0)
        r1 = Relu(u1)
        y = Add(r0, r1)
    }""")
    assert _codes(m)["GRF407"] == 2
    outcome, out = rewrite("dedupe-nodes", m)
    assert _ops(out) == ["Unsqueeze", "Relu", "Add"]
    assert list(out.graph.node[-1].input) == ["r0", "r0"]
    assert "GRF407" not in _codes(out)


def test_dedupe_nodes_rewires_readers_inside_a_branch():
    m = _parse(H + """g (bool c, float[4] x) => (float[4] y) {
        a = Relu(x)
        b = Relu(x)
        y = If(c) <
          then_branch = t () => (float[4] tout) { tout = Neg(b) },
          else_branch = e () => (float[4] eout) { eout = Neg(a) }
        >
    }""")
    outcome, out = rewrite("dedupe-nodes", m)
    branches = {a.name: a.g for a in out.graph.node[-1].attribute}
    assert list(branches["then_branch"].node[0].input) == ["a"]
    assert _ops(out) == ["Relu", "If"]


def test_dedupe_nodes_inside_a_body():
    m = _parse(H + """g (bool c, float[4] x) => (float[4] y) {
        y = If(c) <
          then_branch = t () => (float[4] tout) { p = Sigmoid(x)
            q = Sigmoid(x)
            tout = Mul(p, q) },
          else_branch = e () => (float[4] eout) { eout = Neg(x) }
        >
    }""")
    feeds = {"c": np.array(True), "x": np.arange(4, dtype=np.float32)}
    outcome, out = rewrite("dedupe-nodes", m, feeds=feeds)
    then_b = next(a.g for a in out.graph.node[0].attribute if a.name == "then_branch")
    assert _ops(out, then_b) == ["Sigmoid", "Mul"]


@pytest.mark.parametrize("text", [
    "g (float[2,4] x) => (float[2,4] y) { a = Softmax<axis = 0>(x)\n b = Softmax<axis = 1>(x)\n y = Add(a, b) }",
    "g (float[2,4] x) => (float[2,4] y) { a = RandomUniformLike(x)\n b = RandomUniformLike(x)\n y = Add(a, b) }",
    "g (float[2,4] x) => (float[2,4] y, float[2,4] z) { y = Relu(x)\n z = Relu(x) }",
])
def test_dedupe_nodes_does_not_apply(text):
    outcome, _ = rewrite("dedupe-nodes", _parse(H + text))
    assert not outcome.changed


def test_dedupe_nodes_through_the_pipeline():
    m = _parse(H + """g (float[2,4] x) => (float[2,4] y) {
        s0 = Shape(x)
        s1 = Shape(x)
        a = Reshape(x, s0)
        b = Reshape(x, s1)
        y = Add(a, b)
    }""")
    res = _through_pipeline(m, "dedupe-nodes")
    assert "GRF407" not in {f.code for f in res.after}


# ----------------------------------------------------------------------------
# identity arithmetic in remove-noops (GRF408)
# ----------------------------------------------------------------------------
def test_identity_arithmetic_is_removed():
    m = _parse(H + """g (float[batch,4] x) => (float[batch,4] y) {
        one = Constant<value = float {1.0}>()
        a = Add(x, b)
        c = Mul(one, a)
        d = Div(c, one)
        y = Relu(d)
    }""", b=np.zeros(4, np.float32))
    assert _codes(m)["GRF408"] == 3
    outcome, out = rewrite("remove-noops", m)
    assert _ops(out) == ["Relu"] and list(out.graph.node[0].input) == ["x"]
    assert "GRF408" not in _codes(out)


def test_identity_arithmetic_on_a_graph_output_renames_the_producer():
    m = _parse(H + "g (float[4] x) => (float[4] y) { r = Relu(x)\n y = Add(r, z) }", z=np.zeros(1, np.float32))
    outcome, out = rewrite("remove-noops", m)
    assert _ops(out) == ["Relu"] and list(out.graph.node[0].output) == ["y"]


@pytest.mark.parametrize("text,inits", [
    ("g (float[4] x) => (float[2,4] y) { y = Add(x, b) }", {"b": np.zeros((2, 4), np.float32)}),
    ("g (float[4] x) => (float[4] y) { y = Sub(b, x) }", {"b": np.zeros(4, np.float32)}),
    ("g (float[4] x) => (float[4] y) { y = Mul(x, b) }", {"b": np.array([1, 1, 1, 2], np.float32)}),
    ("g (float[n] x) => (float[n] y) { y = Mul(x, b) }", {"b": np.ones(4, np.float32)}),
])
def test_identity_arithmetic_does_not_apply(text, inits):
    m = _parse(H + text, **inits)
    assert "GRF408" not in _codes(m)
    outcome, _ = rewrite("remove-noops", m)
    assert not outcome.changed


def test_identity_arithmetic_through_the_pipeline():
    m = _parse(H + "g (float[2,4] x) => (float[2,4] y) { a = MatMul(x, w)\n b = Add(a, z)\n y = Relu(b) }",
               w=np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32), z=np.zeros(4, np.float32))
    res = _through_pipeline(m, "remove-noops")
    assert _ops(res.model) == ["MatMul", "Relu"]


# ----------------------------------------------------------------------------
# Constant nodes to initializers, in every graph (GRF410, cleanup)
# ----------------------------------------------------------------------------
def test_constants_become_initializers_in_bodies_too():
    m = _parse(H + """g (bool c, float[4] x) => (float[4] y) {
        two = Constant<value_float = 2.0>()
        a = Mul(x, two)
        y = If(c) <
          then_branch = t () => (float[4] tout) { k = Constant<value = float {3.0}>()
            tout = Mul(a, k) },
          else_branch = e () => (float[4] eout) { ks = Constant<value_ints = [1, 2]>()
            s = Shape(a)
            f = Cast<to = 1>(ks)
            eout = Neg(a) }
        >
    }""")
    assert _codes(m)["GRF410"] == 3
    for cond in (True, False):
        outcome, out = rewrite("cleanup", m, feeds={"c": np.array(cond), "x": np.arange(4, dtype=np.float32)})
    assert "stored 2 Constant node(s) as initializers" in outcome.changes  # ks is dead: removed with its readers
    then_b = next(a.g for a in out.graph.node[-1].attribute if a.name == "then_branch")
    assert _ops(out) == ["Mul", "If"] and _ops(out, then_b) == ["Mul"]
    assert [t.name for t in then_b.initializer] == ["k"]
    assert "GRF410" not in _codes(out)


def test_constant_that_is_a_graph_output_stays():
    m = _parse(H + "g (float[4] x) => (float[4] y, float c) { c = Constant<value = float {2.0}>()\n y = Relu(x) }")
    outcome, _ = rewrite("cleanup", m)
    assert not outcome.changed
