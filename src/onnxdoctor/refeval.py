"""The proofs' fallback runtime: onnx.reference.ReferenceEvaluator, for models ONNX Runtime refuses.

ONNX Runtime is the runtime of every proof. Some valid models it does not run: an op, a type or a
form it does not implement (INT32 Gemm, BFLOAT16 Relu, a 3-D DeformConv, Resize scaling the batch).
For those, and only those, the reference outputs (and a rewritten model ONNX Runtime refuses too)
come from ONNX's own reference implementation, the spec's executable form, so that a rewrite can
still be proven. Three guards keep the fallback from hiding anything:

- it is used only when ONNX Runtime refused, never instead of it;
- only for a model that is valid ONNX (`invalid_onnx`: `onnx.checker`'s full check with strict
  shape inference, and the spec's constraints the checker does not enforce). An invalid model has
  no defined meaning, so no output of any runtime is its reference;
- only for small models (node and element counts below), because the reference evaluator is plain
  numpy, and with every output checked against the shapes the model declares
  (`check_shape_annotations`): a runtime that computes another shape than the model says computed
  something else.

The reference evaluator implements DeformConv for 2-D data only; the N-D case the spec defines is
evaluated by `DeformConv` below (written from the operator's specification, the 2-D case checked
against onnx's own implementation in the tests).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import onnx

from ._proto import graphs

RUNTIME = "onnx.reference"
# Bounds of a model the reference evaluator runs (it is numpy, node by node; a DeformConv is a loop).
MAX_NODES = 2000
MAX_ELEMENTS = 1 << 22  # initializers and inputs together


class Refused(Exception):
    """The fallback does not apply to this model; the message says why."""


def invalid_onnx(model: onnx.ModelProto) -> str | None:
    """Why `model` is not valid ONNX, or None: onnx.checker's full check (strict shape inference)
    first, then the constraints the operators' specifications state in words and the checker does
    not enforce. `model` must hold its weights (or none big enough to matter: the checker reads no
    data)."""
    ranges = onnx.defs.C.schema_version_map()
    for o in model.opset_import:
        domain = "" if o.domain == "ai.onnx" else o.domain
        if domain in ("", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training") and domain in ranges:
            low, high = ranges[domain]
            if not low <= o.version <= high:
                return f"it imports {o.domain or 'ai.onnx'} opset {o.version}, which no ONNX release defines ({low} to {high})"
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001 - any refusal is the reason
        return "onnx.checker: " + " ".join(str(e).split())[:300]
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as e:  # noqa: BLE001
        return "onnx shape inference: " + " ".join(str(e).split())[:300]
    return _spec_constraint(inferred)


def _spec_constraint(model: onnx.ModelProto) -> str | None:
    """The first node breaking a constraint its operator's specification states and onnx's checker
    and shape inference do not enforce."""
    g = model.graph
    types = {vi.name: vi.type for vi in (*g.input, *g.value_info, *g.output)}
    types.update({t.name: onnx.helper.make_tensor_type_proto(t.data_type, list(t.dims)) for t in g.initializer})

    def rank(name: str) -> int | None:
        tp = types.get(name)
        if tp is None or tp.WhichOneof("value") != "tensor_type" or not tp.tensor_type.HasField("shape"):
            return None
        return len(tp.tensor_type.shape.dim)

    def elem(name: str) -> int | None:
        tp = types.get(name)
        return tp.tensor_type.elem_type if tp is not None and tp.WhichOneof("value") == "tensor_type" else None

    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
    for n in g.node:
        label = f"{n.op_type} {n.name!r}" if n.name else n.op_type
        if n.domain in ("", "ai.onnx") and n.op_type == "Attention" and len(n.input) > 3 and n.input[3]:
            r = rank(n.input[3])
            if r is not None and r > 4:
                return (f"{label}: attn_mask has rank {r}; the specification requires a mask broadcastable to the 4-D "
                        "(batch, q_num_heads, q_sequence_length, total_sequence_length)")
        if n.domain in ("", "ai.onnx") and n.op_type == "Mod" and n.input and elem(n.input[0]) in floats:
            fmod = next((a.i for a in n.attribute if a.name == "fmod"), 0)
            if fmod != 1:
                return f"{label}: floating-point inputs with fmod=0; the specification requires fmod=1 for floating point"
    return None


def _size(model: onnx.ModelProto, feeds: dict[str, np.ndarray] | None) -> tuple[int, int]:
    nodes = sum(len(sub.node) for sub in graphs(model.graph))
    elements = sum(math.prod(int(d) for d in t.dims) for t in model.graph.initializer)
    if feeds:
        elements += sum(int(np.asarray(a).size) for a in feeds.values() if isinstance(a, np.ndarray))
    return nodes, elements


class Session:
    """An onnx.reference.ReferenceEvaluator with the two methods of an ONNX Runtime session that the
    proofs use (`get_outputs`, `run`)."""

    runtime = RUNTIME

    def __init__(self, model: onnx.ModelProto, why: str) -> None:
        from onnx.reference import ReferenceEvaluator

        self.model = model
        self.why = why  # why ONNX Runtime is not used
        self._outputs = [SimpleNamespace(name=o.name) for o in model.graph.output]
        self._ev = ReferenceEvaluator(model, new_ops=[DeformConv], check_shape_annotations=True)

    def get_outputs(self) -> list:
        return self._outputs

    def run(self, names, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        _, elements = _size(self.model, feeds)
        if elements > MAX_ELEMENTS:
            raise Refused(f"{RUNTIME} runs models of up to {MAX_ELEMENTS:,} weight and input elements; this run has {elements:,}")
        with np.errstate(all="ignore"):  # overflow and NaN are results here, as in ONNX Runtime
            return list(self._ev.run(list(names) if names else None, feeds))


def session(model: onnx.ModelProto, ort_error: str) -> Session:
    """The fallback session for `model` (with its weights), after ONNX Runtime refused it with
    `ort_error`; raises Refused (saying why) when the fallback does not apply."""
    nodes, elements = _size(model, None)
    if nodes > MAX_NODES or elements > MAX_ELEMENTS:
        raise Refused(f"too big for the fallback runtime {RUNTIME} ({nodes:,} nodes, {elements:,} weight elements; "
                      f"it runs up to {MAX_NODES:,} and {MAX_ELEMENTS:,})")
    problem = invalid_onnx(model)
    if problem is not None:
        raise Refused(f"the model is invalid ONNX ({problem}): it has no defined meaning, so no rewrite can be proven "
                      "equal to it")
    try:
        return Session(model, ort_error)
    except Exception as e:  # noqa: BLE001 - an op onnx.reference lacks: no fallback
        raise Refused(f"{RUNTIME} cannot run it either ({' '.join(str(e).split())[:200]})") from None


def ort_reason(error: str) -> str:
    """A short account of ONNX Runtime's refusal, for the report."""
    text = " ".join(error.split())
    for marker in ("Status Message:", "Error ", "Type Error:", ": FAIL :", "NOT_IMPLEMENTED :", "INVALID_GRAPH :"):
        if marker in text:
            text = text.split(marker, 1)[1].strip()
    return text[:160]


# ---------------------------------------------------------------- ops onnx.reference lacks
from onnx.reference.op_run import OpRun  # noqa: E402


class DeformConv(OpRun):
    """DeformConv (opset 19) for any number of spatial dimensions, from the operator's specification.

    For output position o, kernel position k and input channel c (of offset group g), the sampling
    location is `o * strides - pads_begin + k * dilations + offset[n, g, k, :, o]` (the offset tensor
    is (N, offset_group, k1..kn, n, o1..on) flattened on axis 1, as the spec's shape says and as
    onnx's 2-D implementation reads it); the sample is the multilinear interpolation of X[n, c] there,
    each corner outside the input counting 0 ("sampling locations outside of the padded input tensor
    gives zero"); it is multiplied by `mask[n, g, k, o]` (default 1) and the weight, and summed over
    the group's channels and the kernel, plus the bias."""

    op_domain = ""

    def _run(self, X, W, offset, B=None, mask=None, dilations=None, group=None, kernel_shape=None,  # noqa: PLR0913
             offset_group=None, pads=None, strides=None):
        nd = X.ndim - 2
        kernel = tuple(kernel_shape or W.shape[2:])
        dilations = tuple(dilations or (1,) * nd)
        strides = tuple(strides or (1,) * nd)
        pads = tuple(pads or (0,) * (2 * nd))
        group, offset_group = group or 1, offset_group or 1
        n, ic = X.shape[:2]
        oc = W.shape[0]
        out = tuple(offset.shape[2:])
        if ic != W.shape[1] * group or oc % group or ic % offset_group:
            raise ValueError(f"DeformConv: X {X.shape}, W {W.shape}, group {group}, offset_group {offset_group} do not fit")
        nk = math.prod(kernel)
        if offset.shape[1] != offset_group * nk * nd:
            raise ValueError(f"DeformConv: offset {offset.shape} does not fit offset_group {offset_group} and kernel {kernel}")
        off = offset.reshape(n, offset_group, nk, nd, *out).astype(np.float64)
        m = np.ones((n, offset_group, nk, *out)) if mask is None else mask.reshape(n, offset_group, nk, *out)
        # base[k, d, o...]: where kernel position k of output position o samples, before the offset
        kpos = np.stack(np.meshgrid(*[np.arange(s) * dl for s, dl in zip(kernel, dilations)], indexing="ij"), -1).reshape(nk, nd)
        opos = np.stack(np.meshgrid(*[np.arange(s) * st - p for s, st, p in zip(out, strides, pads[:nd])], indexing="ij"), 0)
        base = kpos.reshape(nk, nd, *([1] * nd)) + opos.reshape(1, nd, *out)
        loc = base[None, None] + off  # (n, offset_group, nk, nd, o...)
        lo = np.floor(loc)
        frac = loc - lo
        lo = lo.astype(np.int64)
        spatial = X.shape[2:]
        icg, ocg, icog = ic // group, oc // group, ic // offset_group
        res = np.zeros((n, oc, *out), dtype=np.float64)
        if B is not None:
            res += B.reshape(1, oc, *([1] * nd))
        for b in range(n):
            for c in range(ic):
                g = c // icog
                sample = np.zeros((nk, *out))
                for corner in np.ndindex(*(2,) * nd):
                    idx = [lo[b, g, :, d] + corner[d] for d in range(nd)]
                    weight = np.ones((nk, *out))
                    inside = np.ones((nk, *out), dtype=bool)
                    for d in range(nd):
                        f = frac[b, g, :, d]
                        weight = weight * (f if corner[d] else 1 - f)
                        inside &= (idx[d] >= 0) & (idx[d] < spatial[d])
                    clipped = tuple(np.clip(i, 0, s - 1) for i, s in zip(idx, spatial))
                    sample += np.where(inside, weight * X[b, c][clipped], 0.0)
                sample *= m[b, g]
                cg = c // icg
                w = W[cg * ocg:(cg + 1) * ocg, c % icg].reshape(ocg, nk)  # (ocg, nk)
                res[b, cg * ocg:(cg + 1) * ocg] += np.tensordot(w, sample, axes=([1], [0]))
        return (res.astype(X.dtype),)
