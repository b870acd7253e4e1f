"""Fusions: decomposed patterns replaced by the fused op the target supports (LayerNormalization, Gelu, RMSNormalization)."""

from __future__ import annotations

REWRITES: tuple = ()
