"""A command's budget: one deadline for the whole command (`--time-limit`, `[fix] time-limit`) and the
activation memory its ONNX Runtime runs may hold (`--activation-limit`).

The deadline starts when the command starts, before the model is read, and is consulted between the
command's stages (`Budget.enter`: reading, checking, finding inputs, each rewrite, each proof, each
layerwise segment...). Stages that cannot poll (onnx's and ONNX Runtime's C++ code, long Python
passes) are covered by `Budget.running()`: in the main thread, a SIGALRM at the deadline stops the
Python code wherever it is; and a caller that may end the process (the CLI) can pass `hard_stop`,
called from a watchdog thread shortly after the deadline when the command has still not stopped
(ONNX Runtime building a session over a huge graph releases the GIL but does not return).
Over budget is `BudgetExceeded`: one line naming the model, the stage, and how to raise the limit.

Activation memory is bounded in three places: the layerwise runs count the arrays they hold between
segments (`Budget.check_memory`); the input finder refuses candidates whose tensors, sized from
inferred shapes, would not fit (inputs.py); and every ONNX Runtime run made while a budget is
running goes through `run_session`, which watches the process's resident memory from a thread and
stops the run between two nodes (ONNX Runtime's `RunOptions.terminate`) once it has grown by more
than the budget - the bound for the runs whose sizes inference cannot see.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .errors import OnnxDoctorError

DEFAULT_SECONDS = 600.0
DEFAULT_ACTIVATION_MB = 2048.0
MAX_SEGMENT_NODES = 512


_ACTIVE: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("onnxdoctor_budget", default=None)
_POLL_S = 0.01  # how often run_session looks at the resident memory


def active() -> Budget | None:
    """The budget of the command running in this context (inside `Budget.running()`), else None."""
    return _ACTIVE.get()


class BudgetExceeded(OnnxDoctorError):
    """A command went over its time limit or its activation-memory budget."""


class OverMemory(BaseException):
    """Raised by `run_session` when a run went over the activation budget. A BaseException for the
    same reason as _Alarm: a caller's `except Exception` (a proof that turns an unrunnable candidate
    into a failed proof, the input finder trying its next candidate) must not take it for the model's
    error and go on; `Budget.running` turns it into BudgetExceeded. A caller that can go on without
    the run (profile's validation: that shape is reported as not run) catches it by name."""


class _Alarm(BaseException):
    """Raised by the SIGALRM handler. A BaseException, so that the `except Exception` of a library (or
    of onnxdoctor's own fallbacks) cannot swallow it; `Budget.running` turns it into BudgetExceeded."""


@dataclass
class Budget:
    """Limits of one command. `seconds` (None or inf: no limit) counts from `started`, the command's
    start; `label` names the model in messages, `command` the command ("fix", "verify"), `option`
    the flag that raises the limit."""

    seconds: float | None = DEFAULT_SECONDS
    activation_mb: float = DEFAULT_ACTIVATION_MB
    max_segment_nodes: int = MAX_SEGMENT_NODES
    label: str = "model"
    command: str = "onnxdoctor"
    option: str = "--time-limit"
    started: float = field(default_factory=time.monotonic)
    stage: str = "starting"  # what the command is doing, for the message

    @property
    def activation_bytes(self) -> int:
        return int(self.activation_mb * 2**20)

    @property
    def limited(self) -> bool:
        return self.seconds is not None and math.isfinite(self.seconds)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return self.seconds - self.elapsed() if self.limited else math.inf

    def message(self, where: str | None = None) -> str:
        return (f"{self.label}: {self.command} stopped at its {self.seconds:g} s time limit "
                f"{where or self.stage} (raise it with {self.option})")

    def exceeded(self, where: str | None = None) -> BudgetExceeded:
        return BudgetExceeded(self.message(where))

    def enter(self, doing: str) -> None:
        """The command starts a stage (`doing`: "proving the rewrites"); stops it if over time."""
        self.stage = f"while {doing}"
        self.check()

    def check(self) -> None:
        if self.remaining() <= 0:
            raise self.exceeded()

    def check_time(self, what: str, done: int, total: int) -> None:
        """Between the segments of a layerwise run (`what`: "the reference run")."""
        if self.remaining() <= 0:
            raise self.exceeded(f"in {what} ({done:,} of {total:,} nodes done)")

    def check_memory(self, what: str, held: int, done: int, total: int) -> None:
        if held > self.activation_bytes:
            raise BudgetExceeded(f"{self.label}: {what} would hold {held / 2**20:.0f} MB of activations at once "
                                 f"(at node {done} of {total}): over the budget of {self.activation_mb:g} MB "
                                 "(raise it with --activation-limit, or give smaller --shape values)")

    @contextlib.contextmanager
    def running(self, hard_stop: Callable[[str], object] | None = None, grace: float | None = None) -> Iterator[Budget]:
        """Enforce the deadline over the block, also where nothing polls: a SIGALRM at the deadline
        (main thread only, and only if nothing else handles SIGALRM) raises BudgetExceeded wherever the
        Python code is; `hard_stop(message)`, if given, is called from a watchdog thread `grace` seconds
        after the deadline if the block is still running then (it should end the process). A
        `hard_stop` with a `close()` method has it called when the block ends: what it would clean up
        is no longer needed then (the CLI removes the command's temporary folder before writing)."""
        close = getattr(hard_stop, "close", None)
        token = _ACTIVE.set(self)
        try:
            if not self.limited:
                try:
                    yield self
                finally:
                    if close is not None:
                        close()
                return
            yield from self._deadline(hard_stop, grace, close)
        except OverMemory as e:
            raise BudgetExceeded(str(e)) from None
        finally:
            _ACTIVE.reset(token)

    def _deadline(self, hard_stop, grace, close) -> Iterator[Budget]:
        alarm = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGALRM) in (
            signal.SIG_DFL, signal.SIG_IGN, None)
        lock = threading.Lock()
        armed = [True]
        previous: list = []  # the SIGALRM handler replaced, once ours is installed
        watchdog: list[threading.Timer] = []

        def on_alarm(signum, frame):
            if armed[0]:
                raise _Alarm()

        def fire() -> None:
            with lock:
                if armed[0]:
                    hard_stop(self.message())

        def disarm() -> None:
            with lock:
                armed[0] = False
            for w in watchdog:
                w.cancel()
            if previous:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous[0] if previous[0] is not None else signal.SIG_DFL)
                previous.clear()
            if close is not None:
                close()

        # Arming happens inside the try: the (one-shot) alarm of a very short limit may come at once.
        try:
            try:
                if hard_stop is not None:
                    wait = self.remaining() + (grace if grace is not None else 2.0 + 0.05 * self.seconds)
                    watchdog.append(threading.Timer(max(wait, 0.0), fire))
                    watchdog[0].daemon = True
                    watchdog[0].start()
                if alarm:
                    previous.append(signal.signal(signal.SIGALRM, on_alarm))
                    signal.setitimer(signal.ITIMER_REAL, max(self.remaining(), 1e-3))
                yield self
            finally:
                disarm()
        except _Alarm:
            disarm()  # again: the alarm may have come in the middle of the first
            raise self.exceeded() from None


def _resident_bytes() -> int | None:
    """The process's resident memory (Linux: /proc/self/statm), or None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def run_session(sess, names, feeds, run_options=None):
    """`sess.run(names, feeds)` of an ONNX Runtime session, bounded by the running budget's
    activation memory: a thread looks at the resident memory every 10 ms and, once it has grown by
    more than the budget since the run started, sets `terminate` on the run's options; ONNX Runtime
    stops before its next node and the command ends with BudgetExceeded (from `Budget.running`).
    (A node already computing finishes first: one node's output is the most the bound can be
    overshot by.) Without a running
    budget, or where resident memory cannot be read, a plain run."""
    budget = active()
    base = _resident_bytes() if budget is not None else None
    if base is None:
        return sess.run(names, feeds, run_options)
    if run_options is None:
        from .prove import onnxruntime

        run_options = onnxruntime().RunOptions()
    limit = base + budget.activation_bytes
    stop = threading.Event()
    over: list[int] = []

    def watch() -> None:
        while not stop.wait(_POLL_S):
            now = _resident_bytes()
            if now is not None and now > limit:
                over.append(now - base)
                run_options.terminate = True
                return

    watcher = threading.Thread(target=watch, name="onnxdoctor-memory", daemon=True)
    watcher.start()
    try:
        return sess.run(names, feeds, run_options)
    except Exception:
        if over:
            raise OverMemory(
                f"{budget.label}: an ONNX Runtime run {budget.stage} took {over[0] / 2**20:.0f} MB more than the process held "
                f"before it: over the activation budget of {budget.activation_mb:g} MB "
                "(raise it with --activation-limit, or give smaller --shape values)") from None
        raise
    finally:
        stop.set()
        watcher.join()
