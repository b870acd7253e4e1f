"""onnxdoctor: will this ONNX model build with TensorRT? Node by node, per TensorRT release."""

from __future__ import annotations

import sys
import types

__version__ = "0.1.0"

_FUNCTIONS = ("check", "explain", "list_rules")
# Commands whose module shares their name: `onnxdoctor.fix` is the module onnxdoctor/fix.py, and
# calling it runs the command (api.fix).
_COMMANDS = ("fix", "verify", "profile")
__all__ = ["__version__", *_FUNCTIONS, *_COMMANDS]


def __getattr__(name: str):
    # The API is imported lazily so that `import onnxdoctor` stays cheap.
    if name in _FUNCTIONS:
        from . import api

        return getattr(api, name)
    if name in _COMMANDS:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(name)


class _Command(types.ModuleType):
    """A submodule that is also its command: `onnxdoctor.fix(model, "fixed.onnx")` runs api.fix, while
    `onnxdoctor.fix.FixOptions` and `from onnxdoctor import fix` are the module as usual."""

    def __call__(self, *args, **kwargs):
        from . import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value) -> None:
        # The import system sets the package's attribute when it loads a submodule: that module
        # becomes callable.
        if name in _COMMANDS and type(value) is types.ModuleType:
            value.__class__ = _Command
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
