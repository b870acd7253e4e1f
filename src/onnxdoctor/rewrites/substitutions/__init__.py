"""Op substitutions: ops some TensorRT release cannot import (TRT101) and ONNX Runtime contrib ops
(TRT102), replaced by exactly equivalent subgraphs of ops every release from 8.6 imports."""

from __future__ import annotations

from . import contrib, standard

REWRITES = (*standard.REWRITES, *contrib.REWRITES)


def substitution_for(op_type: str, domain: str = "") -> str | None:
    """The name of the rewrite that replaces (`domain`, `op_type`), if there is one (any rewrite
    family: a rewrite lists the ops it replaces in `ops`)."""
    from .. import all_rewrites

    key = ("" if domain == "ai.onnx" else domain or "", op_type)
    return next((r.name for r in all_rewrites() if key in r.ops), None)


__all__ = ["REWRITES", "substitution_for"]
