"""Op substitutions: ops some TensorRT release cannot import, replaced by equivalent supported subgraphs."""

from __future__ import annotations

REWRITES: tuple = ()
