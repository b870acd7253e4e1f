"""Model-local functions inlined into the graphs that call them (onnx.inliner)."""

from __future__ import annotations

import onnx

from .._proto import graphs
from ..findings import Applicability
from .base import Outcome, Rewrite, RewriteContext


def _domains_used(model: onnx.ModelProto) -> set[str]:
    return {n.domain or "" for g in graphs(model.graph) for n in g.node}


class InlineLocalFunctions(Rewrite):
    """Inline every call of a model-local function, in the main graph and in control-flow bodies.

    ## What it does
    Replaces each node that calls a function of the model's `functions` list by the function's
    body (recursively, for functions calling functions), with its attributes bound and its internal
    names made unique, using `onnx.inliner.inline_local_functions`. The function definitions and
    the opset imports of domains no node uses any more are removed.

    ## When it applies
    TRT104 (TensorRT 8.6 cannot import local functions: the parser inlines them only from 9.0), and
    TRT101/TRT102 findings on a node inside a function body that a substitution would replace:
    substitutions rewrite graphs, so the body is inlined first and the node replaced in the next
    iteration.

    ## Example
    `y = local.Block(x)` with `Block (a) => (b) { h = Relu(a) b = Neg(h) }` becomes
    `h__1 = Relu(x); y = Neg(h__1)`.

    ## Safety
    Safe: a function call means its body (ONNX IR semantics); the parser of 9.0+ inlines it the
    same way.

    ## Resolves
    TRT104, TRT101, TRT102
    """

    name = "inline-local-functions"
    summary = "inline calls of model-local functions"
    applicability = Applicability.SAFE
    phase = 15
    resolves = ("TRT104", "TRT101", "TRT102")

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        import onnx.inliner

        if not model.functions:
            return Outcome(model, skipped=["the model defines no local function"])
        names = [f"{f.domain}::{f.name}" if f.domain else f.name for f in model.functions]
        out = onnx.inliner.inline_local_functions(model, convert_version=False)
        # Functions nothing calls any more are not needed either.
        del out.functions[:]
        used = _domains_used(out)
        kept = [o for o in out.opset_import if o.domain in ("", "ai.onnx") or o.domain in used]
        dropped = [o.domain for o in out.opset_import if o not in kept]
        del out.opset_import[:]
        out.opset_import.extend(kept)
        changes = [f"inlined {len(names)} local function(s): {', '.join(names)}"]
        if dropped:
            changes.append(f"removed the opset import of no longer used domain(s) {', '.join(sorted(dropped))}")
        return Outcome(out, changes)



# Standard ops replaced by the function body their ONNX schema defines, where some release has no
# importer (or rejects the configuration) and no hand-written substitution exists. Each was checked
# against ONNX Runtime's kernel (tests/test_function_bodies.py).
_BODY_OPS = ("Attention", "CenterCropPad", "NegativeLogLikelihoodLoss", "RotaryEmbedding", "SoftmaxCrossEntropyLoss")
_PRIVATE = "onnxdoctor.function_body"


def _type_proto(info, name: str) -> onnx.TypeProto:
    from onnx import helper

    elem = info.types.get(name) if name else None
    if not elem:
        return onnx.TypeProto()
    return helper.make_tensor_type_proto(elem, info.shapes.get(name))


def _at_model_opset(body: onnx.FunctionProto, opset: int) -> None:
    """A body written for an older opset (CenterCropPad-18 in an opset-21 model) is inlined at the
    model's opset. ONNX's version converter is not used: it drops Constant values. The version
    changes such bodies meet add types or inputs without changing the forms used; a change that
    matters fails the full check or the proof, which roll the rewrite back."""
    for o in body.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = opset


class OpToFunctionBody(Rewrite):
    """Replace a standard op by the function body its ONNX schema defines.

    ## What it does
    Several recent ONNX operators are defined by a function: a subgraph of older operators that
    computes the same thing. `Attention` (opset 23: scaled dot-product attention with grouped
    query heads, KV cache, causal and explicit masks, softcap), `RotaryEmbedding` (opset 23),
    `CenterCropPad` (opset 18) and the training losses `NegativeLogLikelihoodLoss` and
    `SoftmaxCrossEntropyLoss` are replaced by the body ONNX builds for the node (its attributes and
    input types), inlined with `onnx.inliner` under fresh names. The bodies use Shape, Reshape,
    MatMul, Softmax, Where, Slice, Pad, Gather and the like; an op of the body the release lacks
    (`CastLike` before 9.1) is replaced in the next iteration by its own rewrite, and shape
    computations on static shapes fold away.

    ## When it applies
    TRT101 on those ops in releases without an importer (Attention before 10.14, RotaryEmbedding
    before 10.15, CenterCropPad and the losses in every release), and the `Attention`
    configurations the 10.14+ importer rejects (KV cache inputs and outputs, `qk_matmul_output`,
    `softcap`, `softmax_precision`, 3-D inputs on 10.14). Skipped when ONNX cannot build the body
    (e.g. an input's type or rank is unknown).

    ## Example
    `y = RotaryEmbedding(x, cos, sin, pos)` becomes about 30 nodes: the rotated half of `x`
    (`Split`, `Mul`, `Sub`, `Add`, `Concat`) with `cos`/`sin` gathered at `pos`.

    ## Safety
    Safe: the function body is the operator's definition in the ONNX standard; ONNX Runtime's
    kernels agree with it to float rounding (checked by the proof of every application).

    ## Resolves
    TRT101, TRT123, TRT121, TRT124
    """

    name = "op-to-function-body"
    summary = "replace Attention, RotaryEmbedding, CenterCropPad and the losses by their ONNX function body"
    applicability = Applicability.SAFE
    phase = 30
    resolves = ("TRT101", "TRT123", "TRT121", "TRT124")
    ops = tuple(("", op) for op in _BODY_OPS)

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        import onnx.defs
        import onnx.inliner

        from .._proto import default_opset
        from .substitutions._build import ModelInfo

        opset = default_opset(model)
        out = onnx.ModelProto()
        out.CopyFrom(model)
        info = ModelInfo(out)
        changes: list[str] = []
        skipped: list[str] = []
        bodies: list[onnx.FunctionProto] = []
        for g in graphs(out.graph):
            for node in g.node:
                if node.domain not in ("", "ai.onnx") or node.op_type not in _BODY_OPS:
                    continue
                where = node.name or node.output[0]
                try:
                    schema = onnx.defs.get_schema(node.op_type, opset, "")
                    if schema.has_function:
                        raw = schema.get_function_with_opset_version(opset)
                    elif schema.has_context_dependent_function:
                        raw = schema.get_context_dependent_function(
                            node.SerializeToString(), [_type_proto(info, i).SerializeToString() for i in node.input])
                    else:
                        raise ValueError(f"ONNX defines no function body for {node.op_type}-{schema.since_version}")
                    body = raw if isinstance(raw, onnx.FunctionProto) else onnx.FunctionProto.FromString(raw)
                    if not body.node:
                        raise ValueError("ONNX built an empty body")
                    _at_model_opset(body, opset)
                except Exception as e:  # noqa: BLE001 - ONNX's builders raise plain errors; say why and move on
                    skipped.append(f"{node.op_type} {where!r}: ONNX cannot build its function body here "
                                   f"({' '.join(str(e).split())[:160]})")
                    continue
                body.domain = _PRIVATE
                body.name = info.unique(f"{node.op_type}_body")
                changes.append(f"replaced {node.op_type} {where!r} by its ONNX function body ({len(body.node)} nodes)")
                node.domain = _PRIVATE
                node.op_type = body.name
                bodies.append(body)
        if not bodies:
            return Outcome(model, skipped=skipped or [f"no {', '.join(_BODY_OPS)} node"])
        out.functions.extend(bodies)
        out.opset_import.append(onnx.helper.make_opsetid(_PRIVATE, 1))
        inlined = onnx.inliner.inline_selected_functions(out, [(_PRIVATE, f.name) for f in bodies])
        kept = [o for o in inlined.opset_import if o.domain != _PRIVATE]
        del inlined.opset_import[:]
        inlined.opset_import.extend(kept)
        return Outcome(inlined, changes, skipped)


REWRITES = (InlineLocalFunctions, OpToFunctionBody)
