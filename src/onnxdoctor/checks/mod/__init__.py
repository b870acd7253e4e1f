"""MOD family: problems with the model file itself (weights, shape inference)."""

from __future__ import annotations

from .missing_external_data import MissingExternalData
from .shape_inference_failed import ShapeInferenceFailed
from .unused_suppression import UnusedSuppression

RULES = (
    ShapeInferenceFailed,  # MOD501
    MissingExternalData,  # MOD502
    UnusedSuppression,  # MOD503
)
