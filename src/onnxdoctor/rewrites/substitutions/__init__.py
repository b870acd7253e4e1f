"""Op substitutions: ops some TensorRT release cannot import (TRT101) and ONNX Runtime contrib ops
(TRT102), replaced by exactly equivalent subgraphs of ops every release from 8.6 imports."""

from __future__ import annotations

from . import contrib, standard

REWRITES = (*standard.REWRITES, *contrib.REWRITES)

# The substitutions TRT101 (missing importer) and TRT102 (custom-domain op) findings name as fix.
_BY_OP = {(cls.domain, cls.op_type): cls.name for cls in REWRITES if {"TRT101", "TRT102"} & set(cls.resolves)}


def substitution_for(op_type: str, domain: str = "") -> str | None:
    """The name of the rewrite that replaces (`domain`, `op_type`), if there is one."""
    return _BY_OP.get(("" if domain == "ai.onnx" else domain or "", op_type))


__all__ = ["REWRITES", "substitution_for"]
