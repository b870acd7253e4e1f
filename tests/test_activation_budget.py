"""`--activation-limit` bounds every ONNX Runtime run of fix and verify, not only the layerwise ones.

Fuzz seed 2033, case 1706: `verify --against` on a GPT-2 export whose batch was mutated to 100,000 ran
a whole-model ONNX Runtime run to 10 GB. Two bounds now hold: the input finder sizes each candidate's
activations from inferred shapes and refuses one over the budget before running it; and every run
made while the command's budget is running is watched (budget.run_session) and stopped between two
nodes once the process has grown by more than the budget — the bound for sizes inference cannot see."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest

from onnxdoctor import api
from onnxdoctor.budget import Budget, BudgetExceeded, run_session
from onnxdoctor.inputs import InputOracle

from .conftest import onnxdoctor_exe
from .test_hostile import _hashes, _judge

F = onnx.TensorProto.FLOAT


def _chain(rows: int, cols: int, length: int) -> onnx.ModelProto:
    """x [rows, cols] -> `length` Negs, all summed at the end (every one held until then)."""
    nodes, names = [], ["x"]
    for i in range(length):
        nodes.append(oh.make_node("Neg", [names[-1]], [f"n{i}"]))
        names.append(f"n{i}")
    nodes.append(oh.make_node("Sum", names, ["y"]))
    g = oh.make_graph(nodes, "chain", [oh.make_tensor_value_info("x", F, [rows, cols])],
                      [oh.make_tensor_value_info("y", F, [rows, cols])])
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])


def _data_dependent(side: int, length: int) -> onnx.ModelProto:
    """NonZero over an all-true mask of x: [2, side*side] int64 values whose size no inference can
    give, then `length` Negs of it, all summed at the end."""
    nodes = [oh.make_node("Constant", [], ["low"], value=oh.make_tensor("low", F, [], [-1e30])),
             oh.make_node("Greater", ["x", "low"], ["mask"]),
             oh.make_node("NonZero", ["mask"], ["nz"]),
             oh.make_node("Cast", ["nz"], ["c"], to=F)]
    names = ["c"]
    for i in range(length):
        nodes.append(oh.make_node("Neg", [names[-1]], [f"n{i}"]))
        names.append(f"n{i}")
    nodes += [oh.make_node("Sum", names, ["s"]), oh.make_node("ReduceSum", ["s"], ["y"], keepdims=0)]
    g = oh.make_graph(nodes, "nonzero", [oh.make_tensor_value_info("x", F, [side, side])],
                      [oh.make_tensor_value_info("y", F, [])])
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)])


# Runs the CLI from a fresh small interpreter and writes its child's peak RSS (KB) to $RSS_OUT: the
# peak RSS a child of pytest reports starts at pytest's own (a fork copies its mappings).
_LAUNCH = ("import os, resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
           "open(os.environ['RSS_OUT'], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
           "sys.exit(rc)")


def _run(args, tmp: Path) -> tuple[subprocess.CompletedProcess, float]:
    """Run the installed CLI; returns the process and its own peak resident memory in MB."""
    rss = tmp / "rss"
    env = {**os.environ, "TMPDIR": str(tmp), "RSS_OUT": str(rss)}
    proc = subprocess.run([sys.executable, "-c", _LAUNCH, *onnxdoctor_exe(), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300, check=False)
    return proc, int(rss.read_text()) / 1024


def test_the_activation_peak_follows_each_value_to_its_last_reader():
    m = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, S] x) => (float[N, S] y) {
            a = Relu(x)
            b = Relu(a)
            y = Add(a, b)
        }""")
    oracle = InputOracle(m)
    # x (2x16 floats, 128 B) throughout; a, b and y held together at the Add: 4 x 128 B
    assert oracle.activation_peak({"x": (2, 16)}) == 512
    assert oracle.activation_peak({"x": (2, 32)}) == 1024
    # a chain frees as it goes: x, the Neg before and the Neg being computed... until the Sum needs all
    chain = InputOracle(_chain(4, 8, 3))
    assert chain.activation_peak({"x": (4, 8)}) == 5 * 4 * 8 * 4


@pytest.mark.parametrize("command", ["verify", "fix"])
def test_inputs_over_the_activation_budget_are_refused_before_running(tmp_path, command):
    """16 Negs of a [4096, 1024] float input, all summed: 18 values of 16 MB held at once, refused
    at a 100 MB budget before ONNX Runtime runs anything (the process stays small)."""
    folder = tmp_path / "m"
    folder.mkdir()
    model = folder / "wide.onnx"
    onnx.save(_chain(4096, 1024, 16), model)
    before = _hashes(folder)
    args = {"verify": ("verify", model, "--against", model),
            "fix": ("fix", model, "-o", tmp_path / "fixed.onnx", "--isolated")}[command]
    proc, peak_mb = _run((*args, "--activation-limit", "100"), tmp_path)
    line = _judge(proc, model, allow=(2,))
    assert "would hold 288 MB of activations at once" in line and "--activation-limit" in line, line
    assert peak_mb < 600, peak_mb
    assert _hashes(folder) == before and not (tmp_path / "fixed.onnx").exists()


def test_the_same_model_runs_within_a_budget_that_holds_it(tmp_path):
    model = tmp_path / "wide.onnx"
    onnx.save(_chain(4096, 1024, 16), model)
    proc, _ = _run(("verify", model, "--against", model, "--activation-limit", "4000"), tmp_path)
    _judge(proc, model, allow=(0,))


def test_a_run_whose_sizes_inference_cannot_see_is_stopped_at_the_budget(tmp_path):
    """NonZero's output size depends on the data: the estimate sees only the 16 MB input, the run
    would make 40 values of 32 MB. The watched run stops once the process has grown by 150 MB."""
    model = tmp_path / "nonzero.onnx"
    onnx.save(_data_dependent(2048, 40), model)
    proc, peak_mb = _run(("verify", model, "--against", model, "--activation-limit", "150"), tmp_path)
    line = _judge(proc, model, allow=(2,))
    assert "an ONNX Runtime run while finding inputs" in line and "over the activation budget of 150 MB" in line, line
    # without the bound the run holds 40 x 32 MB + 64 MB = 1.3 GB
    assert peak_mb < 800, peak_mb


def test_run_session_is_a_plain_run_outside_a_budget_and_stops_inside_one():
    from onnxdoctor import prove

    m = _data_dependent(1024, 40)  # 40 values of 8 MB
    x = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    sess = prove.session(m)
    (y,) = run_session(sess, ["y"], {"x": x})  # no budget running: runs to the end
    assert y.shape == () and np.isfinite(y)
    with pytest.raises(BudgetExceeded, match="over the activation budget of 20 MB"), \
            Budget(seconds=None, activation_mb=20, label="nonzero.onnx").running():
        sess.run(["y"], {"x": x})


def test_the_api_keeps_the_bound(tmp_path):
    model = tmp_path / "wide.onnx"
    onnx.save(_chain(4096, 1024, 16), model)
    with pytest.raises(BudgetExceeded, match="would hold 288 MB"):
        api.verify(model, against=model, activation_limit=100)
