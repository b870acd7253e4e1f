"""The rewrite interface: a named graph transformation reached through findings.

A rewrite is pattern → check → replace (onnxscript's rewriter): `apply` looks for its pattern,
checks the conditions under which the replacement is equivalent, and replaces. Every place it
did not fire is recorded with the reason (`Outcome.skipped`), so `fix --explain` can say why.

Rewrites work on an in-memory `onnx.ModelProto` (weights loaded) and return a new one; they never
touch files. The fix pipeline (onnxdoctor.fix) chooses them from findings, proves each result in
ONNX Runtime against the original, rolls back what fails, and re-checks until a fixpoint.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import ClassVar

import onnx

from ..findings import Applicability, Finding
from ..target import Target

DOC_HEADINGS = ("What it does", "When it applies", "Example", "Safety", "Resolves")


@dataclass
class RewriteContext:
    """What a rewrite may know besides the model."""

    target: Target
    # Findings (of the current model) whose `fix.rewrite` names this rewrite. A rewrite may use them
    # to know where to act, or scan the whole graph itself.
    findings: list[Finding] = field(default_factory=list)
    # Input shapes frozen by --shape: {input name: dims}.
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # Upper bound on bytes a single folded/created constant may have.
    max_constant_bytes: int = 64 * 2**20
    # Options of `fix --precision` conversion: keep_io_types, keep_fp32, max_abs, feeds.
    precision_options: dict = field(default_factory=dict)
    # The original model's outputs the result is proven against (None without a proof), for
    # rewrites whose tolerance scales with the outputs' magnitude.
    reference: dict | None = None


@dataclass
class Outcome:
    model: onnx.ModelProto
    # One line per change, for the user: "fused LayerNormalization at 'ln_1' (9 nodes -> 1)".
    changes: list[str] = field(default_factory=list)
    # One line per place the pattern was seen but not replaced, with the reason (for --explain).
    skipped: list[str] = field(default_factory=list)
    # Structured detail for machine-readable reports (e.g. the conversion decisions).
    details: dict | None = None
    # A final stage's own proof (prove.ProofResult) of its result against the model it was given;
    # the pipeline reports it instead of proving the stage again.
    proof: object | None = None

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class Rewrite:
    """Base class. Subclasses set the class attributes, write the docstring with the DOC_HEADINGS
    sections, and implement `apply`."""

    name: ClassVar[str]  # kebab-case, names the transformation: "fuse-layer-norm"
    summary: ClassVar[str]
    applicability: ClassVar[Applicability] = Applicability.SAFE
    # When the pipeline runs it within one iteration: 10 shapes, 15 inlining, 20 folding, 30 op substitution,
    # 35 Q/DQ repair, 40 opset upgrade, 50 fusion, 60 precision repairs, 70 precision conversion (a final stage: after the loop), 90 cleanup
    # (tests/test_docs.py fails on a phase this list does not name).
    phase: ClassVar[int] = 50
    # Rule codes whose findings this rewrite resolves (they name it in their `fix`).
    resolves: ClassVar[tuple[str, ...]] = ()
    # (domain, op_type) of the nodes whose TRT101/TRT102 findings name this rewrite as their fix
    # (listed for `check` in rule_fixes.SUBSTITUTIONS).
    ops: ClassVar[tuple[tuple[str, str], ...]] = ()
    # Whether `apply` reads the values of big initializers (weights): the pipeline, which keeps big
    # weights out of the graph it rewrites, gives such a rewrite the model with its weights.
    reads_weights: ClassVar[bool] = False
    # Whether the pipeline also tries it in its first iteration without a finding naming it (when the
    # ruleset selects the rules it resolves): for rewrites that see more than their rule can in
    # `check` (fold-shape-computations types the graph with ONNX Runtime's symbolic inference).
    unprompted: ClassVar[bool] = False
    # A final stage runs once, after the rewrite loop converged, on its proven result, and proves its
    # own result (Outcome.proof): mixed precision, whose layerwise proof is part of the conversion.
    final_stage: ClassVar[bool] = False
    # Whether its result is the same whatever size the model's inputs have: `apply` reads no dim size
    # of an activation (ranks and element types are the same at every size). The pipeline proves a
    # batch of such rewrites at a reduced input size when the model's image input is large
    # (inputs.reducible_axes); any other rewrite in the batch sends its proof to the declared size.
    size_independent: ClassVar[bool] = False
    # Tolerances for proving an UNSAFE rewrite (safe ones use the fix defaults).
    atol: ClassVar[float | None] = None
    rtol: ClassVar[float | None] = None

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError

    def may_change(self, model: onnx.ModelProto) -> bool:
        """A cheap look: False when `apply` would certainly leave `model` as it is (the pipeline then
        knows, before running anything, that it will not be proven)."""
        return True

    def weights_needed(self, model: onnx.ModelProto) -> set[str] | None:
        """With `reads_weights`: the initializers whose values `apply` reads on `model` (None: all)."""
        return None

    def tolerances(self, ctx: RewriteContext) -> tuple[float | None, float | None]:
        """(atol, rtol) this rewrite's result is proven with (None: the fix defaults)."""
        return self.atol, self.rtol

    def proof_model(self, candidate: onnx.ModelProto, ctx: RewriteContext) -> onnx.ModelProto:
        """The model ONNX Runtime runs to prove `candidate` (itself, unless ORT cannot run it as is)."""
        return candidate

    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def doc_sections(cls) -> dict[str, str]:
        sections: dict[str, str] = {}
        current = None
        for line in cls.doc().splitlines():
            m = re.match(r"^## (.+?)\s*$", line)
            if m:
                current = m.group(1)
                sections[current] = ""
            elif current is not None:
                sections[current] += line + "\n"
        return {k: v.strip() for k, v in sections.items()}
