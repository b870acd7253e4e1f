"""The knowledge base (`rules/**/*.toml`) compiled to one JSON file, so `check` does not parse TOML.

Python's TOML parser is pure Python: the ~200 KB of `rules/` took ~0.1 s of every check. The wheel
build (hatch_build.py) writes `rules/compiled.json` with, per source file, its SHA-256 and parsed
content; `kb.load_toml` returns the compiled content only while the file's hash still matches, so an
edited TOML file is read from source (adding a release stays a data-only change).

This module uses the standard library only: the build hook loads it by path, outside the package.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

try:  # the standard library's own SHA-256: `import hashlib` loads OpenSSL first (~3 ms of every check)
    from _sha256 import sha256 as _sha256
except ImportError:  # pragma: no cover - an interpreter without it (3.12 names it _sha2)
    try:
        from _sha2 import sha256 as _sha256
    except ImportError:
        from hashlib import sha256 as _sha256

COMPILED_NAME = "compiled.json"
FORMAT = 1


def toml():
    """The TOML parser module, imported on first use: its import (compiling its regular expressions)
    costs ~0.01 s, and a check with the wheel's compiled.json and no config file parses no TOML."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib


def digest(data: bytes) -> str:
    return _sha256(data).hexdigest()


def compile_rules(root: Path) -> dict:
    """{'format': 1, 'files': {relative posix path: {'sha256': ..., 'data': parsed TOML}}}."""
    files = {}
    for path in sorted(root.rglob("*.toml")):
        raw = path.read_bytes()
        files[path.relative_to(root).as_posix()] = {"sha256": digest(raw), "data": toml().loads(raw.decode("utf-8"))}
    return {"format": FORMAT, "files": files}


def write_compiled(root: Path, dest: Path) -> Path:
    dest.write_text(json.dumps(compile_rules(root), separators=(",", ":"), sort_keys=True), encoding="utf-8")
    return dest
