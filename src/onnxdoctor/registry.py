"""The one explicit table of rules, sorted by code. Third-party rules come through the
`onnxdoctor.rules` entry-point group (each entry point names an iterable of Rule classes)."""

from __future__ import annotations

import functools
import os
import sys

from .checks import grf, mod, prc, shp, trt
from .errors import UsageError
from .rule import Rule

# Each family module holds a literal, code-ordered tuple of its rule classes.
BUILTIN_RULES: tuple[type[Rule], ...] = (*trt.RULES, *shp.RULES, *prc.RULES, *grf.RULES, *mod.RULES)


@functools.lru_cache(maxsize=1)
def all_rules() -> tuple[Rule, ...]:
    rules: list[Rule] = [cls() for cls in BUILTIN_RULES]
    rules.extend(_plugin_rules())
    rules.sort(key=lambda r: r.code)
    seen: dict[str, Rule] = {}
    for r in rules:
        if r.code in seen:
            raise RuntimeError(f"rule code {r.code} is used by both {seen[r.code].name} and {r.name}")
        seen[r.code] = r
    return tuple(rules)


def _plugin_rules() -> list[Rule]:
    if not _may_declare_plugins():
        return []
    from importlib.metadata import entry_points

    out: list[Rule] = []
    for ep in entry_points(group="onnxdoctor.rules"):
        for cls in ep.load():
            out.append(cls())
    return out


def _may_declare_plugins() -> bool:
    """Whether an installed distribution may declare an `onnxdoctor.rules` entry point: a scan of the
    sys.path folders' *.dist-info/*.egg-info/EGG-INFO entry_points.txt files for the group's name
    (~1 ms), so that the usual case, no plugin, does not import importlib.metadata (0.03-0.06 s, a
    twentieth of a check). Whatever the scan cannot see (a zip file on sys.path, a custom distribution
    finder) answers True and importlib.metadata decides."""
    import importlib.machinery

    for finder in sys.meta_path:
        if hasattr(finder, "find_distributions") and finder is not importlib.machinery.PathFinder:
            return True
    for entry in sys.path:
        folder = entry or "."
        try:
            names = os.listdir(folder)
        except NotADirectoryError:
            return True  # a zip file on sys.path
        except OSError:
            continue  # missing folders (e.g. pythonXY.zip) hold no distributions
        for name in names:
            if name.endswith((".dist-info", ".egg-info")) or name == "EGG-INFO":
                try:
                    with open(os.path.join(folder, name, "entry_points.txt"), "rb") as fh:
                        if b"onnxdoctor.rules" in fh.read():
                            return True
                except OSError:
                    continue
    return False


def get_rule(code_or_name: str) -> Rule:
    key = code_or_name.strip()
    for r in all_rules():
        if r.code == key.upper() or r.name == key.lower():
            return r
    raise UsageError(f"unknown rule {code_or_name!r}; `onnxdoctor rules` lists them")


def select_rules(select: list[str] | None = None, ignore: list[str] | None = None) -> tuple[Rule, ...]:
    """Rules matching `select` (codes, code prefixes, families or names; default all) minus `ignore`."""

    def matches(rule: Rule, pattern: str) -> bool:
        p = pattern.strip()
        if not p:
            return False
        if p.upper() == "ALL":
            return True
        return rule.code.startswith(p.upper()) or rule.name == p.lower()

    def validate(patterns: list[str]) -> None:
        for p in patterns:
            if p.strip() and not any(matches(r, p) for r in all_rules()):
                raise UsageError(f"--select/--ignore: {p!r} matches no rule code, prefix or name")

    rules = all_rules()
    if select:
        validate(select)
        rules = tuple(r for r in rules if any(matches(r, p) for p in select))
    if ignore:
        validate(ignore)
        rules = tuple(r for r in rules if not any(matches(r, p) for p in ignore))
    return rules
