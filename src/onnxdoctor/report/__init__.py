"""Renderers: text, JSON and SARIF are views of the same Report."""

from __future__ import annotations

from typing import Callable

from ..findings import Report

# The formats `render` knows (`check --format` offers these).
FORMATS = ("text", "json", "sarif", "github")


def render(report: Report, fmt: str, *, color: bool = False, verbose: bool = False, show=None) -> str:
    """`color`, `verbose` (every finding on its own line) and `show` (the severities listed; the
    others are counted) shape the text report only: the other formats are complete."""
    renderer: Callable[..., str]
    if fmt == "json":
        from .json import render as renderer
    elif fmt == "sarif":
        from .sarif import render as renderer
    elif fmt == "github":
        from .github import render as renderer
    else:
        from .text import render as renderer

        return renderer(report, color=color, verbose=verbose, show=show)
    return renderer(report)
