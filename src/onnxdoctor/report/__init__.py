"""Renderers: text, JSON and SARIF are views of the same Report."""

from __future__ import annotations

from typing import Callable

from ..findings import Report

FORMATS = ("text", "json", "sarif", "github")


def render(report: Report, fmt: str, *, color: bool = False) -> str:
    renderer: Callable[..., str]
    if fmt == "json":
        from .json import render as renderer
    elif fmt == "sarif":
        from .sarif import render as renderer
    elif fmt == "github":
        from .github import render as renderer
    else:
        from .text import render as renderer

        return renderer(report, color=color)
    return renderer(report)
