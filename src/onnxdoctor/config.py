"""Configuration: `[tool.onnxdoctor]` in pyproject.toml, or an `onnxdoctor.toml`, discovered upward
from each model file (the nearest folder with one wins; in one folder `onnxdoctor.toml` wins over
pyproject.toml). `--config PATH` overrides discovery. Command-line flags override the file.

    trt = "10.15"
    precision = "fp16"
    select = ["TRT", "SHP2"]
    ignore = ["TRT115"]
    fail-on = "warning"
    plugins = ["MyPlugin_TRT"]
    [shapes]
    input_ids = "1x128"                       # or "1x1:1x128:1x512" (min:opt:max)
    [per-file-ignores]
    "legacy/*.onnx" = ["TRT131"]
    [fix]
    rules = "default"
    atol = 1e-4
    rtol = 1e-3
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .errors import UsageError
from .kbcompile import toml

SEVERITIES = ("error", "warning", "info")
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "fp8")


def _fail(path: Path, key: str, problem: str) -> UsageError:
    return UsageError(f"{path}: [{'tool.onnxdoctor' if path.name == 'pyproject.toml' else 'onnxdoctor'}] {key}: {problem}")


# -- readers: (file, key as the file spells it, value) -> the Config value, or UsageError -------------
def _str_list(path: Path, key: str, value) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _fail(path, key, "expected a list of strings")


def _release(path: Path, key: str, value) -> str:
    if not isinstance(value, (str, int, float)):
        raise _fail(path, key, "expected a version string such as \"10.15\"")
    from .kb import knowledge_base

    try:
        kb = knowledge_base()
        return str(value).strip() if kb.resolve_range(str(value)) is not None else kb.resolve(str(value))
    except UsageError as e:
        raise _fail(path, key, str(e)) from None


def _one_of(choices: tuple[str, ...]):
    def read(path: Path, key: str, value) -> str:
        if value not in choices:
            raise _fail(path, key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return read


def _per_file_ignores(path: Path, key: str, value) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, dict):
        raise _fail(path, key, "expected a table of glob = [codes]")
    return tuple((g, _str_list(path, f"{key}.{g}", c)) for g, c in value.items())


def _shapes(path: Path, key: str, value) -> tuple[str, ...]:
    from .shapes import parse_shape

    if not isinstance(value, dict):
        raise _fail(path, key, "expected a table of input = \"1x128\" or \"MIN:OPT:MAX\" or {min, opt, max}")
    out = []
    for name, v in value.items():
        if isinstance(v, str):
            text = f"{name}:{v}"
        elif isinstance(v, dict) and set(v) == {"min", "opt", "max"} and all(isinstance(x, str) for x in v.values()):
            text = f"{name}:{v['min']}:{v['opt']}:{v['max']}"
        elif isinstance(v, list) and all(isinstance(x, int) for x in v):
            text = f"{name}:{'x'.join(map(str, v))}"
        else:
            raise _fail(path, f"{key}.{name}", "expected \"1x128\", \"MIN:OPT:MAX\", [1, 128] or {min, opt, max}")
        try:
            parse_shape(text)
        except UsageError as e:
            raise _fail(path, f"{key}.{name}", str(e)) from None
        out.append(text)
    return tuple(out)


def _ruleset(path: Path, key: str, value) -> str:
    if not isinstance(value, (str, list)):
        raise _fail(path, key, "expected a ruleset name or a list of codes")
    return value if isinstance(value, str) else ",".join(value)


def _tolerance(path: Path, key: str, value) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise _fail(path, key, "expected a non-negative number")
    return float(value)


def _positive(path: Path, key: str, value) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise _fail(path, key, "expected a positive number")
    return float(value)


def _setting(key: str, read, default=None):
    """A Config field that the file sets with `key` ("fix.atol": key atol of table [fix]), read and
    checked by `read`; a flag of the same name overrides it (`resolve`)."""
    return field(default=default, metadata={"key": key, "read": read})


@dataclass(frozen=True)
class Config:
    """The settings of one model: from its configuration file, then (`resolve`) the flags given.
    Every setting is one field here, with its key in the file and its reader: adding a setting
    is adding a field."""

    path: Path | None = None  # the file it came from; None: defaults
    trt: str | None = _setting("trt", _release)
    precision: str | None = _setting("precision", _one_of(PRECISIONS))
    select: tuple[str, ...] | None = _setting("select", _str_list)
    ignore: tuple[str, ...] = _setting("ignore", _str_list, ())
    fail_on: str | None = _setting("fail-on", _one_of(SEVERITIES))
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = _setting("per-file-ignores", _per_file_ignores, ())
    shapes: tuple[str, ...] = _setting("shapes", _shapes, ())  # "NAME:DIMS" / "NAME:MIN:OPT:MAX" strings
    plugins: tuple[str, ...] = _setting("plugins", _str_list, ())
    fix_rules: str | None = _setting("fix.rules", _ruleset)
    fix_atol: float | None = _setting("fix.atol", _tolerance)
    fix_rtol: float | None = _setting("fix.rtol", _tolerance)
    fix_time_limit: float | None = _setting("fix.time-limit", _positive)  # seconds of the whole fix (budget.py)
    fix_activation_limit: float | None = _setting("fix.activation-limit", _positive)  # MB held at once

    @property
    def root(self) -> Path | None:
        return self.path.parent if self.path else None

    def ignores_for(self, model_path: str | Path) -> tuple[str, ...]:
        """Codes ignored for one model: `ignore` plus matching `per-file-ignores` (globs relative to the config's folder)."""
        codes = list(self.ignore)
        if self.per_file_ignores and self.root is not None:
            p = Path(model_path).resolve()
            try:
                rel = p.relative_to(self.root.resolve()).as_posix()
            except ValueError:
                rel = p.as_posix()
            for pattern, pcodes in self.per_file_ignores:
                if fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(p.name, pattern):
                    codes.extend(pcodes)
        return tuple(codes)

    def resolve(self, model: str | Path | None = None, **flags) -> Config:
        """The settings a command uses: each flag that was given (not None and not empty) replaces
        the file's value; `per-file-ignores` matching `model` still add to `ignore`. The one place
        where configuration and command line meet, for every command."""
        names = _SETTINGS.keys()
        unknown = sorted(set(flags) - names)
        if unknown:
            raise TypeError(f"no setting {unknown[0]!r} (known: {', '.join(sorted(names))})")
        given = {k: tuple(v) if isinstance(v, list) else v for k, v in flags.items() if v is not None and v != () and v != []}
        resolved = replace(self, **given)
        if model is not None and self.per_file_ignores:
            extra = tuple(c for c in self.ignores_for(model) if c not in self.ignore and c not in resolved.ignore)
            resolved = replace(resolved, ignore=tuple(resolved.ignore) + extra)
        return resolved


# field name -> its key in the file
_SETTINGS = {f.name: f.metadata["key"] for f in fields(Config) if "key" in f.metadata}
_READERS = {f.metadata["key"]: (f.name, f.metadata["read"]) for f in fields(Config) if "key" in f.metadata}
# the file's top-level keys, and the keys of its tables ([fix])
KEYS = sorted({k.split(".")[0] for k in _READERS})
TABLES: dict[str, list[str]] = {}
for _key in sorted(_READERS):
    if "." in _key:
        _table, _sub = _key.split(".", 1)
        TABLES.setdefault(_table, []).append(_sub)

DEFAULT = Config()


def parse(data: dict, path: Path) -> Config:
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise _fail(path, unknown[0], f"unknown key (known: {', '.join(KEYS)})")
    kw: dict = {"path": path}
    for key, value in data.items():
        if key in TABLES:
            if not isinstance(value, dict):
                raise _fail(path, key, f"expected a table with {', '.join(TABLES[key])}")
            bad = sorted(set(value) - set(TABLES[key]))
            if bad:
                raise _fail(path, f"{key}.{bad[0]}", f"unknown key (known: {', '.join(TABLES[key])})")
            items = [(f"{key}.{sub}", v) for sub, v in value.items()]
        else:
            items = [(key, value)]
        for full, v in items:
            name, read = _READERS[full]
            kw[name] = read(path, full, v)
    cfg = Config(**kw)
    # validate codes now, so a typo fails with the file's name rather than later
    from .registry import select_rules

    try:
        select_rules(list(cfg.select or []), list(cfg.ignore))
        for g, codes in cfg.per_file_ignores:
            select_rules(None, list(codes))
    except UsageError as e:
        raise _fail(path, "select/ignore", str(e).replace("--select/--ignore: ", "")) from None
    return cfg


def load(path: str | Path) -> Config:
    """Read one config file (`--config`)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: config file not found")
    tomllib = toml()
    try:
        with open(p, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{p}: invalid TOML: {e}") from None
    except OSError as e:
        raise UsageError(f"{p}: cannot read: {e.strerror or e}") from None
    if p.name == "pyproject.toml" or "tool" in data and "onnxdoctor" in data.get("tool", {}):
        section = data.get("tool", {}).get("onnxdoctor")
        if section is None:
            raise UsageError(f"{p}: has no [tool.onnxdoctor] section")
        return parse(section, p)
    return parse(data, p)


class Discovery:
    """Finds the configuration of each model, caching per folder."""

    def __init__(self, explicit: str | Path | None = None) -> None:
        self._explicit = load(explicit) if explicit else None
        self._cache: dict[Path, Config] = {}

    def for_model(self, model_path: str | Path) -> Config:
        if self._explicit is not None:
            return self._explicit
        folder = Path(model_path).resolve().parent
        chain = []
        found = DEFAULT
        d: Path | None = folder
        while d is not None:
            if d in self._cache:
                found = self._cache[d]
                break
            chain.append(d)
            cfg = _config_in(d)
            if cfg is not None:
                found = cfg
                break
            d = d.parent if d.parent != d else None
        for c in chain:
            self._cache[c] = found
        return found


def _config_in(folder: Path) -> Config | None:
    own = folder / "onnxdoctor.toml"
    if own.is_file():
        return load(own)
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file():
        tomllib = toml()
        try:
            with open(pyproject, "rb") as fh:
                data = tomllib.load(fh)
        except (tomllib.TOMLDecodeError, OSError) as e:
            raise UsageError(f"{pyproject}: invalid TOML: {e}") from None
        section = data.get("tool", {}).get("onnxdoctor")
        if section is not None:
            return parse(section, pyproject)
    return None
