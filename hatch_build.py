"""Wheel build hook: ships the knowledge base pre-parsed (see src/onnxdoctor/kbcompile.py)."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CompileKnowledgeBase(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version, build_data):
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        spec = importlib.util.spec_from_file_location("_kbcompile", root / "src" / "onnxdoctor" / "kbcompile.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        self._tmp = tempfile.TemporaryDirectory()
        out = mod.write_compiled(root / "rules", Path(self._tmp.name) / mod.COMPILED_NAME)
        build_data["force_include"][str(out)] = f"onnxdoctor/rules/{mod.COMPILED_NAME}"

    def finalize(self, version, build_data, artifact_path):
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            tmp.cleanup()
