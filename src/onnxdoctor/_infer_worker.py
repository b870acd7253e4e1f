"""Shape inference in a separate, light process (started by prefetch.py).

Run as a script: `python _infer_worker.py MODEL`. It loads only onnx's C++ extension — not the onnx
package, whose import costs ~0.2 s — reads MODEL and runs strict shape inference (no type check, no
data propagation: the same call as model.run_shape_inference). Then, while the checking process is
still busy with its own part, it loads onnx's protobuf classes and packs the inferred value types
(_typeinfo.pack_serialized: what the checking process would otherwise read from the inferred model itself).
stdout gets one status byte, then the packed types, marshalled (b"2"), the inferred model's bytes
when packing failed (b"1"), or the inferencer's message (b"0"). Any other outcome (exit code,
missing output) means "no result": the caller infers in its own process.

The console script does not run this file: it forks (prefetch.start with fork=True) before it has
imported anything heavy, and the child calls `run` (no second interpreter to start). Either way it
imports onnxdoctor._onnx, which loads the extension by file location, and _wire (standard library
only), and onnxdoctor's `__init__`, which imports nothing; not the onnx package, whose import is
what it avoids.
"""

from __future__ import annotations

import os
import sys


def _pack(inferred: bytes) -> bytes:
    import marshal

    from onnxdoctor import _onnx, _typeinfo

    _onnx.use_light()
    return marshal.dumps(_typeinfo.pack_serialized(inferred))


def run(path: str) -> tuple[bytes, bytes]:
    """The result for `path`: its status byte and its payload (see above)."""
    from onnxdoctor import _onnx, _wire

    _onnx.use_light()  # the protobuf classes and the C++ extension only, not the onnx package
    data, _, view = _wire.read_model(path)  # a big file without its big inline weights
    if view is not None:
        view.close()
    try:
        status, payload = b"1", _onnx.infer_shapes(data, strict=True)
    except Exception as e:  # noqa: BLE001 - the inferencer's message is a result too
        status, payload = b"0", (" ".join(str(e).split())[:300] or type(e).__name__).encode("utf-8", "replace")
    if status == b"1":
        try:
            status, payload = b"2", _pack(payload)
        except Exception:  # noqa: BLE001 - the inferred model itself is a result too
            pass
    return status, payload


def main(path: str) -> int:
    status, payload = run(path)
    out = sys.stdout.buffer
    out.write(status)
    out.write(payload)
    out.flush()
    return 0


if __name__ == "__main__":
    # Run as a script, this file's folder (the onnxdoctor package, whose io.py and profile.py would
    # shadow the standard library's) is sys.path[0]; its parent holds the package.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main(sys.argv[1]))
