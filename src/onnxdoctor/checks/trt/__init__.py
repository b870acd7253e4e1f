"""TRT family: what the TensorRT ONNX parser of the target release rejects or mishandles."""

from __future__ import annotations

from .control_flow_restriction import ControlFlowRestriction
from .custom_domain_operator import CustomDomainOperator
from .double_precision_tensor import DoublePrecisionTensor
from .ignored_by_importer import IgnoredByImporter
from .non_constant_input import NonConstantInput
from .non_tensor_value import NonTensorValue
from .opset_above_supported import OpsetAboveSupported
from .opset_below_supported import OpsetBelowSupported
from .out_of_range_value import OutOfRangeValue
from .plugin_operator import PluginOperator
from .rejected_input_type import RejectedInputType
from .uint8_inside_network import Uint8InsideNetwork
from .undocumented_operator_type import UndocumentedOperatorType
from .unsupported_attribute_value import UnsupportedAttributeValue
from .unsupported_data_type import UnsupportedDataType
from .unsupported_local_function import UnsupportedLocalFunction
from .unsupported_node_configuration import UnsupportedNodeConfiguration
from .unsupported_operator import UnsupportedOperator
from .unsupported_optional_io import UnsupportedOptionalIo
from .unsupported_rank import UnsupportedRank

RULES = (
    UnsupportedOperator,  # TRT101
    CustomDomainOperator,  # TRT102
    PluginOperator,  # TRT103
    UnsupportedLocalFunction,  # TRT104
    UnsupportedDataType,  # TRT111
    DoublePrecisionTensor,  # TRT112
    Uint8InsideNetwork,  # TRT113
    UndocumentedOperatorType,  # TRT115
    RejectedInputType,  # TRT116
    UnsupportedAttributeValue,  # TRT121
    NonConstantInput,  # TRT122
    UnsupportedOptionalIo,  # TRT123
    UnsupportedRank,  # TRT124
    OutOfRangeValue,  # TRT125
    UnsupportedNodeConfiguration,  # TRT126
    IgnoredByImporter,  # TRT127
    OpsetAboveSupported,  # TRT131
    OpsetBelowSupported,  # TRT132
    ControlFlowRestriction,  # TRT141
    NonTensorValue,  # TRT151
)
