"""SHP family: shapes TensorRT needs at build time (dynamic dims, data-dependent shapes, shape chains)."""

from __future__ import annotations

from .ambiguous_reshape_zero import AmbiguousReshapeZero
from .data_dependent_shape import DataDependentShape
from .dynamic_input_dimension import DynamicInputDimension
from .runtime_expand_shape import RuntimeExpandShape
from .runtime_shape_computation import RuntimeShapeComputation
from .undetermined_shape import UndeterminedShape

RULES = (
    UndeterminedShape,  # SHP201
    DynamicInputDimension,  # SHP202
    DataDependentShape,  # SHP203
    RuntimeShapeComputation,  # SHP204
    AmbiguousReshapeZero,  # SHP205
    RuntimeExpandShape,  # SHP206
)
