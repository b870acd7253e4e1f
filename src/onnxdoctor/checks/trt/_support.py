"""Shared lookups for the operator-support rules: how the parser resolves a node to an importer."""

from __future__ import annotations

import enum

from ...kb import Release
from ...model import Model, NodeRef
from ...target import Target


class Resolution(enum.Enum):
    BUILTIN = "builtin"  # a built-in importer of the same op_type (domain is ignored by the parser)
    TRT_CUSTOM = "trt-custom"  # one of TensorRT's own custom ops
    LOCAL_FUNCTION = "local-function"  # model-local function, inlined from 9.0
    PLUGIN = "plugin"  # plugin fallback importer finds a built-in or user-named plugin
    FUNCTION_UNSUPPORTED = "function-unsupported"  # local function, but the release cannot inline it
    NONE = "none"  # nothing: the parser fails on this node


def resolve(release: Release, target: Target, model: Model, node: NodeRef) -> Resolution:
    """How the parser of `release` imports `node` (onnx-tensorrt ModelImporter: importer by op_type,
    then local function, then plugin fallback; docs/research/parser-facts.md).
    Depends only on (domain, op_type), so it is memoized per model and release."""
    memo = model.__dict__.setdefault("_resolution_memo", {})
    key = (release.version, target.plugins, node.node.domain, node.op_type)
    hit = memo.get(key)
    if hit is None:
        hit = memo[key] = _resolve(release, target, model, node)
    return hit


def _resolve(release: Release, target: Target, model: Model, node: NodeRef) -> Resolution:
    op = node.op_type
    if op in release.ops:
        return Resolution.BUILTIN
    if any(op in ops for ops in release.domain_ops.values()):
        return Resolution.TRT_CUSTOM
    is_function = (node.node.domain, op) in model.local_functions
    if is_function and release.local_functions:
        return Resolution.LOCAL_FUNCTION
    if (op in release.plugins and op not in release.removed_plugins) or op in target.plugins:
        return Resolution.PLUGIN
    return Resolution.FUNCTION_UNSUPPORTED if is_function else Resolution.NONE


def first_supporting(target: Target, op: str) -> str | None:
    """Earliest known release with a built-in importer for `op`, if any."""
    for v in target.kb.versions:
        r = target.kb.release(v)
        if op in r.ops or any(op in s for s in r.domain_ops.values()):
            return v
    return None


def versions_resolving(target: Target, model: Model, node: NodeRef, wanted: set[Resolution]) -> tuple[str, ...]:
    kb = target.kb
    return tuple(v for v in kb.versions if resolve(kb.release(v), target, model, node) in wanted)


def groups_resolving(ctx, wanted: Resolution, *, standard_only: bool = False):
    """(op_type, its nodes, releases where it resolves the same way) for each (domain, op_type) of the
    model that the target release resolves as `wanted`; resolution depends on the pair only."""
    for (domain, op), refs in ctx.op_index().items():
        if standard_only and domain:
            continue
        if resolve(ctx.release, ctx.target, ctx.model, refs[0]) is wanted:
            yield op, refs, versions_resolving(ctx.target, ctx.model, refs[0], {wanted})
