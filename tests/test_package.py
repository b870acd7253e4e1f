"""The package's declared dependencies are the ones its code imports (networkx was declared for a
view nothing used, and dropped)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import onnxdoctor

REPO = Path(__file__).resolve().parent.parent
# distribution name -> the module it provides, where they differ
_MODULES = {"onnx-graphsurgeon": "onnx_graphsurgeon", "onnxruntime-gpu": "onnxruntime"}


def _declared() -> set[str]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in deps if "python_version" not in d}
    return {_MODULES.get(n, n.replace("-", "_")) for n in names}


def _imported() -> set[str]:
    out: set[str] = set()
    for path in Path(onnxdoctor.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                out.add(node.module.split(".")[0])
    return out


def test_every_declared_dependency_is_imported():
    declared, imported = _declared(), _imported()
    assert {"onnx", "numpy", "click"} <= declared
    assert declared <= imported, f"declared but never imported: {sorted(declared - imported)}"
    assert "networkx" not in declared | imported
