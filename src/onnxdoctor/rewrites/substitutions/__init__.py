"""Op substitutions: ops some TensorRT release cannot import (TRT101) and ONNX Runtime contrib ops
(TRT102), replaced by exactly equivalent subgraphs of ops every release from 8.6 imports."""

from __future__ import annotations

from . import bitwise, contrib, standard

REWRITES = (*standard.REWRITES, *contrib.REWRITES, *bitwise.REWRITES)


__all__ = ["REWRITES"]
