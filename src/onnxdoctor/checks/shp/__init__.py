"""SHP family: shapes TensorRT needs at build time (dynamic dims, data-dependent shapes, shape chains)."""

from __future__ import annotations

RULES: tuple = ()
