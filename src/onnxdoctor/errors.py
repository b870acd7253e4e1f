"""Errors that end a command with exit code 2 and one clear line."""

from __future__ import annotations


class OnnxDoctorError(Exception):
    """A problem the user must fix (bad input, bad usage). Rendered as one line, exit 2."""

    exit_code = 2


class UsageError(OnnxDoctorError):
    """A flag, config value or argument is wrong."""


class ModelLoadError(OnnxDoctorError):
    """A model file cannot be read or is not a well-formed ONNX model."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
