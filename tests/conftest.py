from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def onnxdoctor_exe() -> list[str]:
    """The installed entry point (CLI tests must run what users run)."""
    exe = shutil.which("onnxdoctor", path=str(Path(sys.executable).parent)) or shutil.which("onnxdoctor")
    if exe is None:
        pytest.fail("the `onnxdoctor` console script is not installed; run `pip install .` first")
    return [exe]


@pytest.fixture
def run_cli():
    def run(*args: str, cwd: Path | None = None, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            onnxdoctor_exe() + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, input=input, timeout=300
        )

    return run
