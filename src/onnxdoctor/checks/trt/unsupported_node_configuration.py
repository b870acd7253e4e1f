"""TRT126 unsupported-node-configuration."""

from __future__ import annotations

from ...findings import Severity
from ._constraint_rule import ConstraintRule


class UnsupportedNodeConfiguration(ConstraintRule):
    """A combination of attributes, shapes and inputs that an importer rejects.

    ## What it does
    Evaluates the `check` constraints, restrictions that need a little logic: Einsum equations
    with an ellipsis (8.6), repeated labels (diagonal) or broadcasting (before 10.12), uppercase
    labels; linear/cubic Resize that scales outer dimensions; Squeeze without axes on a dynamic
    shape; Mod with `fmod=0` on floats; non-positive Q/DQ scales; DeformConv asymmetric pads; STFT
    on complex input; bidirectional RNNs with different activations per direction; and more (see
    `docs/research/constraints-notes.md`). When the needed shapes or values are unknown the check
    stays silent rather than guess.

    ## Why it breaks TensorRT
    The importer asserts on the condition (e.g. `Assertion failed: !isDynamic(shape) && "Cannot
    infer squeeze dimensions from a dynamic shape! Please re-export your model with the Squeeze
    axes input set."`).

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2,3] a, float[3,4] b) => (float[2,4] y) { y = Einsum<equation = "IJ,JK->IK">(a, b) }

    ## How to fix
    Follow the message: re-export with explicit axes, lowercase Einsum labels, a supported mode,
    static shapes (`--shape`), or replace the node with supported ops.

    Some configurations are not valid ONNX either: a 3-D `Attention` without `q_num_heads` or whose
    hidden size the head count does not divide (onnx's shape inference refuses both), floating-point
    `Mod` with `fmod=0` (the specification requires `fmod=1`). Such a model has no defined meaning, so
    `fix` proves no rewrite of it and says so ("the model is invalid ONNX"); re-export it valid.

    ## Fix safety
    Some have exact (safe) rewrites: uppercase Einsum labels (`einsum-lowercase-labels`), Einsum
    ellipses, diagonals and broadcasting (`einsum-explicit-form`), `tf_half_pixel_for_nn` Resize
    with `nearest_mode="floor"` (`resize-equivalent-coordinate-mode`),
    bidirectional RNN/GRU/LSTM with per-direction activations split into two directions
    (`rnn-bidirectional-split`, `gru-bidirectional-split`, `lstm-bidirectional-split`),
    GroupNormalization-21 written with reductions (`group-norm-to-reductions`); the rest are advice.

    ## TensorRT versions
    Per constraint, listed in each finding.

    ## Sources
    Each constraint's `source` field; predicate semantics in `onnxdoctor.checks.predicates`.
    """

    code = "TRT126"
    name = "unsupported-node-configuration"
    severity = Severity.ERROR
    summary = "node configuration the importer rejects"
    kinds = frozenset({"check"})
    hint_text = "re-export or rewrite the node as the message describes"
