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


# ----------------------------------------------------------------------------
# fold-shape-computations (GRF409)
# ----------------------------------------------------------------------------
ATTENTION_RESHAPES = H + """g (float[batch,seq,768] x) => (float[batch,seq,768] y) {
    s = Shape(x)
    i0 = Constant<value = int64 {0}>()
    i1 = Constant<value = int64 {1}>()
    b = Gather(s, i0)
    n = Gather(s, i1)
    ax = Constant<value = int64[1] {0}>()
    ub = Unsqueeze(b, ax)
    un = Unsqueeze(n, ax)
    tail = Constant<value = int64[2] {12, 64}>()
    shape = Concat<axis = 0>(ub, un, tail)
    h = Reshape(x, shape)
    t = Transpose<perm = [0, 2, 1, 3]>(h)
    r = Relu(t)
    back = Transpose<perm = [0, 2, 1, 3]>(r)
    s2 = Shape(back)
    last = Shape<start = -2>(back)
    prod = ReduceProd<keepdims = 1>(last)
    head = Slice(s2, i0s, i2s)
    shape2 = Concat<axis = 0>(head, prod)
    y = Reshape(back, shape2)
}"""


def test_fold_shape_computations_through_reshapes_whose_output_dims_are_computed():
    m = _parse(ATTENTION_RESHAPES, i0s=np.array([0], np.int64), i2s=np.array([2], np.int64))
    assert _codes(m)["GRF409"] >= 1
    feeds = {"x": np.random.default_rng(0).standard_normal((3, 5, 768)).astype(np.float32)}
    outcome, out = rewrite("fold-shape-computations", m, feeds=feeds)
    reshapes = [n for n in out.graph.node if n.op_type == "Reshape"]
    inits = {t.name: numpy_helper.to_array(t).tolist() for t in out.graph.initializer}
    # the second Reshape's shape is only known once the first one's output dims are (data propagation)
    assert [inits.get(n.input[1]) for n in reshapes] == [[0, 0, 12, 64], [0, 0, 768]]
    assert "Shape" not in _ops(out) and "Concat" not in _ops(out)
    # dynamic dims stay dynamic: another batch and sequence give the original's outputs too
    other = {"x": np.random.default_rng(1).standard_normal((1, 9, 768)).astype(np.float32)}
    np.testing.assert_array_equal(prove.run(m, other)["y"], prove.run(out, other)["y"])
    assert "GRF409" not in _codes(out)


def test_fold_shape_computations_removes_expand_to_own_shape():
    m = _parse(H + "g (float[batch,4] x) => (float[batch,4] y) { s = Shape(x)\n e = Expand(x, s)\n y = Relu(e) }")
    outcome, out = rewrite("fold-shape-computations", m)
    assert _ops(out) == ["Relu"] and outcome.changes == ["removed 1 Expand(s) to the input's own shape"]


@pytest.mark.parametrize("text", [
    # the Reshape's input is another tensor: Shape(x)'s dims cannot be copied from z with 0
    """g (float[batch,seq,768] x, float[n,768] z) => (float[batch,seq,768] y) {
        s = Shape(x)
        i0 = Constant<value = int64[2] {0, 1}>()
        bs = Gather(s, i0)
        tail = Constant<value = int64[1] {768}>()
        shape = Concat<axis = 0>(bs, tail)
        y = Reshape(z, shape) }""",
    # allowzero = 1: a 0 would mean a zero-size dim
    """g (float[batch,4] x) => (float[batch,2,2] y) {
        s = Shape<end = 1>(x)
        tail = Constant<value = int64[2] {2, 2}>()
        shape = Concat<axis = 0>(s, tail)
        y = Reshape<allowzero = 1>(x, shape) }""",
    # the Expand broadcasts x to z's shape
    "g (float[batch,1] x, float[batch,4] z) => (float[batch,4] y) { s = Shape(z)\n y = Expand(x, s) }",
])
def test_fold_shape_computations_does_not_apply(text):
    m = _parse(H + text)
    assert "GRF409" not in _codes(m)
    outcome, _ = rewrite("fold-shape-computations", m)
    assert not outcome.changed


def test_fold_shape_computations_through_the_pipeline():
    m = _parse(ATTENTION_RESHAPES, i0s=np.array([0], np.int64), i2s=np.array([2], np.int64))
    res = _through_pipeline(m, "fold-shape-computations")
    assert "Shape" not in _ops(res.model)


# ----------------------------------------------------------------------------
# collapse-layout-chains (GRF416)
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("text,inits,ops", [
    ("g (float[2,3,4] x) => (float[2,3,4] y) { a = Transpose<perm = [1, 0, 2]>(x)\n b = Transpose<perm = [1, 0, 2]>(a)\n y = Relu(b) }",
     {}, ["Relu"]),
    ("g (float[2,3,4] x) => (float[4,3,2] y) { a = Transpose<perm = [1, 0, 2]>(x)\n b = Transpose<perm = [2, 0, 1]>(a)\n y = Relu(b) }",
     {}, ["Transpose", "Relu"]),
    ("g (float[n,1,4] x) => (float[n,1,4] y) { a = Squeeze(x, ax)\n b = Unsqueeze(a, ax)\n y = Relu(b) }",
     {"ax": np.array([1], np.int64)}, ["Relu"]),
    ("g (float[n,4] x) => (float[n,1,1,4] y) { a = Unsqueeze(x, ax)\n b = Unsqueeze(a, ax)\n y = Relu(b) }",
     {"ax": np.array([1], np.int64)}, ["Unsqueeze", "Relu"]),
    ("g (float[2,8,768] x) => (float[16,12,64] y) { a = Reshape(x, s1)\n b = Reshape(a, s2)\n y = Relu(b) }",
     {"s1": np.array([-1, 768], np.int64), "s2": np.array([16, 12, 64], np.int64)}, ["Reshape", "Relu"]),
    ("g (float[n,8,768] x) => (float[n,8,12,64] y) { a = Unsqueeze(x, ax)\n b = Reshape(a, s2)\n y = Relu(b) }",
     {"ax": np.array([2], np.int64), "s2": np.array([0, 0, 12, 64], np.int64)}, ["Reshape", "Relu"]),
    ("g (float[n,8] x) => (float[n,8] y) { a = Reshape(x, s)\n y = Relu(a) }",
     {"s": np.array([0, 8], np.int64)}, ["Relu"]),
    # a Reshape to a constant shape, then an Unsqueeze (TensorFlow exports, before a Concat): the
    # shape with the 1 inserted, also when the output's shape is not known in full
    ("g (float[n,6] x) => (float[n,2,1,3] y) { a = Reshape(x, s)\n b = Unsqueeze(a, ax)\n y = Relu(b) }",
     {"s": np.array([-1, 2, 3], np.int64), "ax": np.array([2], np.int64)}, ["Reshape", "Relu"]),
    ("g (float[n,6] x) => (float[n,2,3] y) { a = Reshape(x, s)\n b = Squeeze(a, ax)\n y = Relu(b) }",
     {"s": np.array([0, 1, 2, 3], np.int64), "ax": np.array([1], np.int64)}, ["Reshape", "Relu"]),
])
def test_collapse_layout_chains(text, inits, ops):
    m = _parse(H + text, **inits)
    assert _codes(m)["GRF416"] == 1
    n = m.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value or 3 for d in n]
    feeds = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    outcome, out = rewrite("collapse-layout-chains", m, feeds=feeds)
    assert _ops(out) == ops
    assert "GRF416" not in _codes(out)


def test_collapse_layout_chains_combines_unsqueeze_axes():
    m = _parse(H + "g (float[n,4] x) => (float[n,1,4,1] y) { a = Unsqueeze(x, a1)\n y = Unsqueeze(a, a2) }",
               a1=np.array([1], np.int64), a2=np.array([-1], np.int64))
    outcome, out = rewrite("collapse-layout-chains", m, feeds={"x": np.ones((3, 4), np.float32)})
    assert _ops(out) == ["Unsqueeze"]
    axes = next(t for t in out.graph.initializer if t.name == out.graph.node[0].input[1])
    assert numpy_helper.to_array(axes).tolist() == [1, 3]


@pytest.mark.parametrize("text,inits", [
    ("g (float[2,3,4] x) => (float[2,3,4] y, float[3,2,4] z) { a = Transpose<perm = [1, 0, 2]>(x)\n z = Relu(a)\n y = Transpose<perm = [1, 0, 2]>(a) }", {}),
    ("g (float[n,1,m] x) => (float[n,m,1] y) { a = Squeeze(x, a1)\n y = Unsqueeze(a, a2) }",
     {"a1": np.array([1], np.int64), "a2": np.array([2], np.int64)}),
    ("g (float[2,3] x) => (float[2,3] y) { y = Transpose<perm = [0, 1]>(x) }", {}),  # the graph output needs its node
    # the 0 (copy x's dim 0) would move to position 1, where it would copy x's dim 1
    ("g (float[n,6] x) => (float[1,n,2,3] y) { a = Reshape(x, s)\n b = Unsqueeze(a, ax)\n y = Relu(b) }",
     {"s": np.array([0, 2, 3], np.int64), "ax": np.array([0], np.int64)}),
])
def test_collapse_layout_chains_does_not_apply(text, inits):
    m = _parse(H + text, **inits)
    outcome, _ = rewrite("collapse-layout-chains", m)
    assert not outcome.changed


def test_collapse_layout_chains_through_the_pipeline():
    m = _parse(H + "g (float[n,4] x) => (float[n,1,1,4] y) { a = Unsqueeze(x, ax)\n b = Unsqueeze(a, ax)\n y = Relu(b) }",
               ax=np.array([1], np.int64))
    res = _through_pipeline(m, "collapse-layout-chains")
    assert _ops(res.model) == ["Unsqueeze", "Relu"]


# ----------------------------------------------------------------------------
# fold-batch-norm (GRF414)
# ----------------------------------------------------------------------------
def _bn_params(c: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"s": rng.uniform(0.5, 2, c).astype(np.float32), "b": rng.standard_normal(c).astype(np.float32),
            "m": rng.standard_normal(c).astype(np.float32), "v": rng.uniform(0.5, 2, c).astype(np.float32)}


@pytest.mark.parametrize("text,weights,layer", [
    ("g (float[2,3,8,8] x) => (float[2,4,8,8] y) { c = Conv<pads = [1, 1, 1, 1]>(x, w, cb)\n y = BatchNormalization(c, s, b, m, v) }",
     {"w": (4, 3, 3, 3), "cb": (4,)}, "Conv"),
    ("g (float[2,4,8,8] x) => (float[2,4,8,8] y) { c = Conv<group = 2>(x, w)\n y = BatchNormalization<epsilon = 0.001>(c, s, b, m, v) }",
     {"w": (4, 2, 1, 1)}, "Conv"),
    ("g (float[2,3,4,4] x) => (float[2,4,5,5] y) { c = ConvTranspose(x, w)\n y = BatchNormalization(c, s, b, m, v) }",
     {"w": (3, 4, 2, 2)}, "ConvTranspose"),
    ("g (float[5,3] x) => (float[5,4] y) { c = Gemm<transB = 1, beta = 0.5>(x, w, cb)\n y = BatchNormalization(c, s, b, m, v) }",
     {"w": (4, 3), "cb": (4,)}, "Gemm"),
    ("g (float[5,3] x) => (float[5,4] y) { h = MatMul(x, w)\n c = Add(cb, h)\n y = BatchNormalization(c, s, b, m, v) }",
     {"w": (3, 4), "cb": (4,)}, "MatMul"),
    ("g (float[5,3] x) => (float[5,4] y) { c = MatMul(x, w)\n y = BatchNormalization(c, s, b, m, v) }",
     {"w": (3, 4)}, "MatMul"),
])
def test_fold_batch_norm(text, weights, layer):
    rng = np.random.default_rng(1)
    inits = {k: rng.standard_normal(shape).astype(np.float32) for k, shape in weights.items()} | _bn_params(4)
    m = _parse(H + text, **inits)
    assert _codes(m)["GRF414"] == 1
    outcome, out = rewrite("fold-batch-norm", m, exact=False)
    assert "BatchNormalization" not in _ops(out) and _ops(out)[0] == layer
    assert "GRF414" not in _codes(out)


def test_fold_batch_norm_reads_a_big_weight_and_keeps_one_something_else_reads():
    # a 1 MB weight (beyond the constant evaluator's size: read from the initializers) shared by a
    # second Conv without normalization, which still reads the original after the fold
    rng = np.random.default_rng(3)
    m = _parse(H + "g (float[1,512,2,2] x) => (float[1,512,2,2] y, float[1,512,2,2] z) { c = Conv(x, w)\n"
               " y = BatchNormalization(c, s, b, m, v)\n z = Conv(x, w) }",
               w=(0.04 * rng.standard_normal((512, 512, 1, 1))).astype(np.float32), **_bn_params(512))
    outcome, out = rewrite("fold-batch-norm", m, exact=False)
    assert outcome.changed and not outcome.skipped and "BatchNormalization" not in _ops(out)
    assert "w" in {t.name for t in out.graph.initializer} and any(n.input[1] == "w" for n in out.graph.node)


@pytest.mark.parametrize("text", [
    # the Conv's output is also a graph output
    "g (float[1,4,4,4] x) => (float[1,4,4,4] y, float[1,4,4,4] c) { c = Conv(x, w)\n y = BatchNormalization(c, s, b, m, v) }",
    # the MatMul's output has rank 3: BatchNormalization normalizes axis 1, not the MatMul's columns
    "g (float[2,4,3] x) => (float[2,4,4] y) { c = MatMul(x, w3)\n y = BatchNormalization(c, s, b, m, v) }",
])
def test_fold_batch_norm_does_not_apply(text):
    rng = np.random.default_rng(1)
    m = _parse(H + text, w=rng.standard_normal((4, 4, 1, 1)).astype(np.float32),
               w3=rng.standard_normal((3, 4)).astype(np.float32), **_bn_params(4))
    assert "GRF414" not in _codes(m)
    outcome, _ = rewrite("fold-batch-norm", m)
    assert not outcome.changed


def test_fold_batch_norm_through_the_pipeline():
    rng = np.random.default_rng(2)
    m = _parse(H + "g (float[2,3,8,8] x) => (float[2,4,8,8] y) { c = Conv<pads = [1, 1, 1, 1]>(x, w)\n"
               " n = BatchNormalization(c, s, b, m, v)\n y = Relu(n) }",
               w=rng.standard_normal((4, 3, 3, 3)).astype(np.float32), **_bn_params(4))
    res = _through_pipeline(m, "fold-batch-norm")
    assert _ops(res.model) == ["Conv", "Relu"]


# ----------------------------------------------------------------------------
# merge-constant-arithmetic (GRF415)
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("text,inits,ops", [
    ("g (float[2,4] x) => (float[2,4] y) { t = Add(a, x)\n u = Sub(t, b)\n v = Add(u, c)\n y = Relu(v) }",
     {"a": np.arange(4, dtype=np.float32), "b": np.array(0.5, np.float32), "c": np.array([[1], [2]], np.float32)},
     ["Add", "Relu"]),
    ("g (float[4] x) => (float[4] y) { t = Mul(x, a)\n u = Div(t, b)\n y = Relu(u) }",
     {"a": np.array(3.0, np.float32), "b": np.array([1, 2, 3, 4], np.float32)}, ["Mul", "Relu"]),
    ("g (float[4] x) => (float[4] y) { t = Div(x, a)\n u = Div(t, b)\n y = Relu(u) }",
     {"a": np.array(3.0, np.float32), "b": np.array(7.0, np.float32)}, ["Div", "Relu"]),
    ("g (int64[4] x) => (int64[4] y) { t = Mul(x, a)\n u = Add(t, b)\n v = Sub(u, b)\n y = Neg(v) }",
     {"a": np.array(3, np.int64), "b": np.array(5, np.int64)}, ["Mul", "Add", "Neg"]),
])
def test_merge_constant_arithmetic(text, inits, ops):
    m = _parse(H + text, **inits)
    assert _codes(m)["GRF415"] >= 1
    outcome, out = rewrite("merge-constant-arithmetic", m, exact=False)
    assert _ops(out) == ops
    assert "GRF415" not in _codes(out)


@pytest.mark.parametrize("text,inits", [
    ("g (float[4] x) => (float[4] y, float[4] t) { t = Mul(x, a)\n y = Mul(t, b) }", {}),
    ("g (int64[4] x) => (int64[4] y) { t = Div(x, ai)\n y = Div(t, bi) }", {}),
    ("g (float[4] x) => (float[4] y) { t = Sub(a, x)\n y = Add(t, b) }", {}),
])
def test_merge_constant_arithmetic_does_not_apply(text, inits):
    m = _parse(H + text, a=np.array(2.0, np.float32), b=np.array(0.25, np.float32),
               ai=np.array(3, np.int64), bi=np.array(2, np.int64))
    outcome, _ = rewrite("merge-constant-arithmetic", m)
    assert not outcome.changed


def test_merge_constant_arithmetic_through_the_pipeline():
    m = _parse(H + "g (float[4] x) => (float[4] y) { t = Mul(x, a)\n u = Mul(t, b)\n y = Relu(u) }",
               a=np.array(3.0, np.float32), b=np.array(0.5, np.float32))
    res = _through_pipeline(m, "merge-constant-arithmetic")
    assert _ops(res.model) == ["Mul", "Relu"]


def test_fold_shape_computations_writes_out_a_minus_one_beside_copied_dims():
    # Concat(b, s, -1, 64) on [batch, seq, 768]: [0, 0, -1, 64] would be ambiguous for an empty batch
    # (SHP205); the -1 is 768 / 64 = 12
    m = _parse(H + """g (float[batch,seq,768] x) => (float[batch,seq,12,64] y) {
        s = Shape<end = 2>(x)
        tail = Constant<value = int64[2] {-1, 64}>()
        shape = Concat<axis = 0>(s, tail)
        y = Reshape(x, shape)
    }""")
    outcome, out = rewrite("fold-shape-computations", m)
    target = next(t for t in out.graph.initializer if t.name == out.graph.node[0].input[1])
    assert numpy_helper.to_array(target).tolist() == [0, 0, 12, 64]
    assert "SHP205" not in _codes(out)


# ----------------------------------------------------------------------------
# fold-bias-add (GRF417)
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("text,inits,ops", [
    ("g (float[2,3,8,8] x) => (float[2,4,8,8] y) { c = Conv<pads = [1, 1, 1, 1]>(x, w)\n y = Add(c, b) }",
     {"w": (4, 3, 3, 3), "b": (1, 4, 1, 1)}, ["Conv"]),
    ("g (float[2,3,8,8] x) => (float[2,4,8,8] y) { c = Conv<pads = [1, 1, 1, 1]>(x, w, cb)\n y = Add(b, c) }",
     {"w": (4, 3, 3, 3), "cb": (4,), "b": (4, 1, 1)}, ["Conv"]),
    ("g (float[2,4,4,4] x) => (float[2,6,5,5] y) { c = ConvTranspose<group = 2>(x, w)\n y = Add(c, b) }",
     {"w": (4, 3, 2, 2), "b": (1, 6, 1, 1)}, ["ConvTranspose"]),
    ("g (float[5,3] x) => (float[5,4] y) { h = MatMul(x, w)\n y = Add(h, b) }", {"w": (3, 4), "b": (4,)}, ["Gemm"]),
])
def test_fold_bias_add(text, inits, ops):
    rng = np.random.default_rng(5)
    m = _parse(H + text, **{k: rng.standard_normal(shape).astype(np.float32) for k, shape in inits.items()})
    assert _codes(m)["GRF417"] == 1
    outcome, out = rewrite("fold-bias-add", m, exact=False)
    assert _ops(out) == ops
    assert "GRF417" not in _codes(out)


@pytest.mark.parametrize("text,inits", [
    ("g (float[1,2,4,4] x) => (float[1,2,4,4] y) { c = Conv(x, w)\n y = Add(c, b) }", {"w": (2, 2, 1, 1), "b": (4,)}),
    ("g (float[1,2,4,4] x) => (float[1,2,4,4] y, float[1,2,4,4] c) { c = Conv(x, w)\n y = Add(c, b) }",
     {"w": (2, 2, 1, 1), "b": (1, 2, 1, 1)}),
    ("g (float[2,3,2] x) => (float[2,3,2] y) { h = MatMul(x, w)\n y = Add(h, b) }", {"w": (2, 2), "b": (2,)}),
])
def test_fold_bias_add_does_not_apply(text, inits):
    rng = np.random.default_rng(5)
    m = _parse(H + text, **{k: rng.standard_normal(shape).astype(np.float32) for k, shape in inits.items()})
    assert "GRF417" not in _codes(m)
    outcome, _ = rewrite("fold-bias-add", m)
    assert not outcome.changed


def test_fold_bias_add_then_batch_norm_through_the_pipeline():
    # ConvTranspose -> Add(bias) -> BatchNormalization (Paddle's export): the bias goes into the layer,
    # then the normalization can be folded too
    rng = np.random.default_rng(6)
    m = _parse(H + "g (float[1,4,4,4] x) => (float[1,4,8,8] y) { c = ConvTranspose<strides = [2, 2]>(x, w)\n"
               " a = Add(c, cb)\n y = BatchNormalization(a, s, b, m, v) }",
               w=rng.standard_normal((4, 4, 2, 2)).astype(np.float32), cb=rng.standard_normal((1, 4, 1, 1)).astype(np.float32),
               **_bn_params(4))
    res = _through_pipeline(m, "fold-bias-add")
    assert _ops(res.model) == ["ConvTranspose"]


# ----------------------------------------------------------------------------
# merge-slices (GRF418)
# ----------------------------------------------------------------------------
def _i64(*v):
    return np.array(v, np.int64)


@pytest.mark.parametrize("text,inits,ops", [
    # space-to-depth (YOLO's stem): each of two Slices on the height read by two Slices on the width
    ("g (float[1,3,8,8] x) => (float[1,12,4,4] y) { a = Slice(x, s0, big, a2, st2)\n b = Slice(x, s1, big, a2, st2)\n"
     " a0 = Slice(a, s0, big, a3, st2)\n a1 = Slice(a, s1, big, a3, st2)\n b0 = Slice(b, s0, big, a3, st2)\n"
     " b1 = Slice(b, s1, big, a3, st2)\n y = Concat<axis = 1>(a0, b0, a1, b1) }",
     {"s0": _i64(0), "s1": _i64(1), "big": _i64(2**63 - 1), "a2": _i64(2), "a3": _i64(3), "st2": _i64(2)},
     ["Slice"] * 4 + ["Concat"]),
    # same axis, steps 1: [2:10] then [1:4] is [3:6]; a full-range slice first
    ("g (float[4,12] x) => (float[4,3] y) { f = Slice(x, s0, big, a0)\n t = Slice(f, s2, e10, a1)\n y = Slice(t, s1, e4, a1) }",
     {"s0": _i64(0), "s1": _i64(1), "s2": _i64(2), "e4": _i64(4), "e10": _i64(10), "big": _i64(2**63 - 1),
      "a0": _i64(0), "a1": _i64(1)}, ["Slice"]),
])
def test_merge_slices(text, inits, ops):
    m = _parse(H + text, **inits)
    assert _codes(m)["GRF418"] >= 1
    outcome, out = rewrite("merge-slices", m)
    assert _ops(out) == ops
    assert "GRF418" not in _codes(out)


def test_merge_slices_does_not_merge_stepped_slices_on_one_axis():
    m = _parse(H + "g (float[8] x) => (float[2] y) { t = Slice(x, s0, e8, a0, st2)\n y = Slice(t, s0, e2, a0) }",
               s0=_i64(0), e8=_i64(8), a0=_i64(0), st2=_i64(2), e2=_i64(2))
    outcome, _ = rewrite("merge-slices", m)
    assert not outcome.changed


def test_merge_slices_through_the_pipeline():
    m = _parse(H + "g (float[4,8] x) => (float[2,4] y) { t = Slice(x, s0, e2, a0)\n y = Slice(t, s0, e4, a1) }",
               s0=_i64(0), e2=_i64(2), a0=_i64(0), a1=_i64(1), e4=_i64(4))
    res = _through_pipeline(m, "merge-slices")
    assert _ops(res.model) == ["Slice"]


# Position embeddings sliced to the sequence length: ONNX's inference loses the sequence dim at the
# Add (`seq` against the slice's unknown length); ONNX Runtime's symbolic inference names it
# `Min(512, seq)` and, as both broadcast, merges it with `seq`: sound, as they differ only for
# sequences the model cannot run (longer than 512).
POSITIONS = H + """g (float[batch,seq,8] x) => (float[batch,seq,2,4] y) {
    s = Shape(x)
    i1 = Constant<value = int64 {1}>()
    n = Gather(s, i1)
    ax = Constant<value = int64[1] {0}>()
    nu = Unsqueeze(n, ax)
    p = Slice(pe, zero, nu, one)
    h = Add(x, p)
    i0 = Constant<value = int64 {0}>()
    b = Gather(s, i0)
    bu = Unsqueeze(b, ax)
    tail = Constant<value = int64[2] {2, 4}>()
    shape = Concat<axis = 0>(bu, nu, tail)
    y = Reshape(h, shape)
}"""


def _positions(text: str = POSITIONS) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    return _parse(text, pe=rng.standard_normal((1, 512, 8)).astype(np.float32), zero=np.array([0], np.int64),
                  one=np.array([1], np.int64))


def test_fold_shape_computations_uses_symbolic_shape_inference():
    m = _positions()
    assert "GRF409" not in _codes(m)  # ONNX's own inference does not know h's dims: check does not see it
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 5, 8)).astype(np.float32)}
    outcome, out = rewrite("fold-shape-computations", m, feeds=feeds)
    reshape = next(n for n in out.graph.node if n.op_type == "Reshape")
    inits = {t.name: numpy_helper.to_array(t).tolist() for t in out.graph.initializer}
    assert inits[reshape.input[1]] == [0, 0, 2, 4]
    assert _ops(out).count("Shape") == 1  # the Slice still reads the sequence length
    other = {"x": np.random.default_rng(2).standard_normal((3, 11, 8)).astype(np.float32)}
    np.testing.assert_array_equal(prove.run(m, other)["y"], prove.run(out, other)["y"])


def test_fold_shape_computations_runs_without_a_finding_in_the_pipeline():
    res = _through_pipeline(_positions(), "fold-shape-computations")
    assert _ops(res.model).count("Shape") == 1 and "Concat" not in _ops(res.model)


def test_fold_shape_computations_refuses_a_merge_a_valid_input_breaks():
    # h = x + z with z's first dim `n`: symbolic inference would merge `batch` and `n`, which differ
    # whenever one of them is 1 (valid broadcasting): the Reshape's shape must stay computed
    m = _parse(H + """g (float[batch,seq,8] x, float[n,seq,8] z) => (float[m,seq,2,4] y) {
        h = Add(x, z)
        s = Shape(x)
        i0 = Constant<value = int64[2] {0, 1}>()
        bs = Gather(s, i0)
        tail = Constant<value = int64[2] {2, 4}>()
        shape = Concat<axis = 0>(bs, tail)
        y = Reshape(h, shape)
    }""")
    from onnxdoctor.rewrites.shapes import _symbolic_types

    assert _symbolic_types(m) is None
    outcome, _ = rewrite("fold-shape-computations", m,
                         feeds={"x": np.ones((1, 3, 8), np.float32), "z": np.ones((1, 3, 8), np.float32)})
    assert not outcome.changed


def test_symbolic_shape_inference_leaves_no_file_behind(tmp_path, monkeypatch):
    # ONNX Runtime's own infer_shapes saves the partial model into the working directory when it
    # cannot finish; onnxdoctor drives it without that
    monkeypatch.chdir(tmp_path)
    from onnxdoctor.rewrites.shapes import _symbolic_types

    m = _parse(H + 'g (float[batch,4] x) => (float[batch,4] y) { y = Relu(x) }')
    m.graph.node[0].op_type, m.graph.node[0].domain = "Mystery", "custom.domain"
    m.opset_import.add(domain="custom.domain", version=1)
    assert _symbolic_types(m) is None
    assert list(tmp_path.iterdir()) == []
