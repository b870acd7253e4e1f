"""`onnxdoctor fix`: safety and data contract, proof and rollback, through the installed CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

import onnxdoctor
from onnxdoctor.fix import FixOptions, fix_model, node_diff
from onnxdoctor.prove import generate_inputs, run


# Foldable chain feeding ReduceSum axes (TRT122 warning -> fold-constants), a DOUBLE detour
# (TRT112 -> cast-double-to-float, unsafe), an attention-style -1e9 mask (PRC301 with fp16 ->
# clamp-fp16-constants, unsafe) and a dead node.
SMALL = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[2,4] x) => (float[2,1] y, float[2,4] p) {
  a = Constant<value = int32[1] {1}>()
  axes = Cast<to = 7>(a)
  y = ReduceSum<keepdims = 1>(x, axes)
  d = Cast<to = 11>(x)
  e = Mul(d, two)
  f = Cast<to = 1>(e)
  masked = Add(f, mask)
  p = Softmax<axis = -1>(masked)
  dead = Relu(x)
}
"""


def small_model() -> onnx.ModelProto:
    m = onnx.parser.parse_model(SMALL)
    m.graph.initializer.extend([
        numpy_helper.from_array(np.array([2.0], np.float64), "two"),
        numpy_helper.from_array(np.array([[0, 0, -1e9, -1e9]] * 2, np.float32), "mask"),
    ])
    return m


def _ops(m):
    return [n.op_type for n in m.graph.node]


def test_pipeline_folds_and_cleans_and_proves():
    res = fix_model(small_model(), FixOptions(trt="10.15"))
    applied = [s.rewrite for s in res.steps if s.status == "applied"]
    assert "fold-constants" in applied
    assert "Relu" not in _ops(res.model) and "Constant" not in _ops(res.model)
    assert not any(f.code == "TRT122" for f in res.after)
    assert res.proof is not None and res.proof.passed
    # unsafe fixes were not applied without --unsafe-fixes
    assert "cast-double-to-float" not in applied and any(f.code == "TRT112" for f in res.after)


def test_unsafe_fixes_apply_and_are_proven():
    res = fix_model(small_model(), FixOptions(trt="10.15", unsafe=True, precision="fp16"))
    applied = {s.rewrite: s for s in res.steps if s.status == "applied"}
    assert {"cast-double-to-float", "clamp-fp16-constants"} <= set(applied)
    assert not any(f.code in ("TRT112", "PRC301") for f in res.after)
    assert all(s.proof.passed for s in applied.values())
    mask = next(t for t in res.model.graph.initializer if t.name == "mask")
    assert numpy_helper.to_array(mask).min() == -65504
    onnx.checker.check_model(res.model, full_check=True)


def test_value_info_repeating_an_output_without_a_shape_keeps_the_outputs_shape():
    """Old ONNX Runtime exports list graph outputs in value_info with a type but no shape;
    graphsurgeon took that entry over the output's, the result lost the output's shape and
    onnx.checker rejected every rewrite ("Field 'shape' of 'type' is required but missing")."""
    m = small_model()
    m.graph.value_info.append(onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None))
    res = fix_model(m, FixOptions(trt="10.15"))
    assert not [s for s in res.steps if s.status == "rolled-back"], [(s.rewrite, s.reason) for s in res.steps]
    assert "fold-constants" in {s.rewrite for s in res.steps if s.status == "applied"}
    y = next(o for o in res.model.graph.output if o.name == "y")
    assert [d.dim_value for d in y.type.tensor_type.shape.dim] == [2, 1]
    onnx.checker.check_model(res.model, full_check=True)


def test_rewrite_whose_proof_fails_is_rolled_back():
    # A huge constant that is *meant* to be huge: clamping it changes the output, so the proof fails.
    m = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[4] x) => (float[4] y) { y = Mul(x, big) }
    """)
    m.graph.initializer.append(numpy_helper.from_array(np.full(4, 1e6, np.float32), "big"))
    res = fix_model(m, FixOptions(trt="10.15", unsafe=True, precision="fp16"))
    step = next(s for s in res.steps if s.rewrite == "clamp-fp16-constants")
    assert step.status == "rolled-back" and "outputs differ" in step.reason
    assert numpy_helper.to_array(res.model.graph.initializer[0]).max() == 1e6  # untouched
    assert any(f.code == "PRC301" for f in res.after)


def test_result_matches_original_in_ort():
    orig = small_model()
    res = fix_model(orig, FixOptions(trt="10.15"))
    feeds = generate_inputs(orig)
    a, b = run(orig, feeds), run(res.model, feeds)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-6)


def test_node_diff():
    res = fix_model(small_model(), FixOptions(trt="10.15"))
    d = node_diff(res.original, res.model)
    assert any("Relu" in r for r in d["removed"]) and d["added"] == []


# -- CLI contract -------------------------------------------------------------------------
@pytest.fixture
def small_path(tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(small_model(), p)
    return p


def test_cli_writes_output_and_reports_json(run_cli, small_path, tmp_path):
    out = tmp_path / "fixed.onnx"
    before = small_path.read_bytes()
    proc = run_cli("fix", small_path, "-o", out, "--trt", "10.15", "--format", "json", "--isolated")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["written"] == [str(out)] and data["proof"]["pass"] is True
    assert any(s["rewrite"] == "fold-constants" and s["status"] == "applied" for s in data["steps"])
    assert small_path.read_bytes() == before  # input untouched
    onnx.checker.check_model(str(out), full_check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed.onnx", "m.onnx"]  # no temp files left


def test_cli_refuses_to_overwrite_input(run_cli, small_path):
    proc = run_cli("fix", small_path, "-o", small_path)
    assert proc.returncode == 2 and "--in-place" in proc.stderr


def test_cli_in_place(run_cli, small_path):
    before = small_path.read_bytes()
    proc = run_cli("fix", small_path, "--in-place", "--trt", "10.15", "--isolated")
    assert proc.returncode == 0, proc.stderr
    assert small_path.read_bytes() != before
    assert "Relu" not in _ops(onnx.load(small_path))


def test_cli_dry_run_writes_nothing(run_cli, small_path, tmp_path):
    out = tmp_path / "fixed.onnx"
    proc = run_cli("fix", small_path, "-o", out, "--dry-run", "--diff", "--trt", "10.15", "--isolated")
    assert proc.returncode == 0 and not out.exists()
    assert "dry run" in proc.stdout and "- dead (Relu)" not in proc.stdout and "(Relu)" in proc.stdout


def test_cli_needs_output(run_cli, small_path):
    proc = run_cli("fix", small_path)
    assert proc.returncode == 2 and "-o/--output" in proc.stderr


def test_external_data_in_external_data_out(run_cli, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    m = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 18]>
        g (float[2,512] x) => (float[2,512] y) { t = Add(x, w) y = Relu(t) dead = Neg(x) }
    """)
    m.graph.initializer.extend([numpy_helper.from_array(np.arange(512, dtype=np.float32), "w"),
                                numpy_helper.from_array(np.zeros((64, 64), np.float32), "unused_big")])
    onnx.save_model(m, src / "m.onnx", save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    out = tmp_path / "out" / "fixed.onnx"
    out.parent.mkdir()
    proc = run_cli("fix", src / "m.onnx", "-o", out, "--trt", "10.15", "--rules", "strict", "--isolated")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out.parent / "fixed.onnx.data").exists()
    loaded = onnx.load(out, load_external_data=False)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in loaded.graph.initializer)
    assert "unused_big" not in {t.name for t in loaded.graph.initializer}  # cleanup removed it


def test_missing_external_data_exit_2_nothing_written(run_cli, tmp_path):
    m = small_model()
    onnx.save_model(m, tmp_path / "m.onnx", save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    (tmp_path / "m.onnx.data").unlink()
    out = tmp_path / "fixed.onnx"
    proc = run_cli("fix", tmp_path / "m.onnx", "-o", out)
    assert proc.returncode == 2 and "not found" in proc.stderr and not out.exists()


def test_refused_external_data_exit_2(run_cli, tmp_path):
    from ._fixtures import build

    d = tmp_path / "d"
    d.mkdir()
    onnx.save(build.external_data_model("../secret.bin"), d / "m.onnx")
    proc = run_cli("fix", d / "m.onnx", "-o", tmp_path / "o.onnx")
    assert proc.returncode == 2 and "refused" in proc.stderr and not (tmp_path / "o.onnx").exists()


def test_unknown_ruleset(run_cli, small_path, tmp_path):
    proc = run_cli("fix", small_path, "-o", tmp_path / "o.onnx", "--rules", "lenient")
    assert proc.returncode == 2 and "default" in proc.stderr and "strict" in proc.stderr


def test_exit_1_when_errors_remain(run_cli, tmp_path):
    # Unique: no release imports it and no equivalent graph exists -> the error remains
    m = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[6] x) => (float[?] y) { y = Unique(x) }
    """)
    onnx.save(m, tmp_path / "h.onnx")
    proc = run_cli("fix", tmp_path / "h.onnx", "-o", tmp_path / "o.onnx", "--trt", "8.6", "--isolated")
    assert proc.returncode == 1 and "TRT101" in proc.stdout


def test_api_check_accepts_fixed_model():
    res = fix_model(small_model(), FixOptions(trt="10.15"))
    assert onnxdoctor.check(res.model, trt="10.15", select=["TRT122"]).findings == []


def test_constraint_fix_reaches_einsum_rewrite():
    m = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2,3] a, float[3,4] b) => (float[2,4] y) { y = Einsum<equation = "IJ,JK->IK">(a, b) }
    """)
    res = fix_model(m, FixOptions(trt="10.15"))
    assert any(s.rewrite == "einsum-lowercase-labels" and s.status == "applied" for s in res.steps)
    assert not any(f.code == "TRT126" for f in res.after) and res.proof.passed


def test_old_opset_is_upgraded_to_release_minimum():
    m = onnx.parser.parse_model("""
        <ir_version: 7, opset_import: ["" : 8]>
        g (float[2,3] x) => (float[2,3] y) { y = Relu(x) }
    """)
    res = fix_model(m, FixOptions(trt="10.15"))
    assert any(s.rewrite == "upgrade-opset" and s.status == "applied" for s in res.steps)
    assert next(o.version for o in res.model.opset_import if o.domain in ("", "ai.onnx")) >= 9
    assert not any(f.code == "TRT132" for f in res.after)


def test_big_weights_go_through_the_pipeline(monkeypatch):
    """Weights above the weight-free threshold: re-checks use stubs, the checker and proofs the real model."""
    from onnxdoctor import fix as fixing
    from onnxdoctor import _proto
    from onnxdoctor import weights as weights_mod
    m = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 14]>
        g (float[2,512] x) => (float[2,512] y) {
          mu = ReduceMean<axes = [-1]>(x)
          d = Sub(x, mu)
          two = Constant<value = float {2.0}>()
          sq = Pow(d, two)
          var = ReduceMean<axes = [-1]>(sq)
          eps = Constant<value = float {1e-5}>()
          ve = Add(var, eps)
          sd = Sqrt(ve)
          n = Div(d, sd)
          h = MatMul(n, w)
          y = Relu(h)
        }
    """)
    weights = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    m.graph.initializer.append(numpy_helper.from_array(weights, "w"))
    # Over the gate (as the lazy-weight tests assert theirs): a model of more than 8 x 64 KiB with a
    # weight of more than 64 KiB, so weightless() stubs it.
    assert m.ByteSize() > 8 * _proto._WEIGHTLESS_MIN_BYTES and weights.nbytes > _proto._WEIGHTLESS_MIN_BYTES
    stubbed = weights_mod.weightless(m)
    assert stubbed is not m
    [stub] = stubbed.graph.initializer
    assert stub.data_location == onnx.TensorProto.EXTERNAL and not stub.raw_data and list(stub.dims) == [512, 512]
    assert len(m.graph.initializer[0].raw_data) == weights.nbytes  # the caller's model keeps its weights
    checked = []
    real = fixing.analyze

    def spy(model, *args, **kwargs):
        [w] = [t for t in model.proto.graph.initializer if t.name == "w"]
        checked.append(w.data_location == onnx.TensorProto.EXTERNAL and not w.raw_data)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(fixing, "analyze", spy)
    res = fix_model(m, FixOptions(trt="10.15"))
    assert checked and all(checked), checked  # every check of the pipeline ran on the stubbed graph
    applied = [s.rewrite for s in res.steps if s.status == "applied"]
    assert "fuse-layer-norm" in applied, [(s.rewrite, s.status, s.reason) for s in res.steps]
    assert res.proof.passed
    [w] = [t for t in res.model.graph.initializer if t.name == "w"]
    assert np.array_equal(numpy_helper.to_array(w), weights)  # the result carries the real weights
