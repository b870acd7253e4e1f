"""Shape inference of big model files, started early in a helper process.

ONNX shape inference is C++ that holds the GIL: ~0.2 s on a 20,000-node model, a quarter of a whole
`check`. `start(path)` launches `_infer_worker.py` (a fresh interpreter that loads only onnx's C++
extension) on the file, or, for the console script (`fork=True`, on Linux), forks this process
while it has imported next to nothing and runs the same code in the child (no second interpreter
to start: ~0.02 s of CPU less), so inference runs on the second core while this process imports
onnxdoctor, parses, validates and indexes the graph; the helper then packs the value types
(_typeinfo.pack), so that this process does not read them from an inferred model.
`load(path, use_prefetch=True)` then `take`s the result, after checking that the file is the one
the helper read (size and modification time).
The helper writes its result into an anonymous file, not a pipe: it finishes (and a pipe's 64 KiB
would have held it up) whether or not this process is ready to read yet.

No result — the helper failed, was not started, or the file changed — means inference in-process,
as without a helper; the findings are the same either way. Not used with `--jobs 1`, for files under
MIN_BYTES (the helper's start-up would cost more than it saves), or on a single-core machine.
Measured in docs/benchmarks.md (interleaved rounds: 0.08–0.24 s faster than `-j 1` on the
20,000-node model).
This module imports nothing heavy: the console script calls `start` first (_launch.py).
"""

from __future__ import annotations

import atexit
import os
import stat
import sys

MIN_BYTES = 512 * 1024
_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_infer_worker.py")


class _Forked:
    """A forked helper, with the part of subprocess.Popen's interface that _Pending uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def _reap(self, flags: int) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, flags)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        return self._reap(0)  # type: ignore[return-value] # killed first when a timeout is given

    def poll(self) -> int | None:
        return self._reap(os.WNOHANG)

    def kill(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, 9)  # SIGKILL


class _Pending:
    def __init__(self, proc, out: int, signature: tuple[int, int]) -> None:
        self.proc = proc
        self.out = out  # file descriptor of the anonymous file the helper writes to
        self.signature = signature

    def result(self) -> bytes | None:
        """Wait for the helper; its output, or None if it failed."""
        try:
            code = self.proc.wait()
            if code != 0:
                return None
            os.lseek(self.out, 0, os.SEEK_SET)
            with os.fdopen(os.dup(self.out), "rb") as fh:
                return fh.read() or None
        except OSError:
            return None
        finally:
            os.close(self.out)

    def kill(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=5)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired, OSError: nothing more to do
            pass
        try:
            os.close(self.out)
        except OSError:
            pass


def _anonymous_file() -> int:
    """A read-write file descriptor of a file with no name (nothing to clean up)."""
    if hasattr(os, "memfd_create"):  # Linux
        try:
            return os.memfd_create("onnxdoctor-inference", os.MFD_CLOEXEC)
        except OSError:
            pass
    import tempfile

    with tempfile.TemporaryFile() as fh:  # unlinked at once (O_TMPFILE where available)
        return os.dup(fh.fileno())


_pending: dict[str, _Pending] = {}


def _key(path: str | os.PathLike) -> str:
    return os.path.abspath(os.fspath(path))


def usable() -> bool:
    try:
        cores = len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return cores >= 2 and bool(sys.executable)


def _can_fork() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def _fork(path: str, out: int) -> _Forked | None:
    """A child of this process that writes `_infer_worker.run(path)` to `out` and exits."""
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid:
        return _Forked(pid)
    code = 1
    try:  # the child: it never returns into the caller's code, whatever happens
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # as the spawned helper: nothing read, nothing printed
            os.dup2(null, fd)
        from . import _infer_worker

        for part in _infer_worker.run(path):
            view = memoryview(part)
            while view:
                view = view[os.write(out, view):]
        code = 0
    finally:
        os._exit(code)


def start(path: str | os.PathLike, *, fork: bool = False) -> None:
    """Start inferring `path` in a helper, if it is a big enough regular file and none is running.
    `fork`: fork this process instead of starting an interpreter, where possible; only for a process
    that has no threads and little memory yet (the console script before its imports)."""
    key = _key(path)
    if key in _pending:
        return
    try:
        st = os.stat(key)
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode) or st.st_size < MIN_BYTES or not usable():
        return
    try:
        out = _anonymous_file()
    except OSError:
        return
    if fork and _can_fork():
        proc = _fork(key, out)
    else:
        import subprocess

        try:
            proc = subprocess.Popen(
                [sys.executable, _WORKER, key], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL
            )
        except OSError:
            proc = None
    if proc is None:
        os.close(out)
        return
    if not _pending:
        atexit.register(discard_all)
    _pending[key] = _Pending(proc, out, (st.st_size, st.st_mtime_ns))


def take(path: str | os.PathLike, st: os.stat_result) -> tuple[str, bytes] | None:
    """The helper's result for `path` — ("packed", marshalled _typeinfo.pack tables), ("inferred",
    the inferred model's bytes) or ("error", the inferencer's message as UTF-8) — or None when there
    is none for this very file."""
    pending = _pending.pop(_key(path), None)
    if pending is None:
        return None
    if pending.signature != (st.st_size, st.st_mtime_ns):
        pending.kill()
        return None
    out = pending.result()
    kind = _KINDS.get(out[:1]) if out else None
    return (kind, out[1:]) if kind else None


_KINDS = {b"0": "error", b"1": "inferred", b"2": "packed"}


def discard(path: str | os.PathLike) -> None:
    """Stop the helper of `path` (its result is not wanted, e.g. `--shape` changes the graph first)."""
    pending = _pending.pop(_key(path), None)
    if pending is not None:
        pending.kill()


def discard_all() -> None:
    while _pending:
        _, pending = _pending.popitem()
        pending.kill()
