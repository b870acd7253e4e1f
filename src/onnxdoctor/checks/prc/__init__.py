"""PRC family: precision hazards (FP16 range, INT64 range, strong typing on 11.x, Q/DQ)."""

from __future__ import annotations

RULES: tuple = ()
