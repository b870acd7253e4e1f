"""Fusions: decomposed patterns replaced by the fused op the target supports (LayerNormalization, Gelu,
RMSNormalization). Matching is the GRF rules' (checks/grf/patterns.py), so `check` and `fix` agree
on what a pattern is; this module only replaces what matched, upgrading the opset when needed."""

from __future__ import annotations

import os
from typing import Callable, ClassVar

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .._proto import default_opset, graph_protos, taken_names, unique_name
from ..findings import Applicability
from ..model import Graph, Model, from_proto
from ..patterns import decomposed as patterns
from .base import Outcome, Rewrite, RewriteContext
from .opset import OpsetUpgradeError, plan, upgrade


class _Skip(Exception):
    """One match cannot be replaced; the message says why."""


class _Fusion(Rewrite):
    """Shared loop: match (with the GRF matcher) → check the target → upgrade the opset if needed →
    replace each match by one node."""

    op_type: ClassVar[str]
    opset: ClassVar[int]  # the opset that introduced `op_type`
    phase = 50
    applicability = Applicability.SAFE

    @staticmethod
    def matcher(model: Model, graph: Graph, node) -> patterns.MatchResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def build(self, m: patterns.Match, g: Graph, model: Model, add_const: Callable) -> tuple[list[str], dict]:
        """(inputs, attributes) of the fused node for match `m`; raises _Skip."""
        raise NotImplementedError  # pragma: no cover - abstract

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        rel = ctx.target.release
        if self.op_type not in rel.ops:
            return Outcome(model, skipped=[f"TensorRT {rel.version} has no {self.op_type} importer"])
        view = from_proto(model)
        found, failures = _collect(view, type(self).matcher)
        if not found:
            return Outcome(model, skipped=failures or [f"no decomposed {self.label} in the graph"])
        changes: list[str] = []
        work = model
        try:
            to = plan(model, self.opset, rel.opset_max)
        except OpsetUpgradeError as e:
            return Outcome(model, skipped=[f"{len(found)} decomposed {self.label}(s) not fused: {self.op_type} {e}"])
        if to is not None:
            have = default_opset(model)
            try:
                work = upgrade(model, to)
            except OpsetUpgradeError as e:
                return Outcome(model, skipped=[f"{len(found)} decomposed {self.label}(s) not fused: cannot upgrade opset {have} -> {to}: {e}"])
            changes.append(f"upgraded the ai.onnx opset {have} -> {to} for {self.op_type}")
            view = from_proto(work)
            found, failures = _collect(view, type(self).matcher)
            if not found:  # pragma: no cover - the converter keeps these patterns intact
                return Outcome(model, skipped=failures + [f"after the opset upgrade to {to}, no {self.label} matched"])
        out = onnx.ModelProto()
        out.CopyFrom(work)
        protos = graph_protos(out)
        taken = taken_names(out)
        skipped = list(failures)
        fused = 0
        by_graph: dict[tuple[str, ...], list[patterns.Match]] = {}
        graphs = {g.path: g for g in view.graphs}
        for path, m in found:
            by_graph.setdefault(path, []).append(m)
        for path, ms in by_graph.items():
            g, gp = graphs[path], protos.get(path)
            if gp is None:
                skipped += [f"{self.label} at {m.nodes[-1].name!r} is inside a local function: not rewritten" for m in ms]
                continue
            used: set[int] = set()
            at: dict[int, onnx.NodeProto] = {}
            new_inits: list[onnx.TensorProto] = []
            for m in ms:
                idx = {n.index for n in m.nodes}
                where = m.nodes[-1].name
                if idx & used:
                    skipped.append(f"{self.label} at {where!r} overlaps another match")
                    continue

                def add_const(value: np.ndarray, base: str) -> str:
                    name = unique_name(taken, base)
                    new_inits.append(numpy_helper.from_array(value, name))
                    return name

                try:
                    inputs, attrs = self.build(m, g, view, add_const)
                except _Skip as e:
                    skipped.append(f"{self.label} at {where!r} not fused: {e}")
                    continue
                name = unique_name(taken, _node_name(m, self.op_type))
                at[max(idx)] = helper.make_node(self.op_type, inputs, [m.output], name=name, **attrs)
                used |= idx
                fused += 1
                changes.append(f"fused {self.op_type} {name!r} ({len(m.nodes)} nodes -> 1: {m.form})")
            if not at:
                continue
            nodes = []
            for i, n in enumerate(gp.node):
                if i in at:
                    nodes.append(at[i])
                elif i not in used:
                    nodes.append(n)
            del gp.node[:]
            gp.node.extend(nodes)
            gp.initializer.extend(new_inits)
            dropped = {o for i in used for o in g.nodes[i].output} - {n.output[0] for n in at.values()}
            _drop_value_info(gp, dropped)
        if not fused:
            return Outcome(model, skipped=skipped)
        return Outcome(out, changes, skipped)

    @property
    def label(self) -> str:
        return self.name.removeprefix("fuse-").replace("-", "")


def _collect(view: Model, matcher) -> tuple[list[tuple[tuple[str, ...], patterns.Match]], list[str]]:
    found, failures = [], []
    for g in view.graphs:
        for anchor, r in patterns.iter_matches(view, g, matcher):
            if r:
                found.append((g.path, r))
            else:
                failures.append(f"{anchor.op_type} {anchor.name!r}: {r.reason}")
    return found, failures


def _node_name(m: patterns.Match, op_type: str) -> str:
    """Exporters name a module's nodes '/encoder/layer.0/LayerNorm/Sub': reuse the module path."""
    names = [n.node.name for n in m.nodes if n.node.name]
    prefix = os.path.commonprefix(names) if names else ""
    prefix = prefix[: prefix.rfind("/") + 1] if "/" in prefix else ""
    return f"{prefix}{op_type}" if prefix else f"{op_type}_{m.output}"


def _drop_value_info(gp: onnx.GraphProto, names: set[str]) -> None:
    if not names:
        return
    keep = [vi for vi in gp.value_info if vi.name not in names]
    if len(keep) != len(gp.value_info):
        del gp.value_info[:]
        gp.value_info.extend(keep)


def _norm_dims(g: Graph, x: str, axis: int) -> tuple[int, ...] | None:
    t = g.type_of(x)
    if t is None or t.rank is None:
        return None
    dims = t.shape[axis:] if axis < 0 else t.shape[axis - t.rank:]
    if any(not isinstance(d, int) or d <= 0 for d in dims):
        return None
    return tuple(dims)


def _param(g: Graph, model: Model, name: str | None, x: str, axis: int, fill: float, what: str,
           add_const: Callable) -> str:
    """A scale/bias input shaped like the normalized axes: the pattern's constant when it already has
    that shape, else its value broadcast to it (or `fill` when the pattern has none)."""
    n_axes = -axis
    dims = _norm_dims(g, x, axis)
    et = g.elem_type_of(x)
    if name is not None:
        t = g.type_of(name)
        shape = tuple(t.shape) if t is not None and t.is_static else None
        if shape is not None and len(shape) == n_axes and (dims is None or shape == dims):
            return name
        value = model.constants(g).value(name)
        if value is None:
            raise _Skip(f"the value of {what} {name!r} is not known")
        trimmed = list(value.shape)
        while trimmed and trimmed[0] == 1:
            trimmed.pop(0)
        value = value.reshape(trimmed)  # the matcher allows leading ones only
        if dims is None:
            if len(trimmed) != n_axes:
                raise _Skip(f"{what} {name!r} of shape {list(value.shape)} needs broadcasting and the normalized dims are not static")
            return add_const(value, f"{name}_{what}")
        return add_const(np.ascontiguousarray(np.broadcast_to(value, dims)), f"{name}_{what}")
    if dims is None:
        raise _Skip(f"the pattern has no {what} and the normalized dims of {x!r} are not static")
    if not et:
        raise _Skip(f"the element type of {x!r} is unknown")
    dtype = helper.tensor_dtype_to_np_dtype(et)
    return add_const(np.full(dims, fill, dtype=dtype), f"{x}_{what}_{'ones' if fill else 'zeros'}")


class FuseLayerNorm(_Fusion):
    """Replace a decomposed LayerNorm by one `LayerNormalization`.

    ## What it does
    Replaces each pattern that GRF411's matcher finds — `ReduceMean → Sub → Pow(2) → ReduceMean →
    Add(ε) → Sqrt → Div → [Mul(γ) → Add(β)]` in the TorchScript and dynamo exporters' variants
    (Reciprocal or Div(1, ·) for the rsqrt, x·x for the square, ReduceMean axes as attribute or
    input) — by `LayerNormalization(x, γ, β, axis, epsilon)`. γ and β become tensors of the normalized
    shape (broadcast from the pattern's constants, or ones when the pattern has no scale; β is left
    out when the pattern has no bias). Below opset 17 the model is first upgraded to 17 with
    onnx's version converter.

    ## When it applies
    GRF411 findings: the target release imports `LayerNormalization` and documents opset 17. Skipped
    (with the reason) when the opset cannot be upgraded, or γ/β need broadcasting to normalized dims
    that are not static.

    ## Example
    `m = ReduceMean(x); d = Sub(x, m); p = Pow(d, 2); v = ReduceMean(p); s = Sqrt(Add(v, 1e-5));
    y = Add(Mul(Div(d, s), w), b)` becomes `y = LayerNormalization<axis=-1, epsilon=1e-5>(x, w, b)`.

    ## Safety
    Safe: the same formula; ONNX Runtime's kernel accumulates in FP32 in another order, so results
    agree to float rounding (measured max abs diff ~2e-6 on BERT), within the proof's tolerance.

    ## Resolves
    GRF411
    """

    name = "fuse-layer-norm"
    summary = "replace a decomposed LayerNorm by LayerNormalization"
    resolves = ("GRF411",)
    op_type = "LayerNormalization"
    opset = 17
    matcher = staticmethod(patterns.match_layer_norm)

    def build(self, m, g, model, add_const):
        scale = _param(g, model, m.gamma, m.input, m.axis, 1.0, "scale", add_const)
        inputs = [m.input, scale]
        if m.beta is not None:
            inputs.append(_param(g, model, m.beta, m.input, m.axis, 0.0, "bias", add_const))
        return inputs, {"axis": m.axis, "epsilon": float(m.epsilon)}


class FuseGelu(_Fusion):
    """Replace a decomposed GELU by one `Gelu`.

    ## What it does
    Replaces each pattern that GRF412's matcher finds by `Gelu(x)`: the Erf form
    `x · 0.5 · (1 + erf(x / √2))` by `approximate="none"`, the tanh form
    `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))` by `approximate="tanh"`. Below opset 20 the
    model is first upgraded to 20 with onnx's version converter.

    ## When it applies
    GRF412 findings: the target release has a `Gelu` importer and documents opset 20 (TensorRT 10.0
    and later). On earlier releases nothing is fused (8.6 to 9.3 cannot import `Gelu`).

    ## Example
    `y = Mul(Mul(x, Add(Erf(Div(x, 1.4142135)), 1)), 0.5)` becomes `y = Gelu<approximate="none">(x)`.

    ## Safety
    Safe: `Gelu` is defined by these formulas (the tanh form is the op's own definition, not an
    approximation of it); measured max abs diff ~1e-6 on the real exports.

    ## Resolves
    GRF412
    """

    name = "fuse-gelu"
    summary = "replace a decomposed GELU (Erf or Tanh form) by Gelu"
    resolves = ("GRF412",)
    op_type = "Gelu"
    opset = 20
    matcher = staticmethod(patterns.match_gelu)

    def build(self, m, g, model, add_const):
        return [m.input], {"approximate": m.approximate}


class FuseRmsNorm(_Fusion):
    """Replace a decomposed RMSNorm by one `RMSNormalization`.

    ## What it does
    Replaces each pattern that GRF413's matcher finds — `Pow(x, 2) → ReduceMean → Add(ε) → Sqrt →
    Div | Reciprocal→Mul | Div(1, ·)→Mul → [same-type Cast]* → Mul(γ)`, both exporters' forms — by
    `RMSNormalization(x, γ, axis, epsilon)`. γ becomes a tensor of the normalized shape (ones when
    the pattern has no scale). Below opset 23 the model is first upgraded to 23 with onnx's version
    converter.

    ## When it applies
    GRF413 findings: the target release imports `RMSNormalization` (TensorRT 10.15 and later) and
    documents opset 23.

    ## Example
    `s = Sqrt(Add(ReduceMean(Pow(x, 2)), 1e-6)); y = Mul(w, Mul(x, Reciprocal(s)))` becomes
    `y = RMSNormalization<axis=-1, epsilon=1e-6>(x, w)`.

    ## Safety
    Safe: the same formula, accumulated in FP32 (`stash_type` 1); agrees to float rounding.

    ## Resolves
    GRF413
    """

    name = "fuse-rms-norm"
    summary = "replace a decomposed RMSNorm by RMSNormalization"
    resolves = ("GRF413",)
    op_type = "RMSNormalization"
    opset = 23
    matcher = staticmethod(patterns.match_rms_norm)

    def build(self, m, g, model, add_const):
        scale = _param(g, model, m.gamma, m.input, m.axis, 1.0, "scale", add_const)
        return [m.input, scale], {"axis": m.axis, "epsilon": float(m.epsilon)}


REWRITES = (FuseGelu, FuseLayerNorm, FuseRmsNorm)
