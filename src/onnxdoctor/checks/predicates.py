"""Predicates for `kind = "check"` constraints: restrictions that data alone cannot express.

Each predicate takes (node, model) and returns a short detail string when the node violates the
restriction, or None when it does not *or when the information needed is unknown* — an unknown
shape must never produce an error (docs/research/constraints-notes.md, section a).
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np
from .._onnx import TensorProto

from ..dtype_limits import INT32_MAX
from ..model import Model, NodeRef, TensorType

Predicate = Callable[[NodeRef, Model], "str | None"]
PREDICATES: dict[str, Predicate] = {}

FLOAT_TYPES = {
    TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE,
}


def predicate(fn: Predicate) -> Predicate:
    PREDICATES[fn.__name__] = fn
    return fn


def _type(node: NodeRef, tensor: str) -> TensorType | None:
    return node.graph.type_of(tensor) if tensor else None


def _rank(node: NodeRef, tensor: str) -> int | None:
    t = _type(node, tensor)
    return t.rank if t else None


def _const(node: NodeRef, model: Model, tensor: str):
    return model.constants(node.graph).value(tensor) if tensor else None


def _is_const(node: NodeRef, model: Model, tensor: str) -> bool:
    return bool(tensor) and model.constants(node.graph).is_constant(tensor)


@predicate
def always(node: NodeRef, model: Model) -> str | None:
    return ""


# -- Resize / Upsample ------------------------------------------------------------
@predicate
def resize_tf_half_pixel_nearest_mode(node: NodeRef, model: Model) -> str | None:
    if node.attr("coordinate_transformation_mode", "half_pixel") != "tf_half_pixel_for_nn":
        return None
    mode = node.attr("nearest_mode", "round_prefer_floor")
    return None if mode == "round_prefer_floor" else f"nearest_mode={mode!r}"


def _scales_input(node: NodeRef, model: Model) -> str:
    if node.op_type == "Upsample":
        return node.input(1)
    return node.input(2) if model.op_version(node) >= 11 else node.input(1)


@predicate
def resize_tensor_scales_with_axes(node: NodeRef, model: Model) -> str | None:
    scales = _scales_input(node, model)
    if not scales or _is_const(node, model, scales) or node.input(3):
        return None
    axes = node.attr("axes", [])  # another kind of value is recorded for MOD506 and reads as none
    if not axes:
        return None
    rank = _rank(node, node.input(0))
    if rank is None:
        return None
    if sorted(a % rank for a in axes) == list(range(rank)) and [a % rank for a in axes] == list(range(rank)):
        return None
    return f"axes={axes} with a runtime scales tensor"


@predicate
def resize_scaled_dims(node: NodeRef, model: Model) -> str | None:
    if node.op_type == "Resize" and node.input(3):
        return None  # driven by sizes
    scales = _const(node, model, _scales_input(node, model))
    if scales is None:
        return None
    scales = np.asarray(scales, dtype=np.float64).reshape(-1)
    if scales.size == 0:
        return None
    axes = node.attr("axes", [])  # another kind of value is recorded for MOD506 and reads as none
    rank = _rank(node, node.input(0))
    if axes:
        if rank is None:
            return None
        full = np.ones(rank)
        for a, s in zip(axes, scales):
            full[a % rank] = s
        scales = full
    mode = node.attr("mode", "nearest")
    keep = 3 if mode in ("linear", "bilinear") else 2 if mode == "cubic" else None
    if keep is None:
        return None
    outer = scales[:-keep] if scales.size > keep else np.array([])
    if np.any(outer != 1):
        return f"{mode} resize scales an outer dimension (scales={scales.tolist()}); only the innermost {keep} may change"
    return None


# -- Squeeze --------------------------------------------------------------------
@predicate
def squeeze_no_axes_dynamic_shape(node: NodeRef, model: Model) -> str | None:
    has_axes = bool(node.input(1)) if model.op_version(node) >= 13 else node.has_attr("axes")
    if has_axes:
        return None
    t = _type(node, node.input(0))
    if t is None or t.shape is None:
        return None  # unknown: do not guess
    return None if t.is_static else f"input shape {list(t.shape)} is dynamic"


# -- Einsum ---------------------------------------------------------------------
def _einsum_terms(node: NodeRef) -> tuple[list[str], str | None] | None:
    eq = node.attr("equation")
    if not isinstance(eq, str):
        return None
    eq = eq.replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    return lhs.split(","), (rhs if "->" in eq else None)


@predicate
def einsum_ellipsis(node: NodeRef, model: Model) -> str | None:
    eq = node.attr("equation", "")
    return "equation uses an ellipsis" if "..." in eq else None


@predicate
def einsum_diagonal(node: NodeRef, model: Model) -> str | None:
    terms = _einsum_terms(node)
    if terms is None:
        return None
    for term in terms[0]:
        letters = term.replace("...", "")
        if len(set(letters)) != len(letters):
            return f"term {term!r} repeats a label (diagonal)"
    return None


@predicate
def einsum_broadcast(node: NodeRef, model: Model) -> str | None:
    terms = _einsum_terms(node)
    if terms is None:
        return None
    sizes: dict[str, set] = {}
    ellipsis_ranks = set()
    for term, name in zip(terms[0], node.node.input):
        t = _type(node, name)
        if t is None or t.shape is None:
            continue
        if "..." in term:
            head, _, tail = term.partition("...")
            ell = len(t.shape) - len(head) - len(tail)
            ellipsis_ranks.add(ell)
            dims = list(t.shape[: len(head)]) + list(t.shape[len(t.shape) - len(tail):])
            letters = head + tail
        else:
            if len(term) != len(t.shape):
                continue
            dims, letters = list(t.shape), term
        for ch, d in zip(letters, dims):
            if isinstance(d, int):
                sizes.setdefault(ch, set()).add(d)
    for ch, s in sizes.items():
        if len(s) > 1 and 1 in s:
            return f"label {ch!r} broadcasts between sizes {sorted(s)}"
    if len(ellipsis_ranks) > 1:
        return "the ellipsis covers a different number of dimensions in different inputs"
    return None


@predicate
def einsum_invalid_characters(node: NodeRef, model: Model) -> str | None:
    eq = node.attr("equation", "")
    bad = sorted(set(re.sub(r"[a-z,.\->\s]", "", eq)))
    return f"equation has characters {''.join(bad)!r} (only lowercase labels are accepted)" if bad else None


# -- RNNs -------------------------------------------------------------------------
_RNN_DEFAULTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}


@predicate
def rnn_bidirectional_activations_match(node: NodeRef, model: Model) -> str | None:
    if node.attr("direction", "forward") != "bidirectional":
        return None
    n = len(_RNN_DEFAULTS.get(node.op_type, []))
    if n == 0:
        return None
    acts = node.attr("activations")
    if acts and len(acts) >= 2 * n and [a.lower() for a in acts[:n]] != [a.lower() for a in acts[n: 2 * n]]:
        return f"forward activations {acts[:n]} differ from reverse {acts[n:2 * n]}"
    for key in ("activation_alpha", "activation_beta"):
        vals = node.attr(key)
        if vals and len(vals) >= 2 * n and vals[:n] != vals[n: 2 * n]:
            return f"forward {key} {vals[:n]} differ from reverse {vals[n:2 * n]}"
    return None


# -- control flow -------------------------------------------------------------------
@predicate
def if_branch_ranks(node: NodeRef, model: Model) -> str | None:
    # The branch graphs' output ranks: declared, inferred (ONNX shape inference types subgraph
    # outputs), or derived from the ops that compute them (checks/_ranks.py) - exporters often declare
    # branch outputs without a shape (a VAD model's 16 Ifs, of which declared shapes showed 8).
    from ._ranks import node_subgraphs, rank_of

    branches = node_subgraphs(model, node)
    then_g, else_g = branches.get("then_branch"), branches.get("else_branch")
    if then_g is None or else_g is None:
        return None
    for i, (a, b) in enumerate(zip(then_g.outputs, else_g.outputs)):
        ra, rb = rank_of(model, then_g, a), rank_of(model, else_g, b)
        if ra is not None and rb is not None and ra != rb:
            return f"output {i}: then-branch rank {ra}, else-branch rank {rb}"
    return None


@predicate
def if_branch_output_count(node: NodeRef, model: Model) -> str | None:
    then_g, else_g = node.attr("then_branch"), node.attr("else_branch")
    # (a branch given as another kind of attribute is MOD506's, not a count to compare)
    if not hasattr(then_g, "output") or not hasattr(else_g, "output") or len(then_g.output) == len(else_g.output):
        return None
    return f"then-branch has {len(then_g.output)} outputs, else-branch {len(else_g.output)}"


def _loop_has_scan_outputs(node: NodeRef) -> bool:
    body = node.attr("body")
    if body is None:
        return False
    n_carried = max(len(node.node.input) - 2, 0)
    return len(body.output) > 1 + n_carried


def _loop_trip_count_usable(node: NodeRef, model: Model) -> bool:
    m = node.input(0)
    if not m:
        return False
    val = _const(node, model, m)
    if val is not None and np.asarray(val).size == 1 and int(np.asarray(val).reshape(-1)[0]) >= INT32_MAX:
        return False
    return True


@predicate
def loop_scan_outputs_need_trip_count(node: NodeRef, model: Model) -> str | None:
    if not _loop_has_scan_outputs(node) or _loop_trip_count_usable(node, model):
        return None
    return "Loop has scan outputs but no trip count"


@predicate
def loop_scan_outputs_with_trip_and_cond(node: NodeRef, model: Model) -> str | None:
    if not _loop_has_scan_outputs(node) or not _loop_trip_count_usable(node, model):
        return None
    cond = node.input(1)
    if not cond:
        return None
    val = _const(node, model, cond)
    if val is not None and bool(np.asarray(val).reshape(-1)[0]):
        return None
    return "Loop has scan outputs, a trip count and a runtime condition"


# -- elementwise, quantization --------------------------------------------------------
@predicate
def mod_fmod0_float_inputs(node: NodeRef, model: Model) -> str | None:
    if node.attr("fmod", 0) != 0:
        return None
    t = _type(node, node.input(0))
    return "fmod=0 on floating-point inputs" if t is not None and t.elem_type in FLOAT_TYPES else None


@predicate
def qdq_scale_positive(node: NodeRef, model: Model) -> str | None:
    val = _const(node, model, node.input(1))
    if val is None:
        return None
    arr = np.asarray(val, dtype=np.float64)
    return f"scale has non-positive values (min {arr.min():g})" if arr.size and np.any(arr <= 0) else None


# -- shape requirements -----------------------------------------------------------------
@predicate
def hardmax_axis_dim_static(node: NodeRef, model: Model) -> str | None:
    t = _type(node, node.input(0))
    if t is None or t.shape is None or not t.shape:
        return None
    axis = node.attr("axis", 1 if model.op_version(node) < 13 else -1)
    d = t.shape[axis % len(t.shape)]
    return None if isinstance(d, int) else f"dimension {axis} is dynamic ({d!r})"


@predicate
def input0_static_shape(node: NodeRef, model: Model) -> str | None:
    t = _type(node, node.input(0))
    if t is None or t.shape is None:
        return None
    return None if t.is_static else f"input shape {list(t.shape)} is dynamic"


@predicate
def deformconv_symmetric_pads(node: NodeRef, model: Model) -> str | None:
    pads = node.attr("pads", [])
    if not pads or len(pads) % 2:
        return None
    n = len(pads) // 2
    return None if pads[:n] == pads[n:] else f"pads {pads} are not symmetric"


@predicate
def convtranspose_output_shape_negative_prepad(node: NodeRef, model: Model) -> str | None:
    out_shape = node.attr("output_shape")
    if not out_shape or node.attr("auto_pad", "NOTSET") != "NOTSET":
        return None
    x, w = _type(node, node.input(0)), _type(node, node.input(1))
    if x is None or w is None or not x.is_static or not w.is_static:
        return None
    n = len(out_shape)
    spatial_in = x.shape[-n:]
    kernel = node.attr("kernel_shape") or list(w.shape[-n:])
    strides = node.attr("strides") or [1] * n
    dil = node.attr("dilations") or [1] * n
    opad = node.attr("output_padding") or [0] * n
    for i in range(n):
        total = strides[i] * (spatial_in[i] - 1) + opad[i] + ((kernel[i] - 1) * dil[i] + 1) - out_shape[i]
        if total // 2 < 0:
            return f"output_shape {out_shape} implies negative padding on spatial axis {i}"
    return None


@predicate
def stft_real_input(node: NodeRef, model: Model) -> str | None:
    t = _type(node, node.input(0))
    if t is None or t.shape is None:
        return None
    if len(t.shape) == 2 or (len(t.shape) == 3 and t.shape[-1] == 1):
        return None
    return f"input shape {list(t.shape)} is not a real signal [batch, length] or [batch, length, 1]"


@predicate
def stft_window_or_frame_length(node: NodeRef, model: Model) -> str | None:
    return None if node.input(2) or node.input(3) else "neither window nor frame_length is given"


@predicate
def attention_qkv_same_rank(node: NodeRef, model: Model) -> str | None:
    ranks = [_rank(node, node.input(i)) for i in range(3)]
    if any(r is None for r in ranks) or len(set(ranks)) == 1:
        return None
    return f"Q, K, V ranks {ranks} differ"


@predicate
def attention_extra_outputs(node: NodeRef, model: Model) -> str | None:
    """importAttention checks node.output().size() == 1: an extra output fails even when nothing reads it
    (an empty-named trailing output counts too). Consumed ones are also output_absent's finding."""
    outs = list(node.node.output)
    if len(outs) <= 1:
        return None
    named = [o for o in outs[1:] if o]
    if any(node.graph.is_used(o) for o in named):
        return None  # reported by the Attention.present_* / qk_matmul_output constraints
    return f"the node lists {len(outs)} outputs ({', '.join(repr(o) for o in outs[1:])} unused)"


@predicate
def attention_3d_needs_num_heads(node: NodeRef, model: Model) -> str | None:
    if _rank(node, node.input(0)) != 3:
        return None
    missing = [a for a in ("q_num_heads", "kv_num_heads") if not node.attr(a, 0)]
    return f"3-D Q/K/V without {' and '.join(missing)}" if missing else None


@predicate
def attention_hidden_divisible_by_heads(node: NodeRef, model: Model) -> str | None:
    """reshapeQKVTensor checks hidden_size % num_heads when the hidden size is static."""
    for i, attr in ((0, "q_num_heads"), (1, "kv_num_heads"), (2, "kv_num_heads")):
        t = _type(node, node.input(i))
        heads = node.attr(attr, 0)
        if t is None or t.shape is None or len(t.shape) != 3 or not heads:
            continue
        hidden = t.shape[2]
        if isinstance(hidden, int) and hidden % heads:
            return f"input {i} hidden size {hidden} is not divisible by {attr}={heads}"
    return None
