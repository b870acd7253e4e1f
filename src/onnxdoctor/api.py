"""The Python API. It mirrors the CLI: `check`, `fix`, `verify`, `profile`, `explain` and
`list_rules` are what the commands run, without click; each returns the object the command renders
(Report, FixResult, VerifyResult, the profile dict). docs/usage.md shows them in use."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from . import prefetch
from ._onnx import ModelProto
from .engine import analyze, analyze_releases
from .errors import ModelLoadError, UsageError
from .findings import ModelReport, ReleaseResult, Report, Severity, merge_releases
from .model import Model, from_proto, load
from .registry import all_rules, get_rule, select_rules
from .rule import Rule
from .target import Target



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
    models: str | os.PathLike | ModelProto | Model | Sequence,
    trt: str | None = None,
    *,
    select: list[str] | None = None,
    ignore: list[str] | None = None,
    plugins: Iterable[str] | None = None,
    precision: str | None = None,
    shapes: Iterable[str] | None = None,
    fail_on: str | None = None,
    config: str | os.PathLike | bool | None = None,
    jobs: int | None = None,
    progress: bool = False,
) -> Report:
    """Check one or more models (paths, directories, ModelProtos or loaded Models) for a TensorRT release.

    `trt` names a release (`"10.15"`, `"10"`, `"latest"`) or a range (`"all"`, `"10.0..11.5"`): then
    every release of the range is checked, each model's report holds the findings per release in
    `ModelReport.releases`, and `ModelReport.oldest_without_errors` answers "which release do I need".

    Settings come from the configuration discovered upward from each model file
    (`[tool.onnxdoctor]` / `onnxdoctor.toml`), or from the file `config` names; `config=False`
    ignores configuration. Arguments given here override the configuration.

    A single unreadable model raises ModelLoadError; with several, unreadable ones are reported in
    `Report.models[i].error` (`Report.unreadable`) and the others are still checked; `exit_code()`
    is then 1, or 2 when no model could be read.

    `jobs`: with several files and jobs > 1, that many files are checked at once in worker processes.
    Otherwise files are checked one at a time, and the shape inference of a big file runs in a light
    helper process on another core while this one parses and indexes it (prefetch.py); jobs == 1
    keeps all work in this process. The findings are identical in every mode.
    """
    from .config import DEFAULT, Discovery

    flags = dict(trt=trt, select=_opt_tuple(select), ignore=_opt_tuple(ignore), plugins=_opt_tuple(plugins),
                 precision=precision, shapes=_opt_tuple(shapes), fail_on=fail_on)
    discovery = None if config is False else Discovery(config if config not in (None, True) else None)
    items = list(models) if isinstance(models, (list, tuple)) else [models]
    single = len(items) == 1 and not (isinstance(items[0], (str, os.PathLike)) and Path(items[0]).is_dir())
    expanded: list = []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            expanded.extend(collect_model_paths([item]))
        else:
            expanded.append(item)
    plans = []
    for item in expanded:
        cfg = discovery.for_model(item) if discovery and isinstance(item, (str, os.PathLike)) else DEFAULT
        plans.append((item, Settings.of(cfg.resolve(item if isinstance(item, (str, os.PathLike)) else None, **flags))))
    # Validate every plan's settings up front: a bad flag or config value is a usage error (exit 2).
    for _, settings in plans:
        settings.target()
        settings.rules()
    reports = _run(plans, jobs, progress, single)
    top = plans[0][1].target() if plans else Settings.of(DEFAULT.resolve(**flags)).target()
    return Report(target=top, models=reports)


@dataclass(frozen=True)
class Settings:
    """Everything that decides one model's check; picklable (for --jobs)."""

    trt: str | None
    select: tuple[str, ...] | None
    ignore: tuple[str, ...]
    plugins: tuple[str, ...]
    precision: str | None
    shapes: tuple[str, ...]
    fail_on: str

    @classmethod
    def of(cls, cfg) -> Settings:
        """The settings of a check from a resolved configuration (config.Config.resolve)."""
        return cls(trt=cfg.trt, select=cfg.select, ignore=tuple(cfg.ignore), plugins=tuple(cfg.plugins),
                   precision=cfg.precision, shapes=tuple(cfg.shapes), fail_on=cfg.fail_on or "error")

    def target(self) -> Target:
        """The release checked (the newest of a range)."""
        return self.targets()[-1]

    def targets(self) -> tuple[Target, ...]:
        """Every release checked, oldest first: one, or those of a range (`all`, `10.0..11.5`)."""
        return _targets(self.trt, self.precision, self.plugins, self.shapes)

    @property
    def is_range(self) -> bool:
        from .kb import knowledge_base

        return knowledge_base().resolve_range(self.trt) is not None

    def rules(self) -> tuple[Rule, ...]:
        return select_rules(list(self.select) if self.select else None, list(self.ignore))


@functools.lru_cache(maxsize=64)
def _targets(trt, precision, plugins, shapes) -> tuple[Target, ...]:
    from .kb import knowledge_base
    from .shapes import parse_shapes

    frozen = parse_shapes(shapes) if shapes else None
    versions = knowledge_base().resolve_range(trt) or (trt,)
    return tuple(Target.make(v, precision=precision, plugins=plugins, shapes=frozen) for v in versions)


def _opt_tuple(value) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return tuple(f"{k}:{v}" for k, v in value.items())
    return tuple(value)


def _run(plans, jobs: int | None, progress: bool, single: bool) -> list[ModelReport]:
    if jobs is not None and jobs > 1 and len(plans) > 1 and all(isinstance(item, (str, os.PathLike)) for item, _ in plans):
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_check_path, str(item), settings) for item, settings in plans]
            return _collect(futures, progress, lambda f: f.result())
    # Here with one file (or in-memory models): unless jobs == 1, a big file's shape inference runs in
    # a helper process (prefetch.py).
    helpers = jobs != 1

    def run(plan):
        item, settings = plan
        if helpers and isinstance(item, (str, os.PathLike)):
            prefetch.start(item)
        return _check_item(item, settings, single, helpers)

    return _collect(list(plans), progress, run)


def _collect(work, progress: bool, get) -> list[ModelReport]:
    """Results in input order, with a progress bar on stderr when asked and there are more than a few files."""
    if not progress or len(work) <= 5:
        return [get(w) for w in work]
    from rich.progress import Progress

    out = []
    with Progress(transient=True, console=_stderr_console()) as bar:
        task = bar.add_task("checking models", total=len(work))
        for w in work:
            out.append(get(w))
            bar.advance(task)
    return out


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _check_path(path: str, settings: Settings) -> ModelReport:
    """Worker entry point (a separate process with --jobs)."""
    return _check_item(path, settings, single=False)


def _check_item(item, settings: Settings, single: bool, use_prefetch: bool = False) -> ModelReport:
    try:
        targets = settings.targets()
        report = check_one(item, targets if settings.is_range else targets[-1], settings.rules(),
                           use_prefetch=use_prefetch)
    except ModelLoadError as e:
        if single:
            raise
        return ModelReport(path=e.path, findings=[], error=str(e), fail_on=settings.fail_on, trt=settings.target().trt)
    report.fail_on = settings.fail_on
    report.trt = settings.target().trt
    return report


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


def check_one(item, target: Target | Sequence[Target], rules: Sequence[Rule], *,
              use_prefetch: bool = False) -> ModelReport:
    """Check one model for a release, or for several (a sequence of Targets, oldest first: the
    report then holds each release's findings in `releases`). `use_prefetch`: use the helper
    process's shape inference, if one was started (prefetch.start)."""
    with _gc_paused():
        return _check_one(item, target, rules, use_prefetch)


def _check_one(item, target, rules: Sequence[Rule], use_prefetch: bool) -> ModelReport:
    targets = list(target) if isinstance(target, (list, tuple)) else None
    first = targets[-1] if targets else target
    # Analysis freezes each input at its OPT dims (for a single --shape NAME:DIMS, those dims).
    frozen = {name: spec.opt for name, spec in first.shapes.items()} or None
    if isinstance(item, Model):
        model = item
    elif isinstance(item, ModelProto):
        model = from_proto(item, shapes=frozen)
    else:
        model = load(item, shapes=frozen, use_prefetch=use_prefetch, lazy_weights=True)
    inputs = tuple(r.path for r in model.external_files.values())
    if targets is None:
        return ModelReport(path=model.path, findings=analyze(model, target, rules), inputs=inputs)
    results = [ReleaseResult(t.trt, fs) for t, fs in zip(targets, analyze_releases(model, targets, rules))]
    return ModelReport(path=model.path, findings=merge_releases(results), releases=results, inputs=inputs)


def list_rules() -> list[Rule]:
    """Every rule (built-in and plugins'), by code."""
    return list(all_rules())


def explain(code: str) -> str:
    """A rule's documentation (by code or name), with the rewrites of `fix` that resolve its findings."""
    from .rule_fixes import describe

    rule = get_rule(code)
    return f"{rule.code} {rule.name} (default severity: {rule.severity})\nFix: {describe(rule.fixes)}\n\n{rule.doc()}\n"


def _config(config, model) -> object:
    """The configuration of one model, as `check` finds it: `config` a file to use, False to ignore
    configuration, None (or True) to discover it upward from a model file."""
    from .config import DEFAULT, Discovery

    if config is False:
        return DEFAULT
    explicit = config if config not in (None, True) else None
    if explicit is None and not isinstance(model, (str, os.PathLike)):
        return DEFAULT  # an in-memory model has no folder to discover from
    return Discovery(explicit).for_model(model if isinstance(model, (str, os.PathLike)) else ".")


def _with_weights(model, inputs, what: str, store=None):
    """(proto with its weights, whether its file kept them in external data, the name shown). With
    `store` (a weights.WeightStore), a file's external data of main-graph initializers go there."""
    if isinstance(model, ModelProto):
        return model, False, "<memory>"
    from .fix import load_with_weights

    loaded = load_with_weights(model, store)
    inputs.add_model(model, loaded.data_files, what=what)
    return loaded.proto, loaded.external, os.fspath(model)


def _budget(time_limit: float | None, activation_limit: float | None, shown: str, command: str):
    """The budget of a command (budget.Budget), defaults where None; its deadline starts now."""
    from .budget import DEFAULT_ACTIVATION_MB, DEFAULT_SECONDS, Budget

    if time_limit is not None and not time_limit > 0 or activation_limit is not None and not activation_limit > 0:
        raise UsageError("--time-limit and --activation-limit must be positive")
    return Budget(seconds=DEFAULT_SECONDS if time_limit is None else time_limit,
                  activation_mb=DEFAULT_ACTIVATION_MB if activation_limit is None else activation_limit, label=shown,
                  command=command)


def _shown(model) -> str:
    return os.fspath(model) if isinstance(model, (str, os.PathLike)) else "<memory>"


def fix(
    model: str | os.PathLike | ModelProto,
    output: str | os.PathLike | None = None,
    *,
    in_place: bool = False,
    report: str | os.PathLike | None = None,
    diff: bool = False,
    rules: str | None = None,
    trt: str | None = None,
    precision: str | None = None,
    plugins: Iterable[str] | None = None,
    unsafe_fixes: bool = False,
    prove: bool = True,
    atol: float | None = None,
    rtol: float | None = None,
    shapes: Iterable[str] | None = None,
    data: str | os.PathLike | None = None,
    seed: int | None = None,
    full_size_proof: bool = False,
    keep_io_types: bool = True,
    keep_fp32: Iterable[str] = (),
    max_abs: float | None = None,
    keep_norm_stats: bool = False,
    config: str | os.PathLike | bool | None = None,
    log=None,
    progress: bool = False,
    time_limit: float | None = None,
    activation_limit: float | None = None,
    hard_stop=None,
):
    """`onnxdoctor fix`: rewrite a model (a path or an onnx.ModelProto) for a TensorRT release, prove
    every rewrite in ONNX Runtime, and write the result to `output` (or over the input with
    `in_place=True`; neither: a dry run that writes no model). `report` gets the full JSON report
    (with the node diff when `diff`). Options left None come from the configuration, as in `check`;
    `log` receives progress lines. Returns the FixResult: `changed`, `before`/`after` findings,
    `steps`, `proof`, and `written` (the files written) and `fail_on` (the configured fail-on level).
    `time_limit` (seconds; None: the configuration's, else 600; inf: none) bounds the whole command
    up to the writing of the output, reading the model included (budget.Budget: over it,
    BudgetExceeded and nothing written); `full_size_proof`: prove at the declared input size even
    where a large image input could be proven smaller (FixOptions.full_size_proof); `activation_limit` (MB held at once) bounds every ONNX Runtime run (budget.run_session) and the layerwise
    runs of --precision conversion. `hard_stop(message)` is called from a watchdog thread when the
    command is still running a few seconds past its time limit (the CLI ends the process there).
    Raises OnnxDoctorError (UsageError, ModelLoadError, FixError) with the one-line message the CLI
    prints."""
    from .fix import DEFAULT_ATOL, DEFAULT_RTOL, DEFAULT_SEED, FixOptions, fix_model, load_ruleset, node_diff
    from .io import Inputs, distinct, save_model, target, write_text

    dry_run = output is None and not in_place
    where = model if isinstance(model, (str, os.PathLike)) else None
    if in_place and where is None:
        raise UsageError("in_place needs a model file, not an in-memory model")
    destination = where if in_place else output
    distinct(("-o", destination), ("--report", report))
    cfg = _config(config, model).resolve(fix_rules=rules, trt=trt, precision=precision, plugins=_opt_tuple(plugins),
                                         fix_atol=atol, fix_rtol=rtol, shapes=_opt_tuple(shapes),
                                         fix_time_limit=time_limit, fix_activation_limit=activation_limit)
    shown = _shown(model)
    budget = _budget(cfg.fix_time_limit, cfg.fix_activation_limit, shown, "fix")
    inputs = Inputs()
    # Everything up to the writing of the output runs under the time limit; the writing does not (it is
    # not interrupted: a model and its data are replaced as a pair).
    with budget.running(hard_stop):
        if log is not None and where is not None:
            log(f"reading {os.fspath(where)}")
        budget.enter("reading the model")
        from .weights import WeightStore

        # A file's big external weights are read into the run's store and stay there until written
        # (held once; the report reads structures only).
        store = WeightStore()
        proto, external, shown = _with_weights(model, inputs, "the input model", store)
        if where is not None:
            # Read from a file here, so nothing else holds it: its big inline initializers go to the
            # store now, and the model read (its weights a second copy of the store's) goes.
            proto = store.strip(proto)
        for other, what in ((data, "the --data file"), (config if config not in (None, True, False) else None, "the --config file")):
            if other is not None:
                inputs.add(other, what)
        if not dry_run:
            target(destination, inputs, option="-o", in_place=in_place, hint="pass --in-place to overwrite it")
        if report is not None:
            target(report, inputs, option="--report")
        opts = FixOptions(
            rules=cfg.fix_rules or "default",
            trt=cfg.trt,
            precision=cfg.precision,
            plugins=cfg.plugins,
            unsafe=unsafe_fixes,
            prove=prove,
            atol=cfg.fix_atol if cfg.fix_atol is not None else DEFAULT_ATOL,
            rtol=cfg.fix_rtol if cfg.fix_rtol is not None else DEFAULT_RTOL,
            shapes=cfg.shapes,
            data=os.fspath(data) if data is not None else None,
            seed=DEFAULT_SEED if seed is None else seed,
            full_size_proof=full_size_proof,
            progress=progress,
            precision_options={"keep_io_types": keep_io_types, "keep_fp32": tuple(keep_fp32),
                               **({"max_abs": max_abs} if max_abs is not None else {}),
                               **({"keep_norm_stats": True} if keep_norm_stats else {})},
            path=shown,
            budget=budget,
        )
        from ._memory import collecting

        with collecting():
            result = fix_model(proto, opts, log=log, weights=store)
        proto = None
        if where is not None and result.stubbed is not result.original:
            from .weights import weightless

            # Read from a file here, so nothing else holds its weights: the report and the diff read
            # the original's structure only; its weights go before the result is written (a model's
            # size off the peak of a one-file model).
            result.original = weightless(result.original)
        budget.enter("preparing the output")
    # --in-place with nothing changed leaves the file alone; -o always gets the model.
    if not dry_run and (result.changed or not in_place):
        if log is not None:
            log(f"writing {os.fspath(destination)}")
        result.written = [str(w) for w in save_model(result.stubbed, destination, inputs, external=external,
                                                     in_place=in_place, weights=result.weights)]
    result.fail_on = cfg.fail_on or load_ruleset(opts.rules).fail_on or "error"
    result.diff = node_diff(result.original, result.stubbed) if diff else None
    if report is not None:
        import json

        from .report.fix import to_dict

        text = json.dumps(to_dict(result, shown, result.written, diff=result.diff, dry_run=dry_run), indent=2) + "\n"
        write_text(report, text, inputs, option="--report")
    return result


def verify(
    model: str | os.PathLike | ModelProto,
    against: str | os.PathLike | ModelProto | None = None,
    *,
    backend: str = "onnxrt",
    layerwise: bool = False,
    fp16: bool = False,
    data: str | os.PathLike | None = None,
    seed: int = 0,
    shapes: Iterable[str] | None = None,
    trt: str | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    output: str | os.PathLike | None = None,
    format: str = "text",
    show_all: bool = False,
    config: str | os.PathLike | bool | None = None,
    log=None,
    progress=None,
    time_limit: float | None = None,
    activation_limit: float | None = None,
    hard_stop=None,
):
    """`onnxdoctor verify`: compare a candidate against ONNX Runtime on `model` — another model
    (`against`), FP16 emulation on CPU (`fp16=True`), or a TensorRT engine (`backend="trt"`) —
    outputs only or every tensor (`layerwise`). `output` gets the report in `format` ("text" or
    "json"). `log` receives the line saying which inputs were used; `progress(done, total)` is
    called per segment run (nodes done, nodes). `trt` and `shapes` left None come from the
    configuration, as in `check`. Returns the VerifyResult (`passed`, `comparisons`,
    `first_divergence`, `inputs`). `time_limit` bounds the whole command up to the writing of the
    report (as for fix; default 600 s), `activation_limit` the activations of every run. Raises OnnxDoctorError; ONNX Runtime's own errors propagate."""
    from . import prove as proving
    from .inputs import plan_inputs
    from .io import Inputs, target, write_text
    from .shapes import parse_shapes
    from .verify import fp16_emulation, render_text, verify_against, verify_trt

    if backend not in ("onnxrt", "trt"):
        raise UsageError(f"backend {backend!r}: expected onnxrt or trt")
    if format not in ("text", "json"):
        raise UsageError(f"format {format!r}: expected text or json")
    atol = proving.DEFAULT_ATOL if atol is None else atol
    rtol = proving.DEFAULT_RTOL if rtol is None else rtol
    if backend == "onnxrt" and against is None and not fp16:
        raise UsageError("nothing to compare: give --against OTHER.onnx, --fp16 (emulation), or --backend trt")
    if backend == "trt" and not isinstance(model, (str, os.PathLike)):
        raise UsageError("the TensorRT backend needs a model file")
    cfg = _config(config, model).resolve(trt=trt, shapes=_opt_tuple(shapes))
    trt = cfg.trt
    specs = parse_shapes(list(cfg.shapes))
    frozen = {n: s.opt for n, s in specs.items()}
    # A TensorRT engine build takes what it takes: only an explicit --time-limit bounds that backend.
    default = float("inf") if backend == "trt" and time_limit is None else None
    budget = _budget(time_limit if time_limit is not None else default, activation_limit, _shown(model), "verify")
    inputs = Inputs()
    with budget.running(hard_stop):
        budget.enter("reading the model")
        reference, _, shown = _with_weights(model, inputs, "the input model")
        _require_outputs(bool(reference.graph.output), shown, "there is nothing to compare")
        if data is not None:
            inputs.add(data, "the --data file")
        if config not in (None, True, False):
            inputs.add(config, "the --config file")
        if isinstance(against, (str, os.PathLike)):
            inputs.add(against, "the --against model")
        if output is not None:
            target(output, inputs, option="-o")
        budget.enter("finding inputs the model runs on in ONNX Runtime")
        plan = plan_inputs(reference, path=shown, shapes=frozen, data=os.fspath(data) if data is not None else None,
                           seed=seed)
        if log is not None:
            log(plan.describe())
        if backend == "trt":
            budget.enter("running TensorRT")
            target_release = Target.make(trt)
            result = verify_trt(os.fspath(model), plan.feeds, layerwise=layerwise, fp16=fp16, trt_version=target_release.trt,
                                strongly_typed=target_release.release.strongly_typed, shapes=specs, atol=atol, rtol=rtol)
        elif against is not None:
            budget.enter("reading the --against model")
            other, _, other_shown = _with_weights(against, inputs, "the --against model")
            if output is not None:
                target(output, inputs, option="-o")  # also not one of the candidate's external-data files
            budget.enter("comparing the models")
            result = verify_against(shown, other_shown, reference, other, plan.feeds, layerwise=layerwise,
                                    atol=atol, rtol=rtol, progress=progress, budget=budget)
        else:
            budget.enter("emulating FP16")
            result = fp16_emulation(shown, reference, plan.feeds, rtol=rtol, progress=progress, budget=budget)
        budget.enter("preparing the report")
    result.inputs = plan
    if output is not None:
        import json

        text = json.dumps(result.to_dict(), indent=2) + "\n" if format == "json" else render_text(result, show_all=show_all)
        write_text(output, text, inputs, option="-o")
    return result


def profile(
    model: str | os.PathLike,
    *,
    shapes: Iterable[str] | None = None,
    trt: str | None = None,
    precision: str | None = None,
    engine: str | None = None,
    validate: bool = True,
    config: str | os.PathLike | bool | None = None,
    log=None,
    time_limit: float | None = None,
    activation_limit: float | None = None,
    hard_stop=None,
) -> dict:
    """`onnxdoctor profile`: an optimization profile (min/opt/max) for every dynamic input of a model
    file and the trtexec command that builds its engine; with `validate`, min, opt and max are each
    run in ONNX Runtime (`log` is told before). Options left None come from the configuration.
    The whole command is bounded by `time_limit` (seconds, default 600) and every validation run by
    `activation_limit` (MB, default 2048): a shape whose run would take more is not run, and the
    profile says so (budget.Budget).
    Returns what profile.build_profile returns (the dict `--format json` prints)."""
    from .model import load
    from .profile import build_profile
    from .shapes import parse_shapes

    cfg = _config(config, model).resolve(shapes=_opt_tuple(shapes), trt=trt, precision=precision)
    specs = parse_shapes(list(cfg.shapes))
    target_release = Target.make(cfg.trt, precision=cfg.precision)
    budget = _budget(time_limit, activation_limit, _shown(model), "profile")
    with budget.running(hard_stop):
        budget.enter("reading the model")
        m = load(model, lazy_weights=True)  # shapes only: big inline weights stay in the file
        # a trtexec line for it would not build (the builder refuses a network without outputs)
        _require_outputs(bool(m.main.outputs), m.path,
                         "TensorRT builds no engine from it and there is no profile to give")
        proto = None
        if validate:
            from .fix import load_for_fix

            proto, _ = load_for_fix(model)  # the weights, to run min/opt/max in ONNX Runtime
            if log is not None:
                log("running min/opt/max in ONNX Runtime (--no-validate skips this)")
            budget.enter("running min/opt/max in ONNX Runtime")
        return build_profile(m, target_release, specs, engine=engine or str(Path(model).with_suffix(".engine")),
                             proto=proto)


def _require_outputs(has_outputs: bool, shown, consequence: str) -> None:
    """verify's and profile's refusal of a model without graph outputs (check's MOD507), one line."""
    if not has_outputs:
        raise UsageError(f"{shown}: the model declares no graph outputs, so {consequence} "
                         "(`onnxdoctor check` reports it: MOD507)")


__all__ = ["check", "check_one", "collect_model_paths", "explain", "fix", "list_rules", "profile", "verify", "Severity",
           "UsageError"]
