"""Opset upgrade for rewrites that need a newer `ai.onnx` opset (fusions into LayerNormalization,
Gelu, RMSNormalization): onnx's version converter, with a plain version bump as the fallback when
no op in the model changed between the two opsets."""

from __future__ import annotations

import onnx
from onnx import defs

from .._proto import default_opset, graphs
from ..findings import Applicability
from .base import Outcome, Rewrite, RewriteContext


class OpsetUpgradeError(Exception):
    """The model could not be upgraded; the message says why (shown as the rewrite's skip reason)."""


def plan(model: onnx.ModelProto, need: int, opset_max: int) -> int | None:
    """The opset to upgrade to so that an op introduced in opset `need` can be used, or None when the
    model already has it. Raises OpsetUpgradeError when the target release does not document `need`:
    a rewrite never takes a model above its target's documented maximum."""
    have = default_opset(model)
    if have >= need:
        return None
    if need > opset_max:
        raise OpsetUpgradeError(f"needs opset {need} and the target release documents opsets up to {opset_max}")
    return need


def upgrade(model: onnx.ModelProto, to: int) -> onnx.ModelProto:
    """A copy of `model` with its `ai.onnx` opset raised to `to`.

    Tries onnx.version_converter first (it rewrites ops whose signature changed, e.g. ReduceMean
    axes from attribute to input at 18). When the converter fails (unsupported adapter, contrib-domain
    nodes it cannot type, a model above 2 GB), falls back to changing only the opset number — which is
    exact only if no default-domain op used in the model has a newer version in (have, to]; otherwise
    raises OpsetUpgradeError naming the ops that block it."""
    have = default_opset(model)
    if have == 0:
        raise OpsetUpgradeError("the model does not import the ai.onnx domain")
    if to <= have:
        raise OpsetUpgradeError(f"the model already has opset {have} (asked for {to})")
    if to > defs.onnx_opset_version():
        raise OpsetUpgradeError(f"onnx {onnx.__version__} knows opsets up to {defs.onnx_opset_version()}, not {to}")
    try:
        from onnx import version_converter

        given, stubs, added = _external_as_inputs(model)
        out = _inputs_as_external(version_converter.convert_version(given, to), stubs, added)
        onnx.checker.check_model(_external_as_inputs(out)[0])
    except Exception as e:  # noqa: BLE001 - the converter raises RuntimeError/ValidationError/ValueError alike
        reason = " ".join(str(e).split())[:160] or type(e).__name__
        changed = changed_ops(model, have, to)
        if changed:
            raise OpsetUpgradeError(
                f"onnx version converter failed ({reason}), and {', '.join(changed[:5])} changed between opset "
                f"{have} and {to}, so the opset number alone cannot be raised"
            ) from None
        out = onnx.ModelProto()
        out.CopyFrom(model)
        _set_opset(out, to)
        return out
    _restore_metadata(out, model, to)
    _constants_to_initializers(out, model)
    return out


def _external_as_inputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[onnx.TensorProto], set[str]]:
    """The converter and the checker insist that external data is a file next to the model, though
    they read only its type: main-graph initializers in external data (the fix pipeline's weight
    stubs, onnxdoctor.weights) go through them as graph inputs of the same type. Returns the model,
    the initializers taken out, and the inputs added for them."""
    ext = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if not ext:
        return model, [], set()
    out = onnx.ModelProto()
    out.CopyFrom(model)
    keep = [t for t in out.graph.initializer if t.data_location != onnx.TensorProto.EXTERNAL]
    del out.graph.initializer[:]
    out.graph.initializer.extend(keep)
    inputs = {vi.name for vi in out.graph.input}
    added = [t for t in ext if t.name not in inputs]
    out.graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in added)
    return out, ext, {t.name for t in added}


def _inputs_as_external(model: onnx.ModelProto, ext: list[onnx.TensorProto], added: set[str]) -> onnx.ModelProto:
    if not ext:
        return model
    kept = [vi for vi in model.graph.input if vi.name not in added]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    model.graph.initializer.extend(ext)
    return model


def changed_ops(model: onnx.ModelProto, have: int, to: int) -> list[str]:
    """Default-domain ops of `model` (every graph and local function) whose definition has a version in (have, to]."""
    ops: set[str] = set()
    for nodes in (*(g.node for g in graphs(model.graph)), *(f.node for f in model.functions)):
        ops.update(n.op_type for n in nodes if n.domain in ("", "ai.onnx"))
    out = []
    for op in sorted(ops):
        try:
            old = defs.get_schema(op, have, "").since_version
            new = defs.get_schema(op, to, "").since_version
        except Exception:  # noqa: BLE001 - unknown op (or not defined at `have`): cannot vouch for it
            out.append(op)
            continue
        if new != old:
            out.append(op)
    return out


def _constants_to_initializers(out: onnx.ModelProto, like: onnx.ModelProto) -> None:
    """The converter writes attribute-turned-input values (ReduceMean axes at 18, Split sizes at 13, ...)
    as unnamed `Constant` nodes, one per node. Make the main graph's new ones initializers, one per
    distinct value, as an exporter would: no extra nodes, and nothing for GRF404 to report."""
    g = out.graph
    old = {o for n in like.graph.node for o in n.output}
    by_value: dict[bytes, str] = {}
    keep, alias = [], {}
    for n in g.node:
        value = n.attribute[0].t if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value" else None
        if value is None or n.domain not in ("", "ai.onnx") or n.output[0] in old or value.data_location == onnx.TensorProto.EXTERNAL:
            keep.append(n)
            continue
        key = value.SerializeToString(deterministic=True)
        if key in by_value:
            alias[n.output[0]] = by_value[key]
            continue
        t = onnx.TensorProto()
        t.CopyFrom(value)
        t.name = by_value[key] = n.output[0]
        g.initializer.append(t)
    if len(keep) == len(g.node):
        return
    for n in keep:
        for i, name in enumerate(n.input):
            if name in alias:
                n.input[i] = alias[name]
    del g.node[:]
    g.node.extend(keep)


def _set_opset(model: onnx.ModelProto, to: int) -> None:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = to


def _restore_metadata(out: onnx.ModelProto, like: onnx.ModelProto, to: int) -> None:
    # The converter rebuilds the model; keep what it may drop or reorder: other domains' opsets,
    # the IR version (never lowered), producer and metadata.
    other = {o.domain: o.version for o in out.opset_import if o.domain not in ("", "ai.onnx")}
    for o in like.opset_import:
        if o.domain not in ("", "ai.onnx") and o.domain not in other:
            out.opset_import.add(domain=o.domain, version=o.version)
    _set_opset(out, to)
    out.ir_version = max(out.ir_version, like.ir_version)
    if not out.producer_name:
        out.producer_name, out.producer_version = like.producer_name, like.producer_version
    if not out.metadata_props and like.metadata_props:
        out.metadata_props.extend(like.metadata_props)


class UpgradeOpset(Rewrite):
    """Raise the model's `ai.onnx` opset to the lowest one the target release supports.

    ## What it does
    Converts the model with onnx's version converter to the release's documented minimum opset
    (e.g. 8 → 9 for TensorRT 10.x), which rewrites ops whose definition changed (Upsample, Reduce
    axes, ...). When the converter fails and no op the model uses changed between the two opsets, only
    the opset number is raised. The fusions use the same upgrade (`upgrade`) when the fused op needs
    a newer opset, never above the target's documented maximum.

    ## When it applies
    TRT132 findings (opset below the release's documented minimum). Skipped with the converter's
    error when neither way works.

    ## Example
    `opset_import: ["" : 8]` with `Upsample` becomes opset 9 with the opset-9 `Upsample` (scales as
    an input).

    ## Safety
    Safe: the converter's adapters keep each op's semantics; the proof runs both models.

    ## Resolves
    TRT132
    """

    name = "upgrade-opset"
    phase = 40
    summary = "raise the ai.onnx opset to the release's documented minimum"
    applicability = Applicability.SAFE
    resolves = ("TRT132",)

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        rel = ctx.target.release
        have = default_opset(model)
        if not have or have >= rel.opset_min:
            return Outcome(model, skipped=[f"opset {have} is not below TensorRT {rel.version}'s minimum {rel.opset_min}"])
        try:
            out = upgrade(model, rel.opset_min)
        except OpsetUpgradeError as e:
            return Outcome(model, skipped=[f"cannot upgrade opset {have} -> {rel.opset_min}: {e}"])
        return Outcome(out, [f"upgraded the ai.onnx opset {have} -> {rel.opset_min}"])


REWRITES = (UpgradeOpset,)
