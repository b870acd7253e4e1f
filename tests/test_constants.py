"""The constant evaluator (model.ConstantView): one answer whatever the order the file lists the
nodes in, with and without shape inference."""

from __future__ import annotations

import itertools
import random

import numpy as np
import onnx
import onnx.parser
import pytest

from onnxdoctor.model import Model, from_proto

HEADER = '<ir_version: 8, opset_import: ["" : 17]>\n'


def _model(signature: str, body: list[str]) -> onnx.ModelProto:
    return onnx.parser.parse_model(HEADER + signature + " {\n" + "\n".join(body) + "\n}")


def _answers(m: Model, names) -> dict:
    cv = m.constants(m.main)
    vals = {}
    for n in names:
        v = cv.value(n)
        vals[n] = None if v is None else v.tolist()
    computed = sorted(o for k in cv.computed_constants for o in m.main.node_outputs[k])
    return {"const": {n: cv.is_constant(n) for n in names}, "value": vals, "computed": computed}


@pytest.mark.parametrize("infer", [False, True], ids=["no-inference", "inference"])
@pytest.mark.parametrize("swapped", [False, True], ids=["sorted", "unsorted"])
def test_shape_of_an_identity_of_an_initializer(infer, swapped):
    """The issue's example: `c = Identity(w_init); s = Shape(c)` is constant in either order; its value
    is known when shape inference gives `c` a static shape."""
    body = ["c = Identity(w_init)", "s = Shape(c)"]
    m = from_proto(_model("g (float[2] x) => (int64[1] s) <float[2] w_init = {1.0, 2.0}>", body[::-1] if swapped else body),
                   infer_shapes=infer)
    assert m.main.topo_sorted is not swapped
    cv = m.constants(m.main)
    assert cv.is_constant("s")  # asked first: the answer must not depend on what was asked before
    assert cv.is_constant("c")
    assert (cv.value("s") is not None) is infer
    if infer:
        assert cv.value("s").tolist() == [2]


BODY = [
    "c = Identity(w)",  # constant
    "s = Shape(c)",  # constant: of a constant (and of a static shape with inference)
    "t = Add(s, one)",  # constant, value [3] with inference
    "sx = Shape(x)",  # not constant: x has a symbolic dim
    "u = Concat<axis = 0>(t, sx)",  # not constant
    "k = Mul(t, t)",  # constant
]
SIGNATURE = "g (float[N] x) => (int64[2] u, int64[1] k) <float[2] w = {1.0, 2.0}, int64[1] one = {1}>"
NAMES = ["c", "s", "t", "sx", "u", "k", "x", "w", "one"]


@pytest.mark.parametrize("infer", [False, True], ids=["no-inference", "inference"])
def test_every_node_order_gives_the_same_answers(infer):
    sorted_answers = _answers(from_proto(_model(SIGNATURE, BODY), infer_shapes=infer), NAMES)
    assert sorted_answers["const"] == {"c": True, "s": True, "t": True, "sx": False, "u": False, "k": True,
                                       "x": False, "w": True, "one": True}
    assert sorted_answers["computed"] == ["c", "k", "s", "t"]
    if infer:
        assert sorted_answers["value"]["k"] == [9]
    # ONNX shape inference needs sorted nodes: with inference, the shuffled graphs carry the sorted
    # graph's inferred types in value_info, as a file would.
    base = onnx.shape_inference.infer_shapes(_model(SIGNATURE, BODY)) if infer else _model(SIGNATURE, BODY)
    orders = list(itertools.permutations(BODY))
    assert len(orders) == 720
    for order in orders:
        m = from_proto(_with_order(base, order), infer_shapes=False)
        assert m.main.topo_sorted is (list(order) == BODY) or _sorted_anyway(order)
        assert _answers(m, NAMES) == sorted_answers, order


def _sorted_anyway(order) -> bool:
    defined = {"x", "w", "one"}
    for line in order:
        out, expr = (part.strip() for part in line.split("=", 1))
        args = expr[expr.index("(") + 1:expr.rindex(")")].split(",")
        if any(a.strip() not in defined for a in args):
            return False
        defined.add(out)
    return True


def _with_order(model: onnx.ModelProto, order) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    by_text = {n.output[0]: n for n in model.graph.node}
    del out.graph.node[:]
    out.graph.node.extend(by_text[line.split("=")[0].strip()] for line in order)
    return out


@pytest.mark.parametrize("swapped", [False, True], ids=["sorted", "unsorted"])
def test_a_long_constant_chain_in_any_order(swapped):
    """Values are computed inputs first without recursion: a 3,000-node chain (deeper than Python's
    recursion limit) has a value, also when the file lists the chain backwards."""
    n = 3000
    body = [f"a{i + 1} = Add(a{i}, one)" for i in range(n)]
    m = from_proto(_model("g (float[1] x) => (int64[1] a3000) <int64[1] a0 = {5}, int64[1] one = {1}>",
                          body[::-1] if swapped else body), infer_shapes=False)
    assert m.main.topo_sorted is not swapped
    cv = m.constants(m.main)
    assert cv.is_constant(f"a{n}")
    assert cv.value(f"a{n}").tolist() == [n + 5]
    assert len(cv.computed_constants) == n


def test_topological_order_of_an_unsorted_graph():
    body = list(BODY)
    random.Random(3).shuffle(body)
    m = from_proto(_model(SIGNATURE, body), infer_shapes=False)
    g = m.main
    assert not g.topo_sorted
    order = list(g.topo_order)
    assert sorted(order) == list(range(len(body)))
    seen = set(g.inputs) | set(g.initializers)
    for k in order:
        assert all(i in seen for i in g.node_inputs[k] if i), (k, g.node_inputs[k])
        seen.update(g.node_outputs[k])


@pytest.mark.parametrize("infer", [False, True], ids=["no-inference", "inference"])
@pytest.mark.parametrize("branch_first", [False, True], ids=["producer-first", "if-first"])
def test_subgraph_reads_an_outer_constant(infer, branch_first):
    """A branch's Shape and Add of a constant of the enclosing graph are constants of the branch."""
    body = [
        "c = Identity(w)",
        """y = If(cond) <
             then_branch = g1 () => (int64[1] a) { a = Shape(c) },
             else_branch = g2 () => (int64[1] b) { s = Shape(c) b = Add(s, one) }>""",
    ]
    m = from_proto(_model("g (bool cond) => (int64[1] y) <float[3] w = {1.0, 2.0, 3.0}, int64[1] one = {1}>",
                          body[::-1] if branch_first else body), infer_shapes=infer)
    then_g, else_g = m.graphs[1], m.graphs[2]
    assert then_g.path[-1].endswith("then_branch") and else_g.path[-1].endswith("else_branch")
    assert m.constants(then_g).is_constant("a")
    assert m.constants(else_g).is_constant("b")
    assert m.constants(else_g).is_constant("c")  # through the enclosing graph's view
    assert not m.constants(m.main).is_constant("y")
    b = m.constants(else_g).value("b")
    assert (b.tolist() if b is not None else None) == ([4] if infer else None)


def test_non_standard_and_graph_input_are_not_constant():
    m = from_proto(_model("g (float[2] x) => (float[2] z) <float[2] w = {1.0, 2.0}>",
                          ["y = com.example.Foo(w)", "z = Add(y, x)"]), infer_shapes=False)
    cv = m.constants(m.main)
    assert not cv.is_constant("y") and not cv.is_constant("z") and not cv.is_constant("x")
    assert cv.is_constant("w") and cv.value("w").tolist() == [1.0, 2.0]
    assert cv.computed_constants == []
    assert not cv.is_constant("no-such-tensor") and cv.value("no-such-tensor") is None


def test_an_initializer_that_is_also_an_input_counts_as_constant():
    m = from_proto(_model("g (float[2] x, float[2] w) => (float[2] y) <float[2] w = {1.0, 2.0}>", ["y = Neg(w)"]),
                   infer_shapes=False)
    cv = m.constants(m.main)
    assert cv.is_constant("w") and cv.is_constant("y")
    assert np.array_equal(cv.value("y"), [-1.0, -2.0])


def test_constant_foldable_subgraph_is_reported_at_the_same_node_in_any_order():
    """GRF401 reports a group at its topologically last node, not at the last one the file lists."""
    from onnxdoctor import check

    typed = onnx.shape_inference.infer_shapes(_model(SIGNATURE, BODY))
    for n in typed.graph.node:
        n.name = "node_" + n.output[0]

    def grf401(order):
        report = check(_with_order(typed, order), "10.15", select=["GRF401"], config=False)
        return [(f.message, f.location.node) for f in report.findings]

    expected = grf401(BODY)
    assert expected and expected[0][1] == "node_k", expected
    for seed in range(5):
        order = list(BODY)
        random.Random(seed).shuffle(order)
        assert grf401(order) == expected, order
