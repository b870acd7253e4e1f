"""onnxdoctor: will this ONNX model build with TensorRT? Node by node, per TensorRT release."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "check", "explain", "list_rules"]


def __getattr__(name: str):
    # The API is imported lazily so that `import onnxdoctor` stays cheap.
    if name in ("check", "explain", "list_rules"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)
