"""Mixed-precision conversion (FP32 -> FP16/BF16) for strongly typed TensorRT: decide per node from
evidence what stays FP32, convert the rest with Casts at region boundaries, prove it layer by layer.

A converter beside the rule machinery, in modules by step: `decisions` (the typed data: Decision,
Stat, ConversionResult), `planner` (evidence and `plan`), `builder` (`build`, control-flow bodies),
`emulation` (FP16/BF16 rounding in FP32, for proofs ORT's CPU provider cannot run), `stage`
(`convert`: plan, build, prove with verify's streaming helpers, widen and retry). The fix pipeline
reaches it through the `convert-precision` rewrite (onnxdoctor.rewrites.mixed_precision)."""

from __future__ import annotations

from .builder import build, convert_bodies, mixed_type_nodes
from .decisions import DEFAULT_MAX_ABS, DEFAULT_TOLERANCE, MAX_RETRIES, MOVEMENT, TARGETS, ConversionResult, Decision, Stat
from .emulation import emulated, proof_model
from .planner import elem_types, fp32_fractions, observe, plan
from .stage import convert

__all__ = ["DEFAULT_MAX_ABS", "DEFAULT_TOLERANCE", "MAX_RETRIES", "MOVEMENT", "TARGETS", "ConversionResult", "Decision",
           "Stat", "build", "convert", "convert_bodies", "elem_types", "emulated", "fp32_fractions", "mixed_type_nodes",
           "observe", "plan", "proof_model"]
