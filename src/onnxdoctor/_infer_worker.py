"""Shape inference in a separate, light process (started by prefetch.py).

Run as a script: `python _infer_worker.py MODEL`. It loads only onnx's C++ extension — not the onnx
package, whose import costs ~0.2 s — reads MODEL and runs strict shape inference (no type check, no
data propagation: the same call as model.run_shape_inference). stdout gets one status byte, then the
inferred model's bytes (b"1") or the inferencer's message (b"0"). Any other outcome (exit code,
missing output) means "no result": the caller infers in its own process.

This file must import nothing from onnxdoctor or onnx (their package imports are what it avoids).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def _load_extension():
    spec = importlib.util.find_spec("onnx")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("onnx is not installed")
    folder = list(spec.submodule_search_locations)[0]
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    names = [f for f in os.listdir(folder) if f.startswith("onnx_cpp2py_export") and f.endswith(suffixes)]
    if not names:
        raise ImportError("onnx's C++ extension was not found")
    ext = importlib.util.spec_from_file_location("onnx.onnx_cpp2py_export", os.path.join(folder, names[0]))
    module = importlib.util.module_from_spec(ext)
    ext.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def main(path: str) -> int:
    c = _load_extension()
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        status, payload = b"1", c.shape_inference.infer_shapes(data, False, True, False)
    except Exception as e:  # noqa: BLE001 - the inferencer's message is a result too
        status, payload = b"0", (" ".join(str(e).split())[:300] or type(e).__name__).encode("utf-8", "replace")
    out = sys.stdout.buffer
    out.write(status)
    out.write(payload)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
