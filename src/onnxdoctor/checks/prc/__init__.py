"""PRC family: precision hazards (FP16 range, INT64 range, strong typing on 11.x, Q/DQ)."""

from __future__ import annotations

from .fp16_overflowing_constant import Fp16OverflowingConstant
from .fp32_model_on_strongly_typed_release import Fp32ModelOnStronglyTypedRelease
from .implicit_int8_quantization_removed import ImplicitInt8QuantizationRemoved
from .int4_activation_quantization import Int4ActivationQuantization
from .int64_value_out_of_int32_range import Int64ValueOutOfInt32Range
from .partially_quantized_weighted_operation import PartiallyQuantizedWeightedOperation
from .quantization_axis_mismatch import QuantizationAxisMismatch
from .unpaired_quantize_dequantize import UnpairedQuantizeDequantize
from .unquantized_residual_input import UnquantizedResidualInput
from .strongly_typed_precision_mismatch import StronglyTypedPrecisionMismatch

RULES = (
    Fp16OverflowingConstant,  # PRC301
    Int64ValueOutOfInt32Range,  # PRC302
    Fp32ModelOnStronglyTypedRelease,  # PRC303
    ImplicitInt8QuantizationRemoved,  # PRC304
    StronglyTypedPrecisionMismatch,  # PRC305
    Int4ActivationQuantization,  # PRC311
    QuantizationAxisMismatch,  # PRC312
    UnpairedQuantizeDequantize,  # PRC313
    PartiallyQuantizedWeightedOperation,  # PRC314
    UnquantizedResidualInput,  # PRC315
)
