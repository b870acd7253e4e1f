"""The compiled knowledge base (rules/compiled.json): same content as the TOML sources, used only while fresh."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from onnxdoctor import kb, kbcompile

from .conftest import REPO, onnxdoctor_exe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_compiled_content_equals_every_toml_source():
    compiled = kbcompile.compile_rules(REPO / "rules")
    sources = sorted(p.relative_to(REPO / "rules").as_posix() for p in (REPO / "rules").rglob("*.toml"))
    assert sorted(compiled["files"]) == sources and len(sources) >= 10
    for rel, entry in compiled["files"].items():
        raw = (REPO / "rules" / rel).read_bytes()
        # through JSON, as the wheel stores it
        assert json.loads(json.dumps(entry["data"])) == tomllib.loads(raw.decode()), rel


def test_loader_uses_the_compiled_copy_only_while_the_hash_matches(tmp_path):
    root = tmp_path / "rules"
    shutil.copytree(REPO / "rules", root)
    kbcompile.write_compiled(root, root / kbcompile.COMPILED_NAME)
    releases = root / "trt" / "releases.toml"

    # Fresh: the compiled entry is returned (the very object held by the compiled cache).
    entry = kb._compiled_entry(releases)
    assert entry is not None and kb._load_toml(releases) is entry["data"]

    # Edited after compiling: the TOML source wins.
    releases.write_text(releases.read_text() + '\n[[release]]\nversion = "99.0"\nopset_min = 9\nopset_max = 99\nbase = "11.5"\n')
    data = kb._load_toml(releases)
    assert data is not entry["data"] and "99.0" in [r["version"] for r in data["release"]]
    assert "99.0" in kb.KnowledgeBase(root).versions


def test_loader_without_compiled_file_parses_toml(tmp_path):
    root = tmp_path / "rules"
    shutil.copytree(REPO / "rules", root)
    (root / kbcompile.COMPILED_NAME).unlink(missing_ok=True)
    assert kb._compiled_entry(root / "trt" / "releases.toml") is None
    assert kb.KnowledgeBase(root).versions == kb.KnowledgeBase(REPO / "rules").versions


def test_installed_wheel_ships_a_fresh_compiled_knowledge_base(tmp_path):
    """The installed package (what users run) carries compiled.json and it matches its TOML files."""
    python = Path(onnxdoctor_exe()[0]).parent / ("python.exe" if os.name == "nt" else "python")
    code = (
        "import json; from onnxdoctor import kb, kbcompile; root = kb.rules_dir(); "
        "files = json.loads((root / kbcompile.COMPILED_NAME).read_text())['files']; "
        "stale = [k for k, v in files.items() if kbcompile.digest((root / k).read_bytes()) != v['sha256']]; "
        "print(json.dumps({'root': str(root), 'n': len(files), 'stale': stale}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert "site-packages" in info["root"] and info["n"] >= 10 and info["stale"] == []
