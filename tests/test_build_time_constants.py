"""Build-time constants: runtime-looking inputs (axes, pads, repeats, shapes) that are constant
foldable, ops a release cannot import whose inputs are all constants (window ops, MelWeightMatrix),
and sparse constants stored dense. Each: the finding names the rewrite, fix repairs it, the proof
passes, the result passes the full check; not applied where a value is only known at run time."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
from onnx import TensorProto, helper, numpy_helper

from onnxdoctor.engine import analyze
from onnxdoctor.fix import FixOptions, fix_model
from onnxdoctor.model import from_proto
from onnxdoctor.registry import all_rules
from onnxdoctor.rewrites import RewriteContext, get_rewrite
from onnxdoctor.rewrites.constants import dense
from onnxdoctor.target import Target

H = '<ir_version: 8, opset_import: ["" : 17]>\n'


def _findings(m, trt):
    return analyze(from_proto(m), Target.make(trt), all_rules())


def _fixed(m, trt, **kw):
    res = fix_model(m, FixOptions(trt=trt, **kw))
    assert res.proof is not None and res.proof.passed, res.proof and res.proof.summary()
    onnx.checker.check_model(res.model, full_check=True)
    assert not [f for f in res.after if str(f.severity) == "error"], [(f.code, f.message) for f in res.after]
    return res


def test_runtime_looking_axes_pads_repeats_and_shapes_are_folded_into_initializers():
    # Constant-of-Constant and Shape chains on static shapes feeding inputs the importer wants as
    # initializers (TRT122 warnings): after fix they are initializers.
    m = onnx.parser.parse_model(H + """g (float[2,3,4] x) => (float[2,1,4] r, float[2,3,8] t, float[2,5,4] p, float[6,4] s) {
      a = Constant<value = int32[1] {1}>()
      axes = Cast<to = 7>(a)
      r = ReduceSum<keepdims = 1>(x, axes)
      sh = Shape(x)
      one = Constant<value = int64[1] {1}>()
      two = Constant<value = int64[1] {2}>()
      reps = Concat<axis = 0>(one, one, two)
      t = Tile(x, reps)
      z = Constant<value = int64[1] {0}>()
      pads = Concat<axis = 0>(z, one, z, z, one, z)
      p = Pad(x, pads)
      i0 = Constant<value = int64[1] {0}>()
      d0 = Gather(sh, i0)
      i1 = Constant<value = int64[1] {1}>()
      d1 = Gather(sh, i1)
      rows = Mul(d0, d1)
      m1 = Constant<value = int64[1] {-1}>()
      shape = Concat<axis = 0>(rows, m1)
      s = Reshape(x, shape)
    }""")
    assert any(f.code == "TRT122" for f in _findings(m, "10.15"))
    res = _fixed(m, "10.15")
    assert [n.op_type for n in res.model.graph.node] == ["ReduceSum", "Tile", "Pad", "Reshape"]
    inits = {t.name for t in res.model.graph.initializer}
    assert all(n.input[1] in inits for n in res.model.graph.node)


def test_window_and_mel_weight_ops_with_constant_inputs_are_folded_where_the_release_lacks_them():
    m = onnx.parser.parse_model(H + """g (float[4,16] x, float[9] f) => (float[4,16] y, float[8] mel)
        <int64 n = {16}, int64 nmel = {8}, int64 dft = {16}, int64 sr = {16000}, float lo = {0.0}, float hi = {8000.0}> {
      w = HannWindow(n)
      y = Mul(x, w)
      m = MelWeightMatrix(nmel, dft, sr, lo, hi)
      mel = MatMul(f, m)
    }""")
    trt101 = [f for f in _findings(m, "8.6") if f.code == "TRT101"]
    assert {f.location.op_type for f in trt101} == {"HannWindow", "MelWeightMatrix"}
    assert all(f.fix is not None and f.fix.rewrite == "fold-constants" for f in trt101)
    res = _fixed(m, "8.6")
    assert [n.op_type for n in res.model.graph.node] == ["Mul", "MatMul"]


def test_a_window_of_runtime_size_names_no_fold():
    m = onnx.parser.parse_model(H + "g (int64 n) => (float[?] w) { w = HannWindow(n) }")
    trt101 = [f for f in _findings(m, "8.6") if f.code == "TRT101"]
    assert trt101 and all(f.fix is None for f in trt101)


def _sparse_model() -> onnx.ModelProto:
    w = helper.make_sparse_tensor(numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "w"),
                                  numpy_helper.from_array(np.array([0, 4], np.int64), "w_idx"), [3, 3])
    c = helper.make_sparse_tensor(numpy_helper.from_array(np.array([5.0], np.float32), "c"),
                                  numpy_helper.from_array(np.array([[1, 2]], np.int64), "c_idx"), [2, 3])
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Constant", [], ["c"], sparse_value=c),
         helper.make_node("Add", ["h", "c"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], sparse_initializer=[w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def test_sparse_initializer_and_sparse_constant_are_stored_dense():
    m = _sparse_model()
    named = {(f.code, f.fix.rewrite if f.fix else None) for f in _findings(m, "10.15") if str(f.severity) == "error"}
    assert named == {("TRT111", "densify-sparse-constants"), ("TRT121", "densify-sparse-constants")}
    res = _fixed(m, "10.15")
    assert not res.model.graph.sparse_initializer
    w = numpy_helper.to_array(next(t for t in res.model.graph.initializer if t.name == "w"))
    np.testing.assert_array_equal(w, [[1, 0, 0], [0, 2, 0], [0, 0, 0]])


def test_dense_from_coordinates_and_linear_indices_agree():
    lin = helper.make_sparse_tensor(numpy_helper.from_array(np.array([3, 4], np.int32), "v"),
                                    numpy_helper.from_array(np.array([1, 5], np.int64), "i"), [2, 3])
    coo = helper.make_sparse_tensor(numpy_helper.from_array(np.array([3, 4], np.int32), "v"),
                                    numpy_helper.from_array(np.array([[0, 1], [1, 2]], np.int64), "i"), [2, 3])
    np.testing.assert_array_equal(dense(lin), dense(coo))
    np.testing.assert_array_equal(dense(lin), [[0, 3, 0], [0, 0, 4]])


def test_densify_leaves_a_model_without_sparse_values_alone():
    m = onnx.parser.parse_model(H + "g (float[2] x) => (float[2] y) { y = Relu(x) }")
    outcome = get_rewrite("densify-sparse-constants").apply(m, RewriteContext(target=Target.make("10.15")))
    assert not outcome.changed and "no sparse" in outcome.skipped[0]
