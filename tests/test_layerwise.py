"""Layerwise runs (layerwise.py): every tensor observed at a cost linear in the graph, the same values
as one ONNX Runtime run of the whole model, and explicit budgets."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

from onnxdoctor import layerwise
from onnxdoctor import prove as proving
from onnxdoctor.verify import compare_layerwise

from .conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import fuzz  # noqa: E402

# A Constant read across cuts, a sequence (which no cut may split from its reader), an If whose
# branches read main-graph values, and two outputs.
MIXED = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,4] x, bool c) => (float[2,4] y, float[2,4] z) {
  k = Constant<value = float[1] {2.0}>()
  a = Mul(x, k)
  b = Relu(a)
  s = SplitToSequence<axis = 0>(b)
  n = Neg(a)
  t = ConcatFromSequence<axis = 0>(s)
  i = If(c) <then_branch = g1 () => (float[2,4] r) { r = Add(t, n) }, else_branch = g2 () => (float[2,4] r) { r = Sub(t, k) }>
  y = Sigmoid(i)
  z = Mul(b, k)
}
"""


def _feeds(cond: bool) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32), "c": np.array(cond)}


def _whole(model: onnx.ModelProto, feeds, names: list[str]) -> dict[str, np.ndarray]:
    return proving.run(proving.with_outputs(model, names), feeds, names)


@pytest.mark.parametrize("cond", [True, False])
@pytest.mark.parametrize("segment", [1, 2, 3, 512])
def test_segmented_values_equal_one_whole_run(cond, segment):
    model = onnx.parser.parse_model(MIXED)
    seen: dict[str, np.ndarray] = {}
    cuts: list[tuple[int, int]] = []
    for values in layerwise.run(model, _feeds(cond), budget=layerwise.Budget(max_segment_nodes=segment), segments=cuts):
        assert not seen.keys() & values.keys()
        seen.update(values)
    tensors = ["a", "b", "n", "t", "i", "y", "z"]
    # every computed tensor once; the sequence `s` is not a tensor, the Constant `k` is a weight
    assert sorted(seen) == sorted(tensors)
    whole = _whole(model, _feeds(cond), tensors)
    for name in tensors:
        np.testing.assert_array_equal(seen[name], whole[name], err_msg=name)
    # every node built and run exactly once, in contiguous segments; no cut between s and its reader
    assert cuts[0][0] == 0 and cuts[-1][1] == len(model.graph.node)
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))
    order = layerwise.Plan(model).order
    nodes = model.graph.node
    pos_s = next(p for p, i in enumerate(order) if nodes[i].op_type == "SplitToSequence")
    pos_t = next(p for p, i in enumerate(order) if nodes[i].op_type == "ConcatFromSequence")
    assert not any(pos_s < start <= pos_t for start, _ in cuts)


def test_a_long_chain_builds_each_node_once():
    """The cost that was quadratic (a session over the whole graph per chunk of tensors): here the
    segments partition the nodes, so ONNX Runtime builds each node once."""
    model = fuzz._chain(3000)
    feeds = {"t0": np.ones((1, 4), np.float32)}
    cuts: list[tuple[int, int]] = []
    count = sum(len(v) for v in layerwise.run(model, feeds, segments=cuts))
    assert count == 3000
    assert sum(end - start for start, end in cuts) == 3000
    assert len(cuts) <= 3000 // 256 + 4  # segments grow to MAX_SEGMENT_NODES for small activations


def test_compare_layerwise_matches_whole_runs_and_follows_the_reference_order():
    ref = onnx.parser.parse_model(MIXED)
    cand = onnx.parser.parse_model(MIXED.replace("z = Mul(b, k)", "z = Mul(b, k2)\n  k2 = Constant<value = float[1] {2.5}>()"))
    nodes = list(cand.graph.node)
    del cand.graph.node[:]
    cand.graph.node.extend(reversed(nodes))  # another file order: the candidate is sorted by itself
    feeds = _feeds(True)
    comps = compare_layerwise(ref, cand, feeds, feeds, 1e-6, 1e-6, budget=layerwise.Budget(max_segment_nodes=2))
    names = [c.tensor for c in comps]
    assert names == ["a", "b", "n", "t", "i", "y", "z"]  # the reference's topological order
    failed = [c.tensor for c in comps if not c.passed]
    assert failed == ["z"]
    z = next(c for c in comps if c.tensor == "z")
    whole = _whole(ref, feeds, ["z"])["z"]
    assert z.max_abs_diff == pytest.approx(float(np.abs(whole * 1.25 - whole).max()))


def test_time_budget_stops_with_one_clear_line():
    model = fuzz._chain(2000)
    budget = layerwise.Budget(seconds=0.0, label="chain.onnx")
    with pytest.raises(layerwise.BudgetExceeded) as e:
        list(layerwise.run(model, {"t0": np.ones((1, 4), np.float32)}, budget=budget))
    msg = str(e.value)
    assert msg.startswith("chain.onnx: onnxdoctor stopped at its 0 s time limit in the layerwise run (")
    assert "nodes done" in msg and "--time-limit" in msg and "\n" not in msg


def test_activation_budget_stops_with_one_clear_line():
    model = fuzz._chain(10)
    budget = layerwise.Budget(activation_mb=1e-5, label="chain.onnx")
    with pytest.raises(layerwise.BudgetExceeded) as e:
        list(layerwise.run(model, {"t0": np.ones((1, 4), np.float32)}, budget=budget))
    assert "chain.onnx:" in str(e.value) and "--activation-limit" in str(e.value)


@pytest.mark.parametrize("args", [("verify", "{m}", "--against", "{m}", "--layerwise", "--time-limit", "0.05"),
                                  ("verify", "{m}", "--fp16", "--activation-limit", "0.00001"),
                                  ("fix", "{m}", "-o", "{out}", "--precision", "fp16", "--unsafe-fixes", "--time-limit", "0.05")])
def test_over_budget_is_exit_2_with_one_line_naming_the_file(run_cli, tmp_path, args):
    m = tmp_path / "chain.onnx"
    onnx.save(fuzz._chain(3000), m)
    proc = run_cli(*[a.format(m=m, out=tmp_path / "out.onnx") for a in args])
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"onnxdoctor: {m}: ") and ("--time-limit" in lines[0] or "--activation-limit" in lines[0])
    assert not (tmp_path / "out.onnx").exists()


def test_wide_graph_fp16_conversion_is_not_quadratic():
    """5,000 graph outputs once cost a pass over every node per output in the FP16 conversion."""
    import time

    from onnxdoctor.mixed_precision import convert

    model = fuzz._many_outputs(5000)
    t = time.perf_counter()
    res = convert(model, "fp16", prove=False, observe_activations=False)
    # linear: well under a second here; the per-output pass took 43 s (a bound loose enough for a busy machine)
    assert time.perf_counter() - t < 20
    assert len(res.model.graph.output) == 5000
    casts = [n for n in res.model.graph.node if n.op_type == "Cast"]
    assert {n.output[0] for n in casts} >= {o.name for o in model.graph.output}


def test_budgets_come_from_the_configuration_and_flags_override_it(run_cli, tmp_path):
    m = tmp_path / "chain.onnx"
    onnx.save(fuzz._chain(3000), m)
    (tmp_path / "onnxdoctor.toml").write_text("[fix]\ntime-limit = 0.01\n")
    args = ("fix", m, "-o", tmp_path / "out.onnx", "--precision", "fp16", "--unsafe-fixes")
    proc = run_cli(*args)
    assert proc.returncode == 2 and "stopped at its 0.01 s time limit" in proc.stderr, proc.stderr
    proc = run_cli(*args, "--time-limit", "600")
    assert proc.returncode in (0, 1), proc.stderr
    (tmp_path / "onnxdoctor.toml").write_text("[fix]\nactivation-limit = -1\n")
    proc = run_cli(*args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "onnxdoctor.toml" in lines[0] and "fix.activation-limit" in lines[0]
