"""A model that writes a name twice (SSA broken) loads: MOD504 reports it, and every other rule must
still finish. The producer of a name is its last writer, so a reader between the two writes links
the def-use graph back on itself: the walks that follow producers or sole readers (SHP value
classes, GRF415 arithmetic chains, GRF416 layout chains) looped forever on these, growing their
stacks until the machine ran out of memory (found by a random search of such graphs, session 10)."""

from __future__ import annotations

import resource
import subprocess
import sys

import onnx
import onnx.parser
import pytest

_HEAD = '<ir_version: 8, opset_import: ["" : 17]>\n'
_INITS = "<int64[2] shape = {3, 2}, int64[1] axes = {0}, int64 idx = {0}>"

CASES = {
    # SHP value classes: v1 = Sub(x, v0) reads the Shape's v0, whose recorded producer is the Cast
    # that reads v1
    "shp-classes": f"""g (float[2,3] x) => (float[] v4) {_INITS} {{
        v0 = Shape (x)
        v1 = Sub (x, v0)
        v0 = Cast <to = 1> (v1)
        v3 = Gather (x, idx)
        v4 = Squeeze (v3, axes)
    }}""",
    # GRF415: the Sub reads the name it writes, and is its only reader
    "arithmetic-chain": f"""g (float[2,3] x) => (float[] v0) {_INITS} {{
        v0 = Div (x, x)
        v1 = Cast <to = 1> (x)
        v2 = Shape (v0)
        v1 = Sub (v1, v2)
    }}""",
    # GRF416: the second Reshape reads the name it writes, and is its only reader
    "layout-chain": f"""g (float[2,3] x) => (float[2,3] y) {_INITS} {{
        y = Relu (x)
        v0 = Reshape (x, shape)
        v0 = Reshape (v0, shape)
    }}""",
}


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_finishes_on_a_name_written_twice(name, tmp_path):
    model = onnx.parser.parse_model(_HEAD + CASES[name])
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    try:  # a child process, its memory bounded: a loop fails the test instead of hanging the suite
        out = subprocess.run([sys.executable, "-m", "onnxdoctor", "check", "--format", "json", str(path)],
                             capture_output=True, text=True, timeout=120, preexec_fn=_limit_memory, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"check did not finish on {name} within 120 s")
    assert out.returncode == 1, out.stderr
    assert '"code": "MOD504"' in out.stdout
    assert "Traceback" not in out.stderr
