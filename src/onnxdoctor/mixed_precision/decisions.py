"""The typed data of a mixed-precision conversion: targets and defaults, a node's `Decision` (kept
FP32 or converted, and why), what a reference run observed (`Stat`), the `ConversionResult`."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
from onnx import TensorProto as TP


TARGETS = {"fp16": TP.FLOAT16, "bf16": TP.BFLOAT16}

_TYPE_STR = {TP.FLOAT16: "tensor(float16)", TP.BFLOAT16: "tensor(bfloat16)"}

_SHORT = {TP.FLOAT: "fp32", TP.FLOAT16: "fp16", TP.BFLOAT16: "bf16"}

# Activations beyond this stay FP32: well below 65504, so that a different input does not overflow.
DEFAULT_MAX_ABS = {"fp16": 8192.0, "bf16": 1e30}

# Final-output tolerances of the proof (FP16 keeps ~3 decimal digits, BF16 ~2).
DEFAULT_TOLERANCE = {"fp16": (1e-2, 1e-2), "bf16": (5e-2, 5e-2)}

MAX_RETRIES = 4

BIG_REDUCTION = 2048  # reducing this many elements or more accumulates visible FP16 error

# Ops that only move or regroup values: they take the precision of their data input, so that a Cast
# is placed once, after them, instead of a pair around them.
MOVEMENT = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Expand", "Slice", "Gather",
                      "GatherElements", "GatherND", "Concat", "Split", "Tile", "DepthToSpace", "SpaceToDepth"})

# Ops whose output is bounded whatever the input magnitude: a huge mask stops here.
_BOUNDED = frozenset({"Softmax", "LogSoftmax", "Sigmoid", "Tanh", "Erf", "Cos", "Sin", "Exp", "Sign", "IsNaN", "IsInf",
                      "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Not", "And", "Or", "Shape", "Size",
                      "LayerNormalization", "HardSigmoid"})

_REDUCTIONS = frozenset({"ReduceSum", "ReduceMean", "ReduceSumSquare", "ReduceL2", "ReduceL1", "ReduceLogSumExp"})

_ARITH = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Where", "MatMul", "Gemm", "Conv", "Sum", "Mean"})

# Compute weight: ops with a reduction dimension (MACs per output element).
_MAC_OPS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum"})



@dataclass(frozen=True)
class Decision:
    node: str
    op_type: str
    kept_fp32: bool
    reason: str
    kind: str = "compute"  # compute | movement | cast | shape

    def to_dict(self) -> dict:
        return {"node": self.node, "op_type": self.op_type, "kept_fp32": self.kept_fp32, "reason": self.reason, "kind": self.kind}



@dataclass
class Stat:
    """What a reference run observed about one tensor."""

    peak: float
    shape: tuple[int, ...]
    dtype: str
    floor: float = 0.0  # smallest finite |x| seen (0.0 when a zero, or nothing finite, was seen)



@dataclass
class ConversionResult:
    model: onnx.ModelProto
    target_type: str
    decisions: list[Decision]
    casts_inserted: int
    fp32_fraction: float  # share of compute (MAC-weighted when shapes were observed) kept in FP32
    fp32_node_fraction: float  # share of compute nodes kept in FP32
    first_divergence: object | None = None  # verify.LayerComparison
    retries: int = 0
    outputs: list = field(default_factory=list)  # verify.LayerComparison per graph output
    proof: str | None = None  # "onnxruntime" | "emulated (...)" | None (not proven)
    passed: bool | None = None
    tolerance: tuple[float, float] = (0.0, 0.0)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def proof_result(self):
        """The conversion's proof as the fix pipeline reports proofs (prove.ProofResult): one comparison
        per graph output; None when the conversion was not proven."""
        from ..prove import Comparison, ProofResult

        if self.passed is None:
            return None
        comps = [Comparison(c.tensor, c.max_abs_diff, c.max_rel_diff, c.passed) for c in self.outputs]
        fd = self.first_divergence
        if not self.passed and all(c.passed for c in comps) and fd is not None:
            # the outputs held, an intermediate did not (it overflowed): that tensor is what failed
            comps.append(Comparison(fd.tensor, fd.max_abs_diff, fd.max_rel_diff, False))
        return ProofResult(bool(self.passed), comps)

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if d.kept_fp32 and d.kind == "compute"]

    def to_dict(self) -> dict:
        fd = self.first_divergence.to_dict() if self.first_divergence is not None else None
        return {"target": self.target_type, "pass": self.passed, "proof": self.proof, "retries": self.retries,
                "casts_inserted": self.casts_inserted, "fp32_fraction": self.fp32_fraction,
                "fp32_node_fraction": self.fp32_node_fraction,
                "tolerance": {"atol": self.tolerance[0], "rtol": self.tolerance[1]},
                "outputs": [c.to_dict() for c in self.outputs], "first_divergence": fd, "notes": self.notes,
                "seconds": round(self.seconds, 3), "decisions": [d.to_dict() for d in self.decisions]}

    def render_text(self, *, all_decisions: bool = False) -> str:
        lines = [f"converted to {self.target_type}: {len(self.kept)} compute node(s) kept in FP32 "
                 f"({self.fp32_fraction:.1%} of compute), {self.casts_inserted} Cast(s) inserted"]
        shown = self.decisions if all_decisions else self.kept
        for d in shown:
            lines.append(f"  {'FP32' if d.kept_fp32 else self.target_type.upper():<5} {d.node} ({d.op_type}): {d.reason}")
        for c in self.outputs:
            lines.append(f"  output {c.tensor!r}: max |diff| {c.max_abs_diff:.3g} (rel {c.max_rel_diff:.3g}) "
                         f"{'pass' if c.passed else 'FAIL'}")
        if self.first_divergence is not None:
            fd = self.first_divergence
            lines.append(f"  first divergence: {fd.tensor!r} from {fd.node} ({fd.op_type}), max |diff| {fd.max_abs_diff:.3g}")
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.proof:
            lines.append(f"proof ({self.proof}, atol {self.tolerance[0]:g} rtol {self.tolerance[1]:g}, {self.retries} "
                         f"retr{'y' if self.retries == 1 else 'ies'}): {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines) + "\n"
