"""The TensorRT knowledge base: release facts, operator tables, constraints and plugins read from `rules/`.

See docs/knowledge-base.md for the file formats. Nothing here knows about a particular
release: adding one is a change to the data files only.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import NamedTuple

from . import kbcompile
from .errors import UsageError


def rules_dir() -> Path:
    """The `rules/` folder: inside the installed package, or at the repository root when run from source."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "rules", here.parent.parent / "rules"):
        if (candidate / "trt" / "releases.toml").is_file():
            return candidate
    raise FileNotFoundError(f"onnxdoctor knowledge base not found next to {here}: the installation is incomplete")


def _load_toml(path: Path) -> dict:
    """A TOML file of `rules/`: from the wheel's pre-parsed copy while its hash matches, else parsed."""
    raw = path.read_bytes()
    entry = _compiled_entry(path)
    if entry is not None and entry["sha256"] == kbcompile.digest(raw):
        return entry["data"]
    return kbcompile.toml().loads(raw.decode("utf-8"))


def _compiled_entry(path: Path) -> dict | None:
    """The entry of `path` in the compiled.json of the enclosing `rules/` folder, if there is one."""
    for root in path.parents:
        compiled = root / kbcompile.COMPILED_NAME
        if compiled.is_file():
            return _compiled_files(compiled).get(path.relative_to(root).as_posix())
        if root.name == "rules":
            break
    return None


@functools.lru_cache(maxsize=4)
def _compiled_files(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != kbcompile.FORMAT:
        return {}
    return data.get("files", {})


@functools.lru_cache(maxsize=256)
def parse_version(text: str) -> tuple[int, ...]:
    parts = text.strip().split(".")
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(text)
    return tuple(int(p) for p in parts)


def version_key(text: str) -> tuple[int, ...]:
    return parse_version(text)


class Constraint(NamedTuple):
    """An importer restriction (rules/trt/constraints.toml) and the releases it applies to. (An
    immutable record: a NamedTuple, made at every start in a fraction of a frozen dataclass's time.)"""

    id: str
    op: str
    kind: str
    message: str
    source: str
    since: str
    until: str | None
    severity: str
    params: dict

    def applies_to(self, version: str) -> bool:
        v = version_key(version)
        if v < version_key(self.since):
            return False
        return self.until is None or v <= version_key(self.until)


class Release(NamedTuple):
    """What one TensorRT release's parser supports (rules/trt/releases.toml and its operator table).
    (An immutable record, as Constraint.)"""

    version: str
    opset_min: int
    opset_max: int
    onnx: str | None
    int64: str
    types: frozenset[str]
    plugins: frozenset[str]
    removed_plugins: frozenset[str]
    strongly_typed: bool
    local_functions: bool
    max_subgraph_nesting: int | None
    interpolated: str | None
    sources: tuple[str, ...]
    # op_type -> documented types (empty tuple when the matrix lists none). Ops without an importer are absent.
    ops: dict[str, tuple[str, ...]]
    # op_types the matrix marks N (known to have no importer)
    unsupported_ops: frozenset[str] = frozenset()
    # domain -> op_types of TensorRT's own custom ops
    domain_ops: dict[str, frozenset[str]] = {}  # never changed: the default is shared safely
    matrix_source: str | None = None

    @property
    def key(self) -> tuple[int, ...]:
        return version_key(self.version)

    def has_importer(self, op_type: str) -> bool:
        return op_type in self.ops or any(op_type in s for s in self.domain_ops.values())


class KnowledgeBase:
    """All releases, loaded lazily from `rules/trt/`."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or rules_dir()
        data = _load_toml(self.root / "trt" / "releases.toml")
        self._raw_releases: dict[str, dict] = {r["version"]: r for r in data["release"]}
        self.versions: list[str] = sorted(self._raw_releases, key=version_key)
        self._releases: dict[str, Release] = {}

    # -- version resolution -------------------------------------------------
    @property
    def latest(self) -> str:
        return self.versions[-1]

    def resolve(self, text: str | None) -> str:
        """Map what a user typed (`latest`, `10`, `10.15`, `10.15.1`, `8.6.1`) to a known release."""
        if text is None or str(text).strip().lower() in ("", "latest"):
            return self.latest
        text = str(text).strip().lower().removeprefix("trt").removeprefix("v")
        try:
            wanted = parse_version(text)
        except ValueError:
            raise UsageError(self._unknown(text)) from None
        if len(wanted) == 1:
            majors = [v for v in self.versions if version_key(v)[0] == wanted[0]]
            if majors:
                return majors[-1]
        else:
            for v in self.versions:
                if version_key(v) == wanted[:2]:
                    return v
        raise UsageError(self._unknown(text))

    def resolve_range(self, text: str | None) -> tuple[str, ...] | None:
        """The releases a range names (`all`, `10.0..11.5`, `10..`, `..9.3`, `8.6..10`), oldest first;
        None when `text` is a single release. A bare major is its first release as the start of a
        range and its last as the end."""
        if text is None:
            return None
        t = str(text).strip().lower()
        if t == "all":
            return tuple(self.versions)
        if ".." not in t:
            return None
        lo_text, _, hi_text = t.partition("..")
        lo = self._bound(lo_text, first=True) if lo_text.strip() else self.versions[0]
        hi = self._bound(hi_text, first=False) if hi_text.strip() else self.latest
        picked = tuple(v for v in self.versions if version_key(lo) <= version_key(v) <= version_key(hi))
        if not picked:
            raise UsageError(f"TensorRT range {text!r} is empty: {lo} comes after {hi}")
        return picked

    def _bound(self, text: str, *, first: bool) -> str:
        t = text.strip().removeprefix("trt").removeprefix("v")
        try:
            wanted = parse_version(t)
        except ValueError:
            raise UsageError(self._unknown(t)) from None
        if len(wanted) == 1:
            majors = [v for v in self.versions if version_key(v)[0] == wanted[0]]
            if majors:
                return majors[0] if first else majors[-1]
            raise UsageError(self._unknown(t))
        return self.resolve(t)

    def _unknown(self, text: str) -> str:
        return f"unknown TensorRT version {text!r}; known: {', '.join(self.versions)}, latest"

    # -- releases -----------------------------------------------------------
    def release(self, version: str) -> Release:
        hit = self._releases.get(version)
        if hit is not None:
            return hit
        resolved = self.resolve(version)
        if resolved not in self._releases:
            self._releases[resolved] = self._build(resolved)
        self._releases[version] = self._releases[resolved]
        return self._releases[version]

    def _ops_for(self, version: str, seen: tuple[str, ...] = ()) -> tuple[dict, frozenset, dict, str | None]:
        if version in seen:
            raise ValueError(f"knowledge base: release {version} has a cyclic `base`")
        raw = self._raw_releases[version]
        if "matrix" in raw:
            table = _operator_table(self.root, raw["matrix"])
            ops = {k: tuple(v) for k, v in table.get("ops", {}).items() if v is not False}
            unsupported = frozenset(k for k, v in table.get("ops", {}).items() if v is False)
            domains = {d: frozenset(v) for d, v in table.get("domains", {}).items()}
            return ops, unsupported, domains, table.get("source")
        ops, unsupported, domains, source = self._ops_for(raw["base"], seen + (version,))
        ops = dict(ops)
        for op, types in raw.get("add_ops", {}).items():
            ops[op] = tuple(types)
        removed = set(raw.get("remove_ops", ()))
        for op in removed:
            ops.pop(op, None)
        unsupported = frozenset((unsupported - set(raw.get("add_ops", {}))) | removed)
        return ops, unsupported, domains, source

    def _build(self, version: str) -> Release:
        raw = self._raw_releases[version]
        ops, unsupported, domains, source = self._ops_for(version)
        plugin_lists = _plugins(self.root)
        plist = plugin_lists.get(raw.get("plugins", ""), {})
        return Release(
            version=version,
            opset_min=int(raw.get("opset_min", 1)),
            opset_max=int(raw["opset_max"]),
            onnx=raw.get("onnx"),
            int64=raw.get("int64", "native"),
            types=frozenset(raw.get("types", ())),
            plugins=frozenset(plist.get("names", ())),
            removed_plugins=frozenset(plist.get("removed", ())),
            strongly_typed=bool(raw.get("strongly_typed", False)),
            local_functions=bool(raw.get("local_functions", True)),
            max_subgraph_nesting=raw.get("max_subgraph_nesting"),
            interpolated=raw.get("interpolated"),
            sources=tuple(raw.get("sources", ())),
            ops=ops,
            unsupported_ops=unsupported,
            domain_ops=domains,
            matrix_source=source,
        )

    # -- constraints ----------------------------------------------------------
    @functools.cached_property
    def constraints(self) -> tuple[Constraint, ...]:
        path = self.root / "trt" / "constraints.toml"
        if not path.is_file():
            return ()
        out = []
        for raw in _load_toml(path).get("constraint", []):
            raw = dict(raw)
            out.append(
                Constraint(
                    id=raw.pop("id"),
                    op=raw.pop("op"),
                    kind=raw.pop("kind"),
                    message=raw.pop("message"),
                    source=raw.pop("source"),
                    since=str(raw.pop("since", self.versions[0])),
                    until=(str(raw.pop("until")) if "until" in raw else None),
                    severity=raw.pop("severity", "error"),
                    params=raw,
                )
            )
        return tuple(out)

    def constraints_for(self, version: str) -> dict[str, list[Constraint]]:
        """op_type -> constraints in force on `version`."""
        by_op: dict[str, list[Constraint]] = {}
        for c in self.constraints:
            if c.applies_to(version):
                by_op.setdefault(c.op, []).append(c)
        return by_op

    def versions_where(self, predicate) -> tuple[str, ...]:
        """The releases for which `predicate(release)` holds (for a finding's `trt_versions`)."""
        return tuple(v for v in self.versions if predicate(self.release(v)))


@functools.lru_cache(maxsize=None)
def _operator_table(root: Path, name: str) -> dict:
    return _load_toml(root / "trt" / "operators" / f"{name}.toml")


@functools.lru_cache(maxsize=None)
def _plugins(root: Path) -> dict:
    path = root / "trt" / "plugins.toml"
    return _load_toml(path).get("lists", {}) if path.is_file() else {}


@functools.lru_cache(maxsize=4)
def knowledge_base(root: Path | None = None) -> KnowledgeBase:
    return KnowledgeBase(root)
