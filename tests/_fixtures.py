"""Access to fixtures/build.py (not part of the wheel; tests run from the repository)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MODELS = FIXTURES / "models"

_spec = importlib.util.spec_from_file_location("onnxdoctor_fixtures_build", FIXTURES / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)  # type: ignore[union-attr]
