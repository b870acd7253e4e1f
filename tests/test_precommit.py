"""`pre-commit try-repo` installs this repository as a hook (from the wheel, like users get it) and
blocks a model that fails on the configured TensorRT release while passing a clean one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ._fixtures import MODELS

REPO = Path(__file__).resolve().parent.parent


def _pre_commit() -> list[str]:
    exe = shutil.which("pre-commit", path=str(Path(sys.executable).parent)) or shutil.which("pre-commit")
    if exe is None:
        pytest.skip("pre-commit is not installed (it is in the [test] extra)")
    return [exe]


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"})


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs the onnxdoctor git checkout as hook repository")
def test_try_repo_blocks_failing_model_and_passes_clean_one(tmp_path):
    pc = _pre_commit()
    work = tmp_path / "models-repo"
    work.mkdir()
    _git(work, "init", "-q")
    shutil.copy(MODELS / "example.onnx", work / "detector.onnx")
    shutil.copy(MODELS / "clean.onnx", work / "cnn.onnx")
    (work / "pyproject.toml").write_text('[tool.onnxdoctor]\ntrt = "8.6"\n')
    _git(work, "add", ".")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    env.pop("PYTHONPATH", None)

    def run(*files):
        return subprocess.run(pc + ["try-repo", str(REPO), "onnxdoctor-check", "--files", *files],
                              cwd=work, capture_output=True, text=True, env=env, timeout=900)

    bad = run("detector.onnx")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "gelu_1" in bad.stdout and "TRT101" in bad.stdout and "TensorRT 8.6" in bad.stdout
    good = run("cnn.onnx")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Passed" in good.stdout
