"""Command-line interface. The only module that knows about click; commands call the API and return exit codes."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn

import click

from . import __version__
from .errors import OnnxDoctorError, UsageError
from .report import FORMATS
from .terminal import printable, printable_lines

from .config import PRECISIONS, SEVERITIES


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _write_output(text: str, output: str | None, inputs=None, option: str = "-o", *, raw: bool = False) -> None:
    """Print to stdout, or write FILE through the one write path (atomic, never over an input).
    Control characters that came from the model are escaped unless `raw` (JSON; rich's own colours)."""
    if not raw:
        text = printable_lines(text)
    if output is None:
        click.echo(text, nl=False)
        return
    from .io import Inputs, write_text

    try:
        write_text(output, text, inputs or Inputs(), option=option)
    except OnnxDoctorError as e:
        _fail(str(e))


def _fail(message: str) -> NoReturn:
    click.echo(f"onnxdoctor: {printable(message)}", err=True)
    sys.exit(2)


class _Terminated(BaseException):
    """SIGTERM during fix or verify (a BaseException: no `except Exception` on the way swallows it)."""


class _Scratch:
    """A command's temporary folder, made the default of `tempfile` while the command computes, and
    the hard stop of its time limit (called with the one line: removes the folder, says so, exits 2)."""

    def __init__(self, command: str) -> None:
        import tempfile

        self.root = tempfile.mkdtemp(prefix=f"onnxdoctor-{command}-")
        self.saved = tempfile.tempdir
        tempfile.tempdir = self.root  # every temporary of the command (proof models, checker files) goes here

    def __call__(self, message: str) -> NoReturn:
        self.close()
        # os.write, not click: the main thread may hold sys.stderr's lock
        os.write(2, f"onnxdoctor: {printable(message)}\n".encode("utf-8", "replace"))
        os._exit(2)

    def close(self) -> None:
        """Remove the folder: nothing after the computing uses it, and a kill while the output is
        written must not leave it behind (budget.running calls this as the computing ends; the end of
        the command again: idempotent)."""
        import shutil
        import tempfile

        if tempfile.tempdir == self.root:
            tempfile.tempdir = self.saved
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def _guarded(model: str, command: str) -> Iterator[Callable[[str], NoReturn]]:
    """The frame of a long command (fix, verify): its temporaries in one private folder (_Scratch),
    removed as the computing ends and on every way out; SIGTERM ends the command like an error (exit
    2, one line, temporaries removed). Gives the hard stop of its time limit: called from a watchdog
    thread when the command is still running past the limit (ONNX Runtime building a session
    releases the GIL but never returns to the Python code the SIGALRM interrupts)."""
    import signal
    import threading

    scratch = _Scratch(command)

    def on_term(signum, frame) -> None:
        raise _Terminated()

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if main_thread else None
    try:
        yield scratch
    except _Terminated:
        _fail(f"{model}: {command} stopped by SIGTERM before it finished (its temporary files removed)")
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        scratch.close()


# -- option groups shared by the commands: one definition each, so they read and behave alike -----
def _options(*decorators):
    """Apply several click options as one decorator, in the order written."""

    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


def _trt_option(help: str = "TensorRT release (default: latest, or the configuration's trt)."):
    return click.option("--trt", "trt", default=None, metavar="VERSION", help=help)


def _precision_option(help: str):
    return click.option("--precision", type=click.Choice(PRECISIONS), default=None, help=help)


def _plugin_option(help: str = "A TensorRT plugin you will load (op types with this name are not errors)."):
    return click.option("--plugin", "plugins", multiple=True, metavar="NAME", help=help)


def _shape_option(help: str, metavar: str = "NAME:DIMS"):
    return click.option("--shape", "shapes", multiple=True, metavar=metavar, help=help)


def _fail_on_option(help: str):
    return click.option("--fail-on", type=click.Choice(SEVERITIES), default=None, help=help)


# Where the settings come from: every command that has settings takes these two, and passes
# `_config_source(config, isolated)` on (config.Config.resolve merges the flags in).
_config_options = _options(
    click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                 help="Use this configuration file instead of discovering pyproject.toml/onnxdoctor.toml upward from the model."),
    click.option("--isolated", is_flag=True, help="Ignore all configuration files."),
)


def _config_source(config, isolated: bool):
    return False if isolated else config


# The budgets of fix, verify and profile: one deadline, and the activation memory of every ONNX
# Runtime run.
_budget_options = _options(
    click.option("--time-limit", type=float, default=None, metavar="SECONDS",
                 help="Stop the whole command (reading, checks, inputs, rewrites, proofs, layerwise runs, profile "
                      "validation; not the writing of the output) after this long, with a clear error and nothing "
                      "written (default 600; inf: no limit)."),
    click.option("--activation-limit", type=float, default=None, metavar="MB",
                 help="Most activation memory an ONNX Runtime run (finding inputs, a proof, a comparison, a "
                      "layerwise segment, a profile's min/opt/max) may take at once (default 2048)."),
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="onnxdoctor")
def main() -> None:
    """Will this ONNX model build with TensorRT? Checks, per TensorRT release and node by node,
    what the TensorRT ONNX parser will reject - without a GPU or TensorRT - then fixes what can be
    fixed (proving every rewrite in ONNX Runtime) and compares models layer by layer.

    \b
    Examples:
      onnxdoctor check model.onnx                 # latest TensorRT
      onnxdoctor check model.onnx --trt 8.6       # a specific release
      onnxdoctor check models/ --format sarif -o onnxdoctor.sarif
      onnxdoctor fix model.onnx -o fixed.onnx --trt 10.15
      onnxdoctor verify model.onnx --against fixed.onnx --layerwise
      onnxdoctor profile model.onnx               # min/opt/max + trtexec command
      onnxdoctor explain TRT101

    Exit codes: 0 clean, 1 findings (or differences) at or above --fail-on, 2 usage error or
    unreadable model. `check` over several models goes on past an unreadable one, lists it at the
    end and exits 1 (2 when none could be read).
    """


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@_trt_option("TensorRT release: 8.6, 10, 10.15, 11, latest (default: latest, or the configuration's trt); or every "
             "release of a range (all, 10.0..11.5, 10..): a table of releases and the oldest one without errors.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True, help="Report format.")
@click.option("--show", "show", multiple=True, metavar="SEVERITIES",
              help="Text report: severities to list (error, warning, info, all; comma-separated). Default: error,warning; "
                   "the others are counted.")
@click.option("-v", "--verbose", is_flag=True, help="Text report: every finding on its own line, info included.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write the report to FILE instead of stdout.")
@click.option("--select", multiple=True, metavar="CODES", help="Only these rules: codes, prefixes (TRT1), families (TRT) or names; comma-separated or repeated.")
@click.option("--ignore", multiple=True, metavar="CODES", help="Skip these rules (same forms as --select).")
@_fail_on_option("Lowest severity that makes the exit code 1 (default: error, or the configuration's fail-on).")
@_plugin_option()
@_precision_option("Precision you intend to build in.")
@_shape_option("Freeze an input for the analysis, e.g. input_ids:1x128 (repeatable).")
@_config_options
@click.option("--baseline", type=click.Path(dir_okay=False), default=None, help="Report only findings that are not in this baseline file.")
@click.option("--write-baseline", type=click.Path(dir_okay=False), default=None, help="Record the current findings in FILE (then exit 0) for later --baseline runs.")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None,
              help="Processes: with several files, check N at once. Default: files one at a time, the shape "
                   "inference of a big one on a second core; 1: everything in one process.")
@click.option("--color/--no-color", default=None, help="Colour the text report (default: when stdout is a terminal).")
def check(paths, trt, fmt, show, verbose, output, select, ignore, fail_on, plugins, precision, shapes, config, isolated,
          baseline, write_baseline, jobs, color) -> None:
    """Check ONNX models (files or directories, searched for *.onnx) for a TensorRT release."""
    try:
        shown = _severities(show)
    except ValueError as e:
        _fail(str(e))
    if _standalone and len(paths) == 1 and not os.path.isdir(paths[0]):
        # One model, then _fast_exit: a cyclic garbage collection over the loaded graph (~0.07 s, when
        # the check re-enables collection at its end) would free nothing that matters. With several
        # models, collection stays on between them (a checked model's views hold reference cycles).
        import gc

        gc.disable()
    if jobs != 1 and len(paths) == 1:
        from . import prefetch

        prefetch.start(paths[0])  # shape inference on the second core (the console script started it already)
    if _standalone:
        from . import _onnx

        _onnx.use_light()  # onnx's protobuf classes and C++ extension, not its whole package (~0.15 s)
        # numpy's OpenBLAS starts a thread per core at import, which spins on the core the helper
        # process infers on; a check does no linear algebra.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .api import check as api_check, collect_model_paths
    from .findings import Severity
    from .report import render

    try:
        # Outputs are checked before the run (against the models found) and again before writing
        # (against every file the run read).
        _distinct(("-o", output), ("--write-baseline", write_baseline))
        early = _check_inputs(collect_model_paths(paths), (), ("the --baseline file", baseline), ("the --config file", config))
        for option, out in (("-o", output), ("--write-baseline", write_baseline)):
            if out is not None:
                _target(out, early, option)
        report = api_check(
            list(paths), trt,
            select=_split(select) or None, ignore=_split(ignore) or None, plugins=_split(plugins) or None,
            precision=precision, shapes=list(shapes) or None, fail_on=fail_on,
            config=_config_source(config, isolated), jobs=jobs,
            progress=sys.stderr.isatty(),
        )
    except OnnxDoctorError as e:
        _fail(str(e))
    if not report.models:
        _fail(f"no .onnx files found in {', '.join(paths)}")
    from . import baseline as baseline_mod

    inputs = _check_inputs([m.path for m in report.models], [f for m in report.models for f in m.inputs],
                           ("the --baseline file", baseline), ("the --config file", config))
    if write_baseline:
        if any(m.error for m in report.models):
            _fail(next(m.error for m in report.models if m.error))
        try:
            n = baseline_mod.write(report, write_baseline, inputs)
        except OnnxDoctorError as e:
            _fail(str(e))
        click.echo(f"onnxdoctor: wrote {n} finding(s) to baseline {write_baseline}", err=True)
        sys.exit(0)
    if baseline:
        try:
            dropped = baseline_mod.filter_new(report, baseline)
        except OnnxDoctorError as e:
            _fail(str(e))
        if dropped and fmt == "text":
            click.echo(f"onnxdoctor: {dropped} finding(s) already in baseline {baseline} not shown", err=True)
    if color is None:
        color = output is None and sys.stdout.isatty()
    if fmt == "json" and output is None:
        # written as it is made: a big report's text (and its encoded copy) is never whole in memory
        from .report.json import render_chunks

        for chunk in render_chunks(report):
            click.echo(chunk, nl=False)
    else:
        # text.py escapes the model's text itself (rich adds its colours after)
        _write_output(render(report, fmt, color=color, verbose=verbose, show=shown), output, inputs,
                      raw=fmt in ("text", "json", "sarif"))
    for m in report.models:
        if m.error:  # exit 2 always comes with its line on stderr
            click.echo(f"onnxdoctor: {printable(m.error)}", err=True)
    _fast_exit(report.exit_code(Severity.parse(fail_on) if fail_on else None))


def _check_inputs(models, data_files, *others):
    """The files a command read: models, their external data, and other inputs (None skipped)."""
    from .io import Inputs

    inputs = Inputs()
    for m in models:
        inputs.add_model(m)
    for f in data_files:
        inputs.add(f, "external data of an input model")
    for what, other in others:
        if other is not None:
            inputs.add(other, what)
    return inputs


def _target(path, inputs, option: str, in_place: bool = False, hint: str = ""):
    from .io import target

    return target(path, inputs, option=option, in_place=in_place, hint=hint)


def _distinct(*outputs) -> None:
    from .io import distinct

    distinct(*outputs)


def _severities(values: tuple[str, ...]):
    """--show's severities (None: the default)."""
    names = _split(values)
    if not names:
        return None
    from .findings import Severity

    if "all" in (n.lower() for n in names):
        return frozenset(Severity)
    try:
        return frozenset(Severity.parse(n) for n in names)
    except ValueError as e:
        raise ValueError(f"--show: {e}") from None


def _fast_exit(code: int) -> None:
    """Leave without the interpreter's teardown, which frees every object of the loaded graph one by
    one (~0.07 s on a 20,000-node model); mypy's --fast-exit does the same. Only for `check`, whose
    output is complete here and which leaves no temporary files to clean up."""
    if not _standalone:  # called in-process (click's CliRunner, an embedding program): exit normally
        sys.exit(code)
    from . import prefetch

    prefetch.discard_all()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


_standalone = False


def entry() -> None:
    """The `onnxdoctor` console script and `python -m onnxdoctor`: this process is ours to end."""
    global _standalone
    _standalone = True
    main()


@main.command()
@click.argument("model", type=click.Path())
@click.option("-o", "--output", type=click.Path(), default=None, help="Where to write the fixed model.")
@click.option("--in-place", is_flag=True, help="Overwrite the input model (and its external data).")
@click.option("--rules", "rules", default=None, metavar="RULESET|CODES", help="Ruleset (default, strict) or comma-separated rule codes whose fixes apply (default: default, or the configuration's fix.rules).")
@_trt_option("TensorRT release to fix for (default: latest, or the configuration's trt).")
@_precision_option("Precision to build in. fp16/bf16 convert the graph to mixed precision (convert-precision), keeping sensitive regions in FP32, proven layer by layer.")
@_plugin_option("A TensorRT plugin you will load.")
@click.option("--unsafe-fixes", is_flag=True, help="Also apply fixes that change values slightly (proven within a looser tolerance).")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--diff", "show_diff", is_flag=True, help="Print removed, added and modified nodes.")
@click.option("--explain", is_flag=True, help="Also say why rewrites did not fire where they looked.")
@click.option("--no-prove", is_flag=True, help="Skip the ONNX Runtime proof (not recommended).")
@click.option("--atol", type=float, default=None, help="Absolute tolerance of the proof (default 1e-4, or the configuration's fix.atol).")
@click.option("--rtol", type=float, default=None, help="Relative tolerance of the proof (default 1e-3, or the configuration's fix.rtol).")
@_shape_option("Freeze an input (enables freeze-shapes), e.g. input_ids:1x128.")
@click.option("--data", type=click.Path(dir_okay=False), default=None, help="Inputs for the proof (.npz, one array per graph input).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for generated proof inputs.")
@click.option("--full-size-proof", is_flag=True, help="Prove at the model's declared input size even where the rewrites do not depend on it (by default a large static image input is proven at a reduced size when they do not).")
@_fail_on_option("Exit 1 when the fixed model still has findings at or above this (default: the configuration's fail-on, the ruleset's, or error).")
@click.option("--keep-io-types/--no-keep-io-types", default=True, show_default=True, help="--precision conversion: keep graph inputs/outputs in their original types.")
@click.option("--keep-fp32", "keep_fp32", multiple=True, metavar="OP_OR_NODE_GLOB", help="--precision conversion: keep these op types or node names (globs) in FP32; repeatable.")
@click.option("--max-abs", type=float, default=None, help="--precision conversion: keep in FP32 nodes whose observed activations exceed this magnitude.")
@click.option("--keep-norm-stats", is_flag=True, help="--precision conversion: keep decomposed LayerNorm/RMSNorm statistics in FP32 even where the reference run saw them in range.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None, help="Write the full JSON report (every step, every conversion decision with its reason) to FILE.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_config_options
@_budget_options
def fix(model, output, in_place, rules, trt, precision, plugins, unsafe_fixes, dry_run, show_diff, explain, no_prove, atol,
        rtol, shapes, data, seed, full_size_proof, fail_on, keep_io_types, keep_fp32, max_abs, keep_norm_stats, report_path, fmt, config,
        isolated, time_limit, activation_limit) -> None:
    """Rewrite MODEL so that it parses and builds on your TensorRT release, prove in ONNX Runtime
    that the outputs did not change, re-check it, and write it to -o.

    \b
    Examples:
      onnxdoctor fix model.onnx -o fixed.onnx
      onnxdoctor fix model.onnx -o fixed.onnx --trt 8.6 --rules default --diff
      onnxdoctor fix model.onnx -o fixed.onnx --precision fp16 --unsafe-fixes --report conv.json
      onnxdoctor fix model.onnx -o fixed.onnx --shape input_ids:1x128 --data inputs.npz

    Exit codes: 0 the result has nothing at or above --fail-on, 1 it has, 2 usage error or
    unreadable model (nothing written).
    """
    from ._memory import SMALL_MODEL_BYTES, large_blocks_from_mmap
    from .api import fix as api_fix
    from .findings import Severity
    from .report.fix import render_fix

    # This process is fix's own: on a small model, ONNX Runtime's activations go back to the system
    # when freed, not into a heap that the next run's peak lands on (_memory). A big model's peak is
    # its weights, held once.
    try:
        if os.path.getsize(model) < SMALL_MODEL_BYTES:
            large_blocks_from_mmap()
    except OSError:
        pass  # the command reports the unreadable model
    try:
        if in_place and output is not None and os.path.realpath(output) != os.path.realpath(model):
            raise UsageError("--in-place and -o/--output name different files; use one of them")
        if output is None and not in_place and not dry_run:
            raise UsageError("fix needs -o/--output FILE (or --in-place to overwrite the input)")
        with _guarded(model, "fix") as hard_stop, PhaseProgress.on_terminal() as progress:
            result = api_fix(
                model, None if dry_run else output, in_place=in_place and not dry_run, report=report_path, diff=show_diff,
                rules=rules, trt=trt, precision=precision, plugins=_split(plugins), unsafe_fixes=unsafe_fixes,
                prove=not no_prove, atol=atol, rtol=rtol, shapes=shapes, data=data, seed=seed, full_size_proof=full_size_proof,
                keep_io_types=keep_io_types,
                keep_fp32=keep_fp32, max_abs=max_abs, keep_norm_stats=keep_norm_stats,
                config=_config_source(config, isolated), log=progress, progress=progress is not None,
                time_limit=time_limit, activation_limit=activation_limit, hard_stop=hard_stop,
            )
    except OnnxDoctorError as e:
        _fail(str(e))
    level = Severity.parse(fail_on or result.fail_on)
    click.echo(render_fix(result, model, result.written, fmt, diff=result.diff, explain=explain, dry_run=dry_run), nl=False)
    sys.exit(1 if any(f.severity >= level for f in result.after) else 0)


@main.command("rewrites")
def rewrites_cmd() -> None:
    """List the rewrites `fix` can apply: name, safety, the rules they resolve."""
    from .rewrites import all_rewrites

    for r in all_rewrites():
        click.echo(f"  {r.name:<28} {str(r.applicability):<7} resolves {', '.join(r.resolves) or '-':<22} {r.summary}")


@main.command()
@click.argument("model", type=click.Path())
@click.option("--against", type=click.Path(), default=None, help="Compare with this model in ONNX Runtime (e.g. the fixed or the FP16 model).")
@click.option("--backend", type=click.Choice(["onnxrt", "trt"]), default="onnxrt", show_default=True, help="Candidate backend: ONNX Runtime (with --against) or a TensorRT engine built from MODEL.")
@click.option("--layerwise", is_flag=True, help="Compare every intermediate tensor, not only the outputs, and name the first diverging layer.")
@click.option("--fp16", is_flag=True, help="Without TensorRT: emulate FP16 on CPU (flag tensors leaving the FP16 range). With --backend trt on 10.x: build with the FP16 flag.")
@click.option("--data", type=click.Path(dir_okay=False), default=None, help="Inputs (.npz, one array per graph input).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for generated inputs.")
@_shape_option("Input shapes for generated inputs (and the TensorRT profile).")
@_trt_option("TensorRT release (for --backend trt: strongly typed on 11.x; default: latest, or the configuration's trt).")
@click.option("--atol", type=float, default=None, help="Absolute tolerance (default 1e-4).")
@click.option("--rtol", type=float, default=None, help="Relative tolerance (default 1e-3).")
@click.option("--all", "show_all", is_flag=True, help="Text output: list every compared tensor, not only failures.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write the report to FILE.")
@_budget_options
@_config_options
def verify(model, against, backend, layerwise, fp16, data, seed, shapes, trt, atol, rtol, show_all, fmt, output,
           time_limit, activation_limit, config, isolated) -> None:
    """Compare a candidate against ONNX Runtime on MODEL, optionally layer by layer, and name the
    first layer that diverges.

    \b
    Examples:
      onnxdoctor verify model.onnx --against fixed.onnx --layerwise
      onnxdoctor verify model.onnx --fp16 --layerwise           # FP16 emulation on CPU
      onnxdoctor verify model.onnx --backend trt --layerwise     # needs TensorRT and a GPU

    Exit codes: 0 everything compared passes, 1 something differs, 2 errors.
    """
    from .api import verify as api_verify
    from .verify import render_text

    try:
        log = (lambda m: click.echo(f"onnxdoctor: {m}", err=True)) if fmt == "text" and sys.stderr.isatty() else None
        with _guarded(model, "verify") as hard_stop:
            result = api_verify(model, against, backend=backend, layerwise=layerwise, fp16=fp16, data=data, seed=seed,
                                shapes=shapes, trt=trt, atol=atol, rtol=rtol, output=output, format=fmt,
                                show_all=show_all, config=_config_source(config, isolated), log=log,
                                progress=_progress_printer() if sys.stderr.isatty() else None,
                                time_limit=time_limit, activation_limit=activation_limit, hard_stop=hard_stop)
    except OnnxDoctorError as e:
        _fail(str(e))
    except Exception as e:  # noqa: BLE001 - ONNX Runtime refusing to run a model is a user-facing error
        _fail(f"{model}: cannot run: {' '.join(str(e).split())[:240]}")
    if output is None:
        import json

        click.echo(json.dumps(result.to_dict(), indent=2) + "\n" if fmt == "json" else render_text(result, show_all=show_all),
                   nl=False)
    sys.exit(0 if result.passed else 1)


class PhaseProgress:
    """The phases of a long command on stderr, one line each (rich): the running phase with a spinner
    and its elapsed time, the finished ones with the time they took. Called with each phase's
    description as it starts."""

    def __init__(self, console=None) -> None:
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(SpinnerColumn(finished_text="[green]✓"), TimeElapsedColumn(), TextColumn("{task.description}"),
                                 console=console or Console(stderr=True))
        self.task = None

    @classmethod
    def on_terminal(cls):
        """A PhaseProgress when stderr is a terminal, else a context that gives None."""
        import contextlib

        return cls() if sys.stderr.isatty() else contextlib.nullcontext()

    def __enter__(self) -> PhaseProgress:
        self.progress.start()
        return self

    def __call__(self, message: str) -> None:
        self._finish()
        self.task = self.progress.add_task(f"onnxdoctor: {message}", total=None)

    def _finish(self) -> None:
        if self.task is not None:
            self.progress.update(self.task, total=1, completed=1)
            self.progress.stop_task(self.task)

    def __exit__(self, *exc) -> None:
        self._finish()
        self.progress.stop()


def _progress_printer():
    def show(done: int, total: int) -> None:
        if total > 1:
            click.echo(f"\ronnxdoctor: ran {done}/{total} nodes", err=True, nl=done == total)

    return show


@main.command()
@click.argument("model", type=click.Path())
@_shape_option("Profile of an input (or NAME:DIMS for a fixed shape); repeatable.", metavar="NAME:MIN:OPT:MAX")
@_trt_option("TensorRT release the command is for (default: latest, or the configuration's trt).")
@_precision_option("Precision intent (adds the builder flag on releases that still have one).")
@click.option("--engine", default=None, metavar="FILE", help="--saveEngine path in the trtexec command (default: MODEL with .engine).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--no-validate", is_flag=True, help="Do not run min/opt/max in ONNX Runtime (faster; the shapes are then name-based defaults and marked not validated).")
@_budget_options
@_config_options
def profile(model, shapes, trt, precision, engine, fmt, no_validate, time_limit, activation_limit, config, isolated) -> None:
    """Print an optimization profile (min/opt/max) for every dynamic input of MODEL, and the
    ready-to-run trtexec command that builds the engine for your TensorRT release.

    Shapes come from what the graph shows (shared and tied dims, strides, sizes in the metadata);
    min, opt and max are each run in ONNX Runtime on CPU, and the output says which ran.

    \b
    Examples:
      onnxdoctor profile model.onnx
      onnxdoctor profile model.onnx --shape input_ids:1x1:1x128:4x512 --trt 10.15
    """
    import json

    from .api import profile as api_profile
    from .profile import render_text

    try:
        log = (lambda m: click.echo(f"onnxdoctor: {m}", err=True)) if sys.stderr.isatty() else None
        with _guarded(model, "profile") as hard_stop:
            prof = api_profile(model, shapes=shapes, trt=trt, precision=precision, engine=engine,
                               validate=not no_validate, config=_config_source(config, isolated), log=log,
                               time_limit=time_limit, activation_limit=activation_limit, hard_stop=hard_stop)
    except OnnxDoctorError as e:
        _fail(str(e))
    click.echo(json.dumps(prof, indent=2) if fmt == "json" else printable_lines(render_text(prof).rstrip("\n")))


@main.command("rules")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def rules_cmd(fmt) -> None:
    """List the rules: code, name, default severity, summary (JSON: also the rewrites of `fix` that
    resolve their findings). `onnxdoctor explain CODE` says for which TensorRT releases a rule reports."""
    import json

    from .api import list_rules

    rows = [
        {"code": r.code, "name": r.name, "severity": str(r.severity), "summary": r.summary,
         "fixes": [f.to_dict() for f in r.fixes]}
        for r in list_rules()
    ]
    if fmt == "json":
        click.echo(json.dumps({"rules": rows}, indent=2))
        return
    for row in rows:
        click.echo(f"  {row['code']:<7} {row['name']:<32} {row['severity']:<8} {row['summary']}")


@main.command()
@click.argument("code")
def explain(code) -> None:
    """Print a rule's documentation (by code or name, e.g. TRT101 or unsupported-operator)."""
    from .api import explain as api_explain

    try:
        click.echo(api_explain(code), nl=False)
    except OnnxDoctorError as e:
        _fail(str(e))


@main.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def versions(fmt) -> None:
    """List the TensorRT releases onnxdoctor knows, with opset range and how each was sourced."""
    import json

    from .kb import knowledge_base

    kb = knowledge_base()
    rows = []
    for v in kb.versions:
        r = kb.release(v)
        rows.append({"trt": v, "opset_min": r.opset_min, "opset_max": r.opset_max, "operators": len(r.ops),
                     "interpolated": r.interpolated})
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        how = f"interpolated: {row['interpolated']}" if row["interpolated"] else "sourced from its operator matrix"
        click.echo(f"  {row['trt']:<6} opset {row['opset_min']}-{row['opset_max']:<3} {row['operators']:>3} importers  {how}")

