"""TRT127 ignored-by-importer."""

from __future__ import annotations

from ...findings import Severity
from ._constraint_rule import ConstraintRule


class IgnoredByImporter(ConstraintRule):
    """An input or attribute that the op's TensorRT importer never reads: the model parses, and the
    engine computes something else.

    ## What it does
    Evaluates the `input_ignored` and `attr_ignored` constraints: places where an importer of a
    release does not look at a tensor or attribute that changes the op's result, so the parser
    neither rejects it nor honours it. Examples from the onnx-tensorrt source: before 10.0 the
    `ReduceMean`/`ReduceMax`/`ReduceMin`/`ReduceProd`/`ReduceL1`/`ReduceL2`/`ReduceLogSumExp`/
    `ReduceSumSquare` importers never read the opset-18 `axes` input and reduce over every axis;
    9.1-9.3 build `AveragePool`/`MaxPool` without their `dilations`. A value that changes nothing
    (axes naming every axis, dilations of 1) is not reported.

    ## Why it breaks TensorRT
    Nothing fails: the engine builds and returns wrong numbers, which is worse than a parse error.

    ## Example
        <ir_version: 8, opset_import: ["" : 18]>
        g (float[2,3] x) => (float[2,1] y) <int64[1] axes = {1}> { y = ReduceMean<keepdims = 1>(x, axes) }

    On 8.6-9.3 this reduces over both axes (a [1,1] result of the mean of all six values).

    ## How to fix
    Target a release that reads it (the finding lists the releases), or express the op in a form the
    release reads: for the Reduce ops, an opset-17 model with `axes` as an attribute.

    ## Fix safety
    Pooling dilations the release ignores are taken out of the pooling node by an exact rewrite
    (`max-pool-dilations-to-slices`, `avg-lp-pool-dilations-to-slices`: strided slices of the padded
    input, safe). No automatic fix for the other ignored settings.

    ## TensorRT versions
    Per constraint, listed in each finding.

    ## Sources
    Each constraint's `source` field (onnx-tensorrt importer source, file and line per release);
    docs/research/importer-assertions.md.
    """

    code = "TRT127"
    name = "ignored-by-importer"
    severity = Severity.WARNING
    summary = "input or attribute the importer silently ignores"
    kinds = frozenset({"input_ignored", "attr_ignored"})
    hint_text = "target a release that reads it, or express the op in a form this release reads"
