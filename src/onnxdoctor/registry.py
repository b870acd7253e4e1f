"""The one explicit table of rules, sorted by code. Third-party rules come through the
`onnxdoctor.rules` entry-point group (each entry point names an iterable of Rule classes)."""

from __future__ import annotations

import functools

from .checks.mod.missing_external_data import MissingExternalData
from .checks.mod.shape_inference_failed import ShapeInferenceFailed
from .checks.trt.control_flow_restriction import ControlFlowRestriction
from .checks.trt.custom_domain_operator import CustomDomainOperator
from .checks.trt.double_precision_tensor import DoublePrecisionTensor
from .checks.trt.unsupported_local_function import UnsupportedLocalFunction
from .checks.trt.non_constant_input import NonConstantInput
from .checks.trt.non_tensor_value import NonTensorValue
from .checks.trt.opset_above_supported import OpsetAboveSupported
from .checks.trt.opset_below_supported import OpsetBelowSupported
from .checks.trt.out_of_range_value import OutOfRangeValue
from .checks.trt.plugin_operator import PluginOperator
from .checks.trt.uint8_inside_network import Uint8InsideNetwork
from .checks.trt.undocumented_operator_type import UndocumentedOperatorType
from .checks.trt.unsupported_attribute_value import UnsupportedAttributeValue
from .checks.trt.unsupported_data_type import UnsupportedDataType
from .checks.trt.unsupported_node_configuration import UnsupportedNodeConfiguration
from .checks.trt.unsupported_operator import UnsupportedOperator
from .checks.trt.unsupported_optional_io import UnsupportedOptionalIo
from .checks.trt.unsupported_rank import UnsupportedRank
from .errors import UsageError
from .rule import Rule

BUILTIN_RULES: tuple[type[Rule], ...] = (
    MissingExternalData,  # MOD502
    ShapeInferenceFailed,  # MOD501
    UnsupportedOperator,  # TRT101
    CustomDomainOperator,  # TRT102
    PluginOperator,  # TRT103
    UnsupportedLocalFunction,  # TRT104
    UnsupportedDataType,  # TRT111
    DoublePrecisionTensor,  # TRT112
    Uint8InsideNetwork,  # TRT113
    UndocumentedOperatorType,  # TRT115
    UnsupportedAttributeValue,  # TRT121
    NonConstantInput,  # TRT122
    UnsupportedOptionalIo,  # TRT123
    UnsupportedRank,  # TRT124
    OutOfRangeValue,  # TRT125
    UnsupportedNodeConfiguration,  # TRT126
    OpsetAboveSupported,  # TRT131
    OpsetBelowSupported,  # TRT132
    ControlFlowRestriction,  # TRT141
    NonTensorValue,  # TRT151
)


@functools.lru_cache(maxsize=1)
def all_rules() -> tuple[Rule, ...]:
    rules: list[Rule] = [cls() for cls in BUILTIN_RULES]
    rules.extend(_plugin_rules())
    rules.sort(key=lambda r: r.code)
    seen: dict[str, Rule] = {}
    for r in rules:
        if r.code in seen:
            raise RuntimeError(f"rule code {r.code} is used by both {seen[r.code].name} and {r.name}")
        seen[r.code] = r
    return tuple(rules)


def _plugin_rules() -> list[Rule]:
    from importlib.metadata import entry_points

    out: list[Rule] = []
    for ep in entry_points(group="onnxdoctor.rules"):
        for cls in ep.load():
            out.append(cls())
    return out


def get_rule(code_or_name: str) -> Rule:
    key = code_or_name.strip()
    for r in all_rules():
        if r.code == key.upper() or r.name == key.lower():
            return r
    raise UsageError(f"unknown rule {code_or_name!r}; `onnxdoctor rules` lists them")


def select_rules(select: list[str] | None = None, ignore: list[str] | None = None) -> tuple[Rule, ...]:
    """Rules matching `select` (codes, code prefixes, families or names; default all) minus `ignore`."""

    def matches(rule: Rule, pattern: str) -> bool:
        p = pattern.strip()
        if not p:
            return False
        if p.upper() == "ALL":
            return True
        return rule.code.startswith(p.upper()) or rule.name == p.lower()

    def validate(patterns: list[str]) -> None:
        for p in patterns:
            if p.strip() and not any(matches(r, p) for r in all_rules()):
                raise UsageError(f"--select/--ignore: {p!r} matches no rule code, prefix or name")

    rules = all_rules()
    if select:
        validate(select)
        rules = tuple(r for r in rules if any(matches(r, p) for p in select))
    if ignore:
        validate(ignore)
        rules = tuple(r for r in rules if not any(matches(r, p) for p in ignore))
    return rules
