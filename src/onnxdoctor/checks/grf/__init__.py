"""GRF family: graph hygiene and unfused patterns (foldable constants, dead nodes, fusions)."""

from __future__ import annotations

RULES: tuple = ()
