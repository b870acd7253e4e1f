"""A model whose main graph declares no outputs: `check` says TensorRT builds nothing from it (MOD507),
`verify` says there is nothing to compare and `profile` that there is no profile to give (exit 2, one
line each), `fix` keeps the finding (exit 1)."""

from __future__ import annotations

import subprocess
import sys

import onnx
import onnx.parser

H = '<ir_version: 8, opset_import: ["" : 17]>\n'


def _no_output(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(onnx.parser.parse_model(H + "g (float[2,3] x) => () { y = Relu(x) }"), path)
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "onnxdoctor", *args], capture_output=True, text=True, timeout=300)


def test_check_reports_it_as_an_error(tmp_path):
    r = _run("check", str(_no_output(tmp_path)), "--trt", "10.15")
    assert r.returncode == 1, r.stderr
    assert "MOD507" in r.stdout and "declares no outputs" in r.stdout


def test_verify_says_there_is_nothing_to_compare(tmp_path):
    path = _no_output(tmp_path)
    r = _run("verify", str(path), "--fp16")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "no graph outputs" in lines[0] and "MOD507" in lines[0]
    assert "Traceback" not in r.stderr


def test_profile_gives_no_trtexec_line_that_would_not_build(tmp_path):
    path = _no_output(tmp_path)
    r = _run("profile", str(path))
    assert r.returncode == 2 and "trtexec" not in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "no graph outputs" in lines[0] and "MOD507" in lines[0]


def test_fix_keeps_the_finding(tmp_path):
    path = _no_output(tmp_path)
    r = _run("fix", str(path), "-o", str(tmp_path / "out.onnx"), "--trt", "10.15")
    assert r.returncode == 1, r.stderr
    assert "remaining error   MOD507" in r.stdout
