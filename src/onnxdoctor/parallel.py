"""Work on a second core inside one `check`: a forked helper process computes a picklable result
while the main process goes on.

`check` is CPU-bound Python plus ONNX's C++ shape inference, which holds the GIL, so threads do
not help. On Linux a fork shares everything loaded so far copy-on-write and costs a few
milliseconds. Used for big models only (`worth_it`), never when the process has other threads
(forking a multi-threaded process can deadlock the child), and never on other platforms, where
everything runs in the main process as before. Any failure of the helper — an exception, a crash,
an unpicklable result — raises `HelperFailed`, and the caller does the work itself.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")

# Below this many nodes a whole check takes well under 0.2 s: a helper would not pay for itself.
MIN_NODES = 4000


class HelperFailed(RuntimeError):
    pass


def available() -> bool:
    """Fork-based helpers can run here: Linux, two usable cores, no other thread in this process."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return cores >= 2 and threading.active_count() == 1


def worth_it(node_count: int) -> bool:
    return node_count >= MIN_NODES and available()


class Helper(Generic[T]):
    """`fn()` running in a forked child. `result()` returns its value or raises HelperFailed;
    `close()` (also on leaving a `with` block) kills a helper whose result is not wanted."""

    def __init__(self, fn: Callable[[], T]) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: compute, send, and leave without running any of the parent's cleanup
            code = 0
            try:
                os.close(read_fd)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                try:
                    payload = pickle.dumps((True, fn()), protocol=pickle.HIGHEST_PROTOCOL)
                except BaseException as e:  # noqa: BLE001 - reported to the parent, which redoes the work
                    payload = pickle.dumps((False, f"{type(e).__name__}: {e}"))
                view = memoryview(payload)
                while view:
                    view = view[os.write(write_fd, view):]
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        os.close(write_fd)
        self._pid: int | None = pid
        self._fd: int | None = read_fd

    def result(self) -> T:
        chunks = []
        try:
            while True:
                chunk = os.read(self._fd, 1 << 20)  # type: ignore[arg-type]
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            self.close()
        try:
            ok, value = pickle.loads(b"".join(chunks))
        except Exception as e:  # noqa: BLE001 - empty or cut short: the helper died
            raise HelperFailed(f"helper process sent no result ({type(e).__name__})") from None
        if not ok:
            raise HelperFailed(value)
        return value

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._pid is not None:
            pid, self._pid = self._pid, None
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done == 0:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
            except ChildProcessError:
                pass

    def __enter__(self) -> Helper[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
