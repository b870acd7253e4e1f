"""onnxdoctor: will this ONNX model build with TensorRT? Node by node, per TensorRT release."""

from __future__ import annotations

import sys
import types

__version__ = "0.1.0"

_API = ("check", "explain", "fix", "list_rules", "profile", "verify")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    # The API is imported lazily so that `import onnxdoctor` stays cheap.
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(name)


class _Package(types.ModuleType):
    """`onnxdoctor.fix`, `.verify` and `.profile` are the API's functions although submodules of those
    names exist: importing one must not replace the function with the module, as the import system
    does for a package's attributes (the module stays in sys.modules, so `from onnxdoctor.fix import
    FixOptions` works; `from onnxdoctor import fix` is the function)."""

    def __setattr__(self, name: str, value) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
