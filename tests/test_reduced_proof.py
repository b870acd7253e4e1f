"""`fix` proves rewrites that do not depend on the input size (Rewrite.size_independent) at a reduced
size when the model's image input is static and large (inputs.reducible_axes): the activations of
ONNX Runtime's runs shrink with it, the rewrites' arithmetic does not. Any other rewrite, --data,
--shape, --full-size-proof or a precision conversion keeps the declared size."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnx.parser
import onnxruntime as ort
from onnx import numpy_helper

from onnxdoctor import api
from onnxdoctor import rewrites as rewrites_pkg
from onnxdoctor.fix import FixOptions, fix_model
from onnxdoctor.inputs import (
    REDUCE_FROM_POSITIONS,
    reduced_plan,
    reducible_axes,
    with_dynamic_axes,
)
from onnxdoctor.rewrites import all_rewrites
from onnxdoctor.rewrites.simplify import FoldBatchNorm

H = '<ir_version: 8, opset_import: ["" : 17]>\n'
RNG = np.random.default_rng(0)


def _conv_bn(h: int, w: int, tail: str = "", out: str = "y", extra_out: str = "") -> onnx.ModelProto:
    """Conv + BatchNormalization (fold-batch-norm folds it: size-independent) on a static 1x3xHxW input."""
    m = onnx.parser.parse_model(H + f"""g (float[1,3,{h},{w}] x) => (float[1,8,{h // 2},{w // 2}] {out}{extra_out}) {{
        c = Conv<strides = [2, 2], pads = [1, 1, 1, 1], kernel_shape = [3, 3]>(x, wt)
        b = BatchNormalization(c, s, bias, mean, var)
        {"y = Relu(b)" if not tail else tail}
    }}""")
    m.graph.initializer.extend([
        numpy_helper.from_array(RNG.standard_normal((8, 3, 3, 3)).astype(np.float32), "wt"),
        numpy_helper.from_array(RNG.uniform(0.5, 1.5, 8).astype(np.float32), "s"),
        numpy_helper.from_array(RNG.standard_normal(8).astype(np.float32), "bias"),
        numpy_helper.from_array(RNG.standard_normal(8).astype(np.float32), "mean"),
        numpy_helper.from_array(RNG.uniform(0.5, 1.5, 8).astype(np.float32), "var"),
    ])
    onnx.checker.check_model(m, full_check=True)
    return m


def _run(m: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})


def test_a_large_static_image_input_is_reducible_a_small_one_or_a_sequence_is_not():
    assert 256 * 256 >= REDUCE_FROM_POSITIONS
    assert reducible_axes(_conv_bn(256, 256)) == {"x": (2, 3)}
    assert reducible_axes(_conv_bn(64, 64)) == {}  # its activations are small anyway
    seq = onnx.parser.parse_model(H + """g (float[1,512,512] x) => (float[1,512,512] y) { y = Relu(x) }""")
    assert reducible_axes(seq) == {}  # reaches no Conv or pooling: not an image's spatial axes


def test_the_reduced_plan_runs_smaller_and_says_from_what():
    m = _conv_bn(256, 256)
    plan = reduced_plan(m, reducible_axes(m))
    assert plan is not None and plan.reduced_from == {"x": (1, 3, 256, 256)}
    [choice] = plan.choices
    assert choice.shape[:2] == (1, 3) and choice.shape[2] * choice.shape[3] < 256 * 256
    assert "reduced from the declared 1x3x256x256" in plan.describe()
    assert plan.to_dict()["reduced_from"] == {"x": [1, 3, 256, 256]}
    # the relaxed model declares no size of the original's: dynamic input axes, no output dims
    relaxed = with_dynamic_axes(m, {"x": (2, 3)})
    dims = relaxed.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[:2]] == [1, 3] and all(d.dim_param for d in dims[2:])
    assert not relaxed.graph.output[0].type.tensor_type.HasField("shape")


def test_a_dynamic_batch_stays_the_oracles_and_the_static_spatial_axes_are_reduced():
    m = _conv_bn(256, 256)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    m.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    assert reducible_axes(m) == {"x": (2, 3)}
    plan = reduced_plan(m, {"x": (2, 3)})
    assert plan is not None and plan.reduced_from == {"x": ("batch", 3, 256, 256)}
    assert "reduced from the declared batchx3x256x256" in plan.describe()
    m.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "width"
    assert reducible_axes(m) == {}  # a dynamic spatial axis: the oracle already picks a small size


def test_no_reduced_plan_when_the_model_runs_only_at_its_declared_size():
    # a Reshape to the declared size's numbers: no smaller input runs
    m = _conv_bn(256, 256, tail="""flat = Constant<value = int64[2] {1, 131072}>()
        r = Reshape(b, flat)
        back = Constant<value = int64[4] {1, 8, 128, 128}>()
        y = Reshape(r, back)""")
    assert reduced_plan(m, reducible_axes(m)) is None


def test_fix_proves_a_size_independent_fold_at_the_reduced_size_and_the_result_holds_at_the_declared_one():
    m = _conv_bn(256, 256)
    result = fix_model(m, FixOptions(rules="default", trt="10.15"))
    applied = [s.rewrite for s in result.steps if s.status == "applied"]
    assert "fold-batch-norm" in applied
    assert all(r.size_independent for r in all_rewrites() if r.name in applied)
    assert result.inputs.reduced_from == {"x": (1, 3, 256, 256)}
    assert result.proof is not None and result.proof.passed
    # the claim the reduced proof stands for: the fixed model computes the same at the declared size
    x = RNG.standard_normal((1, 3, 256, 256)).astype(np.float32)
    assert not any(n.op_type == "BatchNormalization" for n in result.model.graph.node)
    np.testing.assert_allclose(_run(result.model, x)[0], _run(m, x)[0], atol=1e-4, rtol=1e-4)


def test_a_size_dependent_rewrite_in_the_first_iteration_keeps_the_declared_size_from_the_start():
    # fold-shape-computations reads the static dims (the Expand to b's own shape goes because b's
    # declared shape says so): its proof needs the declared size's reference, so no smaller one is run
    m = _conv_bn(256, 256, tail="""sh = Shape(b)
        e = Expand(b, sh)
        y = Relu(e)""")
    logged: list[str] = []
    result = fix_model(m, FixOptions(rules="default", trt="10.15"), log=logged.append)
    applied = [s.rewrite for s in result.steps if s.status == "applied"]
    assert {"fold-shape-computations", "fold-batch-norm"} <= set(applied)
    assert result.inputs.reduced_from is None
    assert [c.shape for c in result.inputs.choices] == [(1, 3, 256, 256)]
    assert not any(line.startswith("finding smaller inputs") for line in logged)
    assert result.proof is not None and result.proof.passed


class WrongFoldBatchNorm(FoldBatchNorm):
    """fold-batch-norm, plus a deliberate error: the folded bias (`wt_bias_bn`: the Conv had none) changes sign."""

    def apply(self, model, ctx):
        out = super().apply(model, ctx)
        for t in out.model.graph.initializer:
            if t.name == "wt_bias_bn":
                t.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(t), t.name))
        return out


def test_a_proof_that_fails_at_the_reduced_size_is_decided_at_the_declared_size(monkeypatch):
    table = tuple(WrongFoldBatchNorm() if r.name == "fold-batch-norm" else r for r in rewrites_pkg.all_rewrites())
    monkeypatch.setattr(rewrites_pkg, "all_rewrites", lambda: table)
    logged: list[str] = []
    result = fix_model(_conv_bn(256, 256), FixOptions(rules="default", trt="10.15"), log=logged.append)
    step = next(s for s in result.steps if s.rewrite == "fold-batch-norm")
    assert step.status == "rolled-back" and step.reason.startswith("outputs differ")
    assert "a proof needs the model's declared input size" in logged
    # what was decided, on what: the declared size's inputs, its reference computed once
    assert result.inputs.reduced_from is None and [c.shape for c in result.inputs.choices] == [(1, 3, 256, 256)]
    assert sum(line.startswith("finding inputs the model runs on") for line in logged) == 1


def test_full_size_proof_and_data_keep_the_declared_size(tmp_path):
    m = _conv_bn(256, 256)
    assert fix_model(m, FixOptions(rules="default", trt="10.15", full_size_proof=True)).inputs.reduced_from is None
    data = tmp_path / "x.npz"
    np.savez(data, x=RNG.standard_normal((1, 3, 256, 256)).astype(np.float32))
    assert fix_model(m, FixOptions(rules="default", trt="10.15", data=str(data))).inputs.reduced_from is None


def test_the_cli_reports_the_reduced_size_and_full_size_proof_turns_it_off(tmp_path):
    # in a child process: the fix command sets process-wide allocator options (_memory)
    src = tmp_path / "m.onnx"
    onnx.save(_conv_bn(256, 256), src)

    def fix(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "onnxdoctor", "fix", str(src), "--trt", "10.15", *args],
                              capture_output=True, text=True, timeout=300)

    r = fix("-o", str(tmp_path / "a.onnx"))
    assert r.returncode == 0, r.stderr
    assert "reduced from the declared 1x3x256x256" in r.stdout
    r = fix("-o", str(tmp_path / "b.onnx"), "--full-size-proof", "--format", "json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert "reduced_from" not in report["inputs"]
    assert report["inputs"]["inputs"][0]["shape"] == [1, 3, 256, 256]
    assert api.fix(str(src), None, trt="10.15").inputs.reduced_from is not None
