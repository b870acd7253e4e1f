"""Model-local functions inlined into the graphs that call them (onnx.inliner)."""

from __future__ import annotations

import onnx

from ..findings import Applicability
from .base import Outcome, Rewrite, RewriteContext


def _domains_used(model: onnx.ModelProto) -> set[str]:
    used: set[str] = set()
    stack = [model.graph]
    while stack:
        g = stack.pop()
        for n in g.node:
            used.add(n.domain or "")
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    stack.append(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    stack.extend(a.graphs)
    return used


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


REWRITES = (InlineLocalFunctions,)
