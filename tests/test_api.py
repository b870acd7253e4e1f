"""The Python API mirrors the CLI: onnxdoctor.fix / verify / profile run what the commands run and
return the objects the commands render."""

from __future__ import annotations

import json
import subprocess
import sys

import onnx
import onnx.parser
import pytest

import onnxdoctor
from onnxdoctor.errors import ModelLoadError, UsageError
from onnxdoctor.fix import FixResult
from onnxdoctor.verify import VerifyResult

HARDMAX = """
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[batch,5] x) => (float[batch,5] y) <float[5] bias = {0.5, 0.5, 0.5, 0.5, 0.5}> {
      h = Hardmax<axis = 1>(x)
      y = Add(h, bias)
    }
"""


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(onnx.parser.parse_model(HARDMAX), path)
    return path


def test_fix_writes_and_returns_the_result_the_cli_renders(model, tmp_path, run_cli):
    out, report = tmp_path / "fixed.onnx", tmp_path / "report.json"
    result = onnxdoctor.fix(model, out, trt="8.6", report=report, diff=True)
    assert isinstance(result, FixResult) and result.changed
    assert result.written == [str(out)] and out.is_file()
    assert [s.rewrite for s in result.steps if s.status == "applied"] == ["hardmax-to-argmax-onehot"]
    assert not [f for f in result.after if f.code == "TRT101"] and result.proof.passed
    assert result.diff["removed"] == ["Hardmax->h (Hardmax)"]
    assert result.fail_on == "error"
    ours = json.loads(report.read_text())
    cli_out = tmp_path / "cli.onnx"
    proc = run_cli("fix", model, "-o", cli_out, "--trt", "8.6", "--format", "json", "--diff", "--isolated")
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout)
    untimed = lambda steps: [{k: v for k, v in s.items() if k != "seconds"} for s in steps]  # noqa: E731 - wall times differ
    assert untimed(theirs["steps"]) == untimed(ours["steps"]) and theirs["after"] == ours["after"] and theirs["diff"] == ours["diff"]
    assert onnx.load(out).graph.node[0].op_type == onnx.load(cli_out).graph.node[0].op_type == "ArgMax"


def test_fix_without_output_is_a_dry_run(model, tmp_path):
    before = sorted(p.name for p in tmp_path.iterdir())
    result = onnxdoctor.fix(model, trt="8.6")
    assert result.changed and result.written == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_fix_in_place_and_in_memory(model):
    proto = onnx.parser.parse_model(HARDMAX)
    result = onnxdoctor.fix(proto, trt="8.6")  # an in-memory model: nothing written
    assert result.changed and result.original is proto
    with pytest.raises(UsageError, match="in_place needs a model file"):
        onnxdoctor.fix(proto, in_place=True)
    assert onnxdoctor.fix(model, in_place=True, trt="8.6").written == [str(model)]
    assert onnx.load(model).graph.node[0].op_type == "ArgMax"


def test_fix_refuses_to_write_over_its_input(model):
    with pytest.raises(UsageError, match="is the input model; refused"):
        onnxdoctor.fix(model, model, trt="8.6")
    with pytest.raises(ModelLoadError, match="no such file"):
        onnxdoctor.fix(model.parent / "nope.onnx", model.parent / "out.onnx")


def test_fix_reads_the_configuration(model, tmp_path):
    (tmp_path / "onnxdoctor.toml").write_text('trt = "8.6"\n[fix]\nrules = "GRF"\n')
    result = onnxdoctor.fix(model)  # the ruleset GRF leaves the TRT101 Hardmax alone
    assert result.target.trt == "8.6" and not result.changed
    assert any(f.code == "TRT101" for f in result.after)
    assert onnxdoctor.fix(model, config=False, trt="8.6").changed


def test_verify_returns_the_result_the_cli_renders(model, tmp_path, run_cli):
    fixed = tmp_path / "fixed.onnx"
    onnxdoctor.fix(model, fixed, trt="8.6")
    out = tmp_path / "verify.json"
    res = onnxdoctor.verify(model, against=fixed, layerwise=True, output=out, format="json")
    assert isinstance(res, VerifyResult) and res.passed and res.mode == "layerwise"
    assert res.inputs is not None and "x" in res.inputs.feeds
    proc = run_cli("verify", model, "--against", fixed, "--layerwise", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(out.read_text()) == res.to_dict()
    emulated = onnxdoctor.verify(model, fp16=True)
    assert emulated.mode == "fp16-emulation" and emulated.passed
    with pytest.raises(UsageError, match="nothing to compare"):
        onnxdoctor.verify(model)


def test_profile_is_build_profile(model, run_cli):
    prof = onnxdoctor.profile(model, trt="10.15", config=False)
    [x] = prof["inputs"]
    assert (x["name"], x["min"], x["max"]) == ("x", [1, 5], [8, 5])
    assert prof["trtexec"].startswith(f"trtexec --onnx={model} ")
    proc = run_cli("profile", model, "--trt", "10.15", "--format", "json", "--isolated")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == prof
    assert onnxdoctor.profile(model, trt="10.15", validate=False, config=False)["validation"]["validated"] is False


@pytest.mark.parametrize("first", ["import onnxdoctor", "import onnxdoctor.fix, onnxdoctor.verify, onnxdoctor.profile",
                                   "from onnxdoctor import fix, verify, profile"])
def test_the_commands_are_their_modules_and_callable(first, model):
    """onnxdoctor/fix.py, verify.py and profile.py share the commands' names: `onnxdoctor.fix` is the
    module (as `from onnxdoctor import fix` always is inside the package) and calling it runs the
    command, however the module was first imported."""
    code = (f"{first}\nimport onnxdoctor, sys\n"
            "mods = [onnxdoctor.fix, onnxdoctor.verify, onnxdoctor.profile]\n"
            "print([m is sys.modules[f'onnxdoctor.{n}'] for m, n in zip(mods, ('fix', 'verify', 'profile'))])\n"
            "print(onnxdoctor.fix.FixOptions.__name__, callable(onnxdoctor.verify.compare_layerwise), callable(onnxdoctor.profile.build_profile))\n"
            f"print(onnxdoctor.fix({str(model)!r}, trt='8.6').changed, onnxdoctor.profile({str(model)!r}, validate=False)['model'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[True, True, True]", "FixOptions True True", f"True {model}"]
