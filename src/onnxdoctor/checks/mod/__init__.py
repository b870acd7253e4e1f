"""MOD family: problems with the model file itself (weights, shape inference, structure, opsets)."""

from __future__ import annotations

from .attribute_type_mismatch import AttributeTypeMismatch
from .duplicate_tensor_definition import DuplicateTensorDefinition
from .missing_external_data import MissingExternalData
from .no_graph_output import NoGraphOutput
from .shape_inference_failed import ShapeInferenceFailed
from .undefined_opset_version import UndefinedOpsetVersion
from .unused_suppression import UnusedSuppression

RULES = (
    ShapeInferenceFailed,  # MOD501
    MissingExternalData,  # MOD502
    UnusedSuppression,  # MOD503
    DuplicateTensorDefinition,  # MOD504
    UndefinedOpsetVersion,  # MOD505
    AttributeTypeMismatch,  # MOD506
    NoGraphOutput,  # MOD507
)
