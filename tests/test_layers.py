"""The layers keep their order: what a rule and a rewrite both need lives below both (onnxdoctor.patterns,
onnxdoctor._proto), so rewrites, the fix pipeline and the mixed-precision converter never import the rules'
modules, and the shared layer imports neither."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import onnxdoctor

SRC = Path(onnxdoctor.__file__).parent


def _imports(path: Path) -> set[str]:
    """Absolute names of the onnxdoctor modules `path` imports (at any depth of the file)."""
    package = ".".join(("onnxdoctor", *path.relative_to(SRC).with_suffix("").parts))
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("onnxdoctor")}


def _files(*places: str) -> list[Path]:
    found: list[Path] = []
    for place in places:
        p = SRC / place
        found.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p])
    return found


@pytest.mark.parametrize("path", _files("rewrites", "mixed_precision", "fix.py", "patterns", "_proto.py"),
                         ids=lambda p: str(p.relative_to(SRC)))
def test_rewrites_and_the_shared_layer_do_not_import_the_rules(path):
    bad = sorted(m for m in _imports(path) if m == "onnxdoctor.checks" or m.startswith("onnxdoctor.checks."))
    assert not bad, f"{path.relative_to(SRC)} imports {bad}: move the detector to onnxdoctor/patterns/"


@pytest.mark.parametrize("path", _files("patterns", "_proto.py"), ids=lambda p: str(p.relative_to(SRC)))
def test_the_shared_layer_imports_no_rewrite_or_pipeline(path):
    above = ("onnxdoctor.rewrites", "onnxdoctor.fix", "onnxdoctor.mixed_precision", "onnxdoctor.rule",
             "onnxdoctor.registry", "onnxdoctor.engine")
    bad = sorted(m for m in _imports(path) if any(m == a or m.startswith(a + ".") for a in above))
    assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_the_import_reader_sees_relative_imports():
    # a check on the checker: hygiene.py's detectors come from patterns, resolved to absolute names
    got = _imports(SRC / "rewrites" / "hygiene.py")
    assert "onnxdoctor.patterns.noops" in got and "onnxdoctor._proto" in got
    assert "onnxdoctor.patterns.decomposed" in _imports(SRC / "checks" / "grf" / "unfused_gelu.py")
