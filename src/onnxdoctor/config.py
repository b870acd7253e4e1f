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
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import UsageError

KEYS = {"trt", "precision", "select", "ignore", "fail-on", "per-file-ignores", "shapes", "plugins", "fix"}
FIX_KEYS = {"rules", "atol", "rtol"}
SEVERITIES = ("error", "warning", "info")
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "fp8")


@dataclass(frozen=True)
class Config:
    path: Path | None = None  # the file it came from; None: defaults
    trt: str | None = None
    precision: str | None = None
    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    fail_on: str | None = None
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    shapes: tuple[str, ...] = ()  # "NAME:DIMS" / "NAME:MIN:OPT:MAX" strings
    plugins: tuple[str, ...] = ()
    fix_rules: str | None = None
    fix_atol: float | None = None
    fix_rtol: float | None = None

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


DEFAULT = Config()


def _fail(path: Path, key: str, problem: str) -> UsageError:
    return UsageError(f"{path}: [{'tool.onnxdoctor' if path.name == 'pyproject.toml' else 'onnxdoctor'}] {key}: {problem}")


def _str_list(path: Path, key: str, value) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _fail(path, key, "expected a list of strings")


def parse(data: dict, path: Path) -> Config:
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise _fail(path, unknown[0], f"unknown key (known: {', '.join(sorted(KEYS))})")
    kw: dict = {"path": path}
    if "trt" in data:
        v = data["trt"]
        if not isinstance(v, (str, int, float)):
            raise _fail(path, "trt", "expected a version string such as \"10.15\"")
        from .kb import knowledge_base

        try:
            kb = knowledge_base()
            kw["trt"] = str(v).strip() if kb.resolve_range(str(v)) is not None else kb.resolve(str(v))
        except UsageError as e:
            raise _fail(path, "trt", str(e)) from None
    if "precision" in data:
        if data["precision"] not in PRECISIONS:
            raise _fail(path, "precision", f"expected one of {', '.join(PRECISIONS)}, got {data['precision']!r}")
        kw["precision"] = data["precision"]
    if "select" in data:
        kw["select"] = _str_list(path, "select", data["select"])
    if "ignore" in data:
        kw["ignore"] = _str_list(path, "ignore", data["ignore"])
    if "fail-on" in data:
        if data["fail-on"] not in SEVERITIES:
            raise _fail(path, "fail-on", f"expected one of {', '.join(SEVERITIES)}, got {data['fail-on']!r}")
        kw["fail_on"] = data["fail-on"]
    if "plugins" in data:
        kw["plugins"] = _str_list(path, "plugins", data["plugins"])
    if "per-file-ignores" in data:
        pfi = data["per-file-ignores"]
        if not isinstance(pfi, dict):
            raise _fail(path, "per-file-ignores", "expected a table of glob = [codes]")
        kw["per_file_ignores"] = tuple((g, _str_list(path, f"per-file-ignores.{g}", c)) for g, c in pfi.items())
    if "shapes" in data:
        kw["shapes"] = _shapes(path, data["shapes"])
    if "fix" in data:
        fix = data["fix"]
        if not isinstance(fix, dict):
            raise _fail(path, "fix", "expected a table with rules, atol, rtol")
        bad = sorted(set(fix) - FIX_KEYS)
        if bad:
            raise _fail(path, f"fix.{bad[0]}", f"unknown key (known: {', '.join(sorted(FIX_KEYS))})")
        if "rules" in fix:
            if not isinstance(fix["rules"], (str, list)):
                raise _fail(path, "fix.rules", "expected a ruleset name or a list of codes")
            kw["fix_rules"] = fix["rules"] if isinstance(fix["rules"], str) else ",".join(fix["rules"])
        for k in ("atol", "rtol"):
            if k in fix:
                if not isinstance(fix[k], (int, float)) or isinstance(fix[k], bool) or fix[k] < 0:
                    raise _fail(path, f"fix.{k}", "expected a non-negative number")
                kw[f"fix_{k}"] = float(fix[k])
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


def _shapes(path: Path, value) -> tuple[str, ...]:
    from .shapes import parse_shape

    if not isinstance(value, dict):
        raise _fail(path, "shapes", "expected a table of input = \"1x128\" or \"MIN:OPT:MAX\" or {min, opt, max}")
    out = []
    for name, v in value.items():
        if isinstance(v, str):
            text = f"{name}:{v}"
        elif isinstance(v, dict) and set(v) == {"min", "opt", "max"} and all(isinstance(x, str) for x in v.values()):
            text = f"{name}:{v['min']}:{v['opt']}:{v['max']}"
        elif isinstance(v, list) and all(isinstance(x, int) for x in v):
            text = f"{name}:{'x'.join(map(str, v))}"
        else:
            raise _fail(path, f"shapes.{name}", "expected \"1x128\", \"MIN:OPT:MAX\", [1, 128] or {min, opt, max}")
        try:
            parse_shape(text)
        except UsageError as e:
            raise _fail(path, f"shapes.{name}", str(e)) from None
        out.append(text)
    return tuple(out)


def load(path: str | Path) -> Config:
    """Read one config file (`--config`)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: config file not found")
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
        try:
            with open(pyproject, "rb") as fh:
                data = tomllib.load(fh)
        except (tomllib.TOMLDecodeError, OSError) as e:
            raise UsageError(f"{pyproject}: invalid TOML: {e}") from None
        section = data.get("tool", {}).get("onnxdoctor")
        if section is not None:
            return parse(section, pyproject)
    return None
