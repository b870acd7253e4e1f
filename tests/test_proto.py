"""The proto toolkit (onnxdoctor._proto): graph walking, body reads, names, opset, topological order."""

from __future__ import annotations

import subprocess
import sys

import onnx
import onnx.parser
from onnx import helper

from onnxdoctor import _proto
from onnxdoctor.model import from_proto

NESTED = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 17]>
g (bool c, float[2] x) => (float[2] y) {
  k = Constant<value = float[2] {1.0, 2.0}>()
  y = If(c) <
    then_branch = t () => (float[2] a) {
      a = If(c) <
        then_branch = tt () => (float[2] p) { p = Add(x, k) },
        else_branch = te () => (float[2] q) { q = Identity(x) }
      >
    },
    else_branch = e () => (float[2] b) { b = Neg(k) }
  >
}
""")


def test_graph_protos_keys_are_the_check_views_paths():
    by_path = _proto.graph_protos(NESTED)
    view = from_proto(NESTED, infer_shapes=False)
    assert set(by_path) == {g.path for g in view.graphs if g.proto is not None}
    assert len(by_path) == 5
    assert [len(g.node) for g in _proto.graphs(NESTED.graph)] == [2, 1, 1, 1, 1]
    assert _proto.node_count(NESTED) == 6


def test_body_reads_reach_nested_bodies_and_outer_reads_are_ordered():
    if_node = NESTED.graph.node[1]
    assert _proto.has_body(if_node) and not _proto.has_body(NESTED.graph.node[0])
    assert {"x", "k"} <= _proto.body_reads(if_node)
    assert {"x", "k"} <= _proto.nested_reads(NESTED.graph.node)
    then = next(_proto.bodies(if_node))
    assert _proto.outer_reads(then) == ["c", "x", "k"]  # the inner If reads c too


def test_unique_name_avoids_every_name_of_graphs_and_functions():
    taken = _proto.taken_names(NESTED)
    assert {"x", "k", "p", "q", "y", "a", "b"} <= taken
    assert _proto.unique_name(taken, "k") == "k_1"
    assert _proto.unique_name(taken, "k") == "k_2"
    assert "k_2" in taken


def test_default_opset():
    assert _proto.default_opset(NESTED) == 17
    m = helper.make_model(helper.make_graph([], "g", [], []), opset_imports=[helper.make_opsetid("com.x", 1)])
    assert _proto.default_opset(m) == 0
    assert _proto.default_opset(m, 1) == 1


def test_toposorted_puts_producers_of_body_reads_first():
    body = helper.make_graph([helper.make_node("Identity", ["late"], ["o"])], "b", [],
                             [helper.make_tensor_value_info("o", onnx.TensorProto.FLOAT, [1])])
    use = helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body)
    make = helper.make_node("Relu", ["x"], ["late"])
    first = helper.make_node("Neg", ["x"], ["n"])
    ordered = _proto.toposorted([use, first, make])
    assert [n.op_type for n in ordered] == ["Relu", "If", "Neg"]
    assert _proto.toposorted([first, make, use]) == [first, make, use]


def test_importing_the_toolkit_does_not_import_onnx():
    code = "import sys, onnxdoctor._proto; print('onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
