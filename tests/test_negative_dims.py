"""A negative dim in a value annotation must not reach onnx's shape inference: its Slice inference
asserts on one (`std::clamp` with hi < lo) and the whole process aborts (fuzz seed 2038, case 480:
`profile --no-validate` on a mutated Llama export exited with SIGABRT and left its temporary folder).
The commands run in a child process here: an abort would take pytest down with it."""

from __future__ import annotations

import subprocess

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import numpy_helper

from onnxdoctor import _onnx

from .conftest import onnxdoctor_exe
from .test_hostile import _hashes, _judge

I64 = onnx.TensorProto.INT64


def _shape_slice(annotated_dim: int) -> onnx.ModelProto:
    """y = Slice(Shape(x), -1, -10, step -1), the Shape's output annotated with `annotated_dim`."""
    nodes = [oh.make_node("Shape", ["x"], ["s"]), oh.make_node("Slice", ["s", "st", "en", "ax", "step"], ["y"])]
    inits = [numpy_helper.from_array(np.array([v], np.int64), n) for n, v in
             (("st", -1), ("en", -10), ("ax", 0), ("step", -1))]
    g = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 4])],
                      [oh.make_tensor_value_info("y", I64, [None])], initializer=inits,
                      value_info=[oh.make_tensor_value_info("s", I64, [annotated_dim])])
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])


@pytest.mark.parametrize("command", ["check", "check -j 1", "fix", "profile --no-validate", "profile"])
def test_a_negative_annotated_dim_does_not_abort_the_command(tmp_path, command):
    folder = tmp_path / "in"
    folder.mkdir()
    model = folder / "neg.onnx"
    onnx.save(_shape_slice(-5), model)
    before = _hashes(folder)
    out = tmp_path / "fixed.onnx"
    args = [*command.split(" ", 1)[:1], str(model), *command.split(" ")[1:], "--isolated"]
    if command == "fix":
        args += ["-o", str(out)]
    proc = subprocess.run([*onnxdoctor_exe(), *args], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode >= 0, (proc.returncode, proc.stderr[-500:])  # not killed by a signal
    _judge(proc, model, allow=(0, 1))
    assert _hashes(folder) == before
    if command == "fix":
        fixed = onnx.load(out)
        onnx.checker.check_model(fixed, full_check=True)  # the annotation is gone, the graph unchanged
        assert [n.op_type for n in fixed.graph.node] == ["Shape", "Slice"]
        assert all(d.dim_value >= 0 for vi in fixed.graph.value_info for d in vi.type.tensor_type.shape.dim)


def test_without_negative_dims_clears_them_in_every_graph_and_keeps_the_rest():
    body = oh.make_graph([oh.make_node("Identity", ["a"], ["b"])], "body", [],
                         [oh.make_tensor_value_info("b", I64, [-2, 3])],
                         value_info=[oh.make_tensor_value_info("a2", I64, [7, -1])])
    then = oh.make_graph([oh.make_node("Identity", ["a"], ["c"])], "then", [], [oh.make_tensor_value_info("c", I64, [3])])
    node = oh.make_node("If", ["cond"], ["r"], then_branch=then, else_branch=body)
    g = oh.make_graph([node], "g", [oh.make_tensor_value_info("cond", onnx.TensorProto.BOOL, [])],
                      [oh.make_tensor_value_info("r", I64, [None])],
                      value_info=[oh.make_tensor_value_info("a", I64, [-5, 3, "k"])])
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])
    data = m.SerializeToString()
    assert _onnx.may_have_negative_dims(data)
    out = onnx.ModelProto.FromString(_onnx.without_negative_dims(data))

    def dims(vi):
        return [d.dim_value if d.HasField("dim_value") else d.dim_param or None for d in vi.type.tensor_type.shape.dim]

    assert dims(out.graph.value_info[0]) == [None, 3, "k"]
    els = next(a.g for a in out.graph.node[0].attribute if a.name == "else_branch")
    assert dims(els.output[0]) == [None, 3] and dims(els.value_info[0]) == [7, None]
    # the rest of the model is untouched
    m2 = onnx.ModelProto.FromString(data)
    els2 = next(a.g for a in m2.graph.node[0].attribute if a.name == "else_branch")
    for vi in (m2.graph.value_info[0], els2.output[0], els2.value_info[0]):
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_value") and d.dim_value < 0:
                d.ClearField("dim_value")
    assert out == m2


def test_negative_attribute_values_do_not_trigger_the_rewrite():
    """axis = -1 (an AttributeProto's field 3) is not a dim: the bytes go to inference unchanged."""
    m = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
        g (float[2, 3] x) => (float[2, 3] y) { y = Softmax <axis = -1> (x) }""")
    data = m.SerializeToString()
    assert not _onnx.may_have_negative_dims(data)
    assert _onnx.without_negative_dims(data) is data
    assert not _onnx.may_have_negative_dims(_shape_slice(5).SerializeToString())


def test_without_negative_dims_reaches_local_functions():
    f = oh.make_function("local", "f", ["a"], ["b"], [oh.make_node("Identity", ["a"], ["b"])],
                         opset_imports=[oh.make_opsetid("", 17)])
    f.value_info.extend([oh.make_tensor_value_info("b", I64, [-3, 2])])
    g = oh.make_graph([oh.make_node("f", ["x"], ["y"], domain="local")], "g",
                      [oh.make_tensor_value_info("x", I64, [2])], [oh.make_tensor_value_info("y", I64, [2])])
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid("local", 1)], functions=[f],
                      ir_version=10)
    data = m.SerializeToString()
    assert _onnx.may_have_negative_dims(data)
    out = onnx.ModelProto.FromString(_onnx.without_negative_dims(data))
    dims = out.functions[0].value_info[0].type.tensor_type.shape.dim
    assert [d.HasField("dim_value") for d in dims] == [False, True] and dims[1].dim_value == 2
    assert out.functions[0].input == ["a"] and out.graph == m.graph
