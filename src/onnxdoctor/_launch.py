"""The `onnxdoctor` console script and `python -m onnxdoctor`.

For `onnxdoctor check MODEL` (one file, not `-j 1`, no `--shape`) the shape-inference helper
(prefetch.py) is started here, before click and the CLI are imported (~0.05 s), because on a big
model that helper is the longest of the two paths a check runs on. It is forked (on Linux), not
spawned: this process has no threads and little memory yet, and the child needs no interpreter of
its own. onnx's protobuf classes and C++ extension, which both processes use, are loaded just
before the fork, so the child inherits them. The command line is read with
the list of `check`'s options that take a value (tests/test_prefetch.py compares it with the click
command). A wrong guess costs nothing but the helper's work: the check starts the helper itself when
it is wanted, and a result for another file or a changed file is never used.
"""

from __future__ import annotations

import sys

# `check` options that take a value (long and short forms).
CHECK_VALUE_OPTIONS = frozenset({
    "--trt", "--format", "-o", "--output", "--select", "--ignore", "--fail-on", "--plugin", "--precision",
    "--shape", "--config", "--baseline", "--write-baseline", "-j", "--jobs", "--show",
})


def single_model(args: list[str]) -> str | None:
    """The model path of `check ARGS` when its helper is wanted: one path, not `-j 1`, no `--shape`."""
    paths: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            paths.extend(args[i:])
            break
        if not a.startswith("-") or a == "-":
            paths.append(a)
            continue
        if a.startswith("--"):
            name, eq, value = a.partition("=")
        else:  # short options: -j 1, -j1, -o FILE, -oFILE
            name, value = a[:2], a[2:]
            eq = "=" if value else ""
        if name not in CHECK_VALUE_OPTIONS:
            continue  # a flag (--isolated, --no-color, -h ...)
        if not eq:
            if i >= len(args):
                return None
            value = args[i]
            i += 1
        if name == "--shape" or (name in ("-j", "--jobs") and value.strip() == "1"):
            return None
    return paths[0] if len(paths) == 1 else None


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["check"]:
        try:
            path = single_model(args[1:])
            if path is not None:
                from . import _onnx, prefetch

                # onnx's protobuf classes and C++ extension first (as the check loads them: ~0.04 s),
                # so that the helper inherits them instead of loading them again; it still starts
                # well before this process, importing and indexing the model, needs its result.
                _onnx.use_light()
                _onnx.extension()
                prefetch.start(path, fork=True)
        except Exception:  # noqa: BLE001 - only a head start: the check decides for itself
            pass
    from .cli import entry

    entry()
