"""The Python API. It mirrors the CLI: the same functions, without click."""

from __future__ import annotations

import contextlib
import gc
import os
from pathlib import Path
from typing import Iterable, Sequence

import onnx

from .engine import analyze
from .errors import ModelLoadError, UsageError
from .findings import ModelReport, Report, Severity
from .model import Model, from_proto, load
from .registry import all_rules, get_rule, select_rules
from .rule import Rule
from .target import Target

PathLike = "str | os.PathLike[str]"


def collect_model_paths(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Files as given; directories searched recursively for *.onnx (sorted). Missing paths are kept
    so that loading reports them."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(str(f) for f in path.rglob("*.onnx") if f.is_file())
            out.extend(found)
        else:
            out.append(str(p))
    seen: set[str] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def check(
    models: str | os.PathLike | onnx.ModelProto | Model | Sequence,
    trt: str | None = None,
    *,
    select: list[str] | None = None,
    ignore: list[str] | None = None,
    plugins: Iterable[str] = (),
    precision: str | None = None,
    shapes: Iterable[str] | dict | None = None,
    target: Target | None = None,
) -> Report:
    """Check one or more models (paths, directories, ModelProtos or loaded Models) for a TensorRT release.

    A single unreadable model raises ModelLoadError; with several, unreadable ones are reported in
    `Report.models[i].error` and the others are still checked.
    """
    if shapes is not None and not isinstance(shapes, dict):
        from .shapes import parse_shapes

        shapes = parse_shapes(shapes)
    target = target or Target.make(trt, precision=precision, plugins=plugins, shapes=shapes)
    rules = select_rules(select, ignore)
    items = list(models) if isinstance(models, (list, tuple)) else [models]
    single = len(items) == 1 and not (isinstance(items[0], (str, os.PathLike)) and Path(items[0]).is_dir())
    expanded: list = []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            expanded.extend(collect_model_paths([item]))
        else:
            expanded.append(item)
    reports = []
    for item in expanded:
        try:
            reports.append(check_one(item, target, rules))
        except ModelLoadError as e:
            if single:
                raise
            reports.append(ModelReport(path=e.path, findings=[], error=str(e)))
    return Report(target=target, models=reports)


@contextlib.contextmanager
def _gc_paused():
    """Loading builds tens of thousands of acyclic objects; cyclic GC passes over them find nothing and
    cost 10-25% of a check. Pause it for the duration, restoring the caller's setting."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def check_one(item, target: Target, rules: Sequence[Rule]) -> ModelReport:
    with _gc_paused():
        return _check_one(item, target, rules)


def _check_one(item, target: Target, rules: Sequence[Rule]) -> ModelReport:
    # Analysis freezes each input at its OPT dims (for a single --shape NAME:DIMS, those dims).
    frozen = {name: spec.opt for name, spec in target.shapes.items()} or None
    if isinstance(item, Model):
        model = item
    elif isinstance(item, onnx.ModelProto):
        model = from_proto(item, shapes=frozen)
    else:
        model = load(item, shapes=frozen)
    return ModelReport(path=model.path, findings=analyze(model, target, rules))


def list_rules(trt: str | None = None) -> list[Rule]:
    return list(all_rules())


def explain(code: str) -> str:
    rule = get_rule(code)
    return f"{rule.code} {rule.name} (default severity: {rule.severity})\n\n{rule.doc()}\n"


__all__ = ["check", "check_one", "collect_model_paths", "explain", "list_rules", "Severity", "UsageError"]
