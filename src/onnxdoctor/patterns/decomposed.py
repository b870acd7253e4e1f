"""Matchers for decomposed LayerNorm, GELU and RMSNorm: the `check` rules report their matches and the
fusion rewrites replace them, so both agree on what a pattern is.

Each matcher starts at one anchor node and returns a `Match` (truthy) or a `MatchFailure` (falsy)
whose `reason` says why the pattern does not apply (shown by `fix --explain`):

    match_layer_norm(model, graph, node)  anchor: Sqrt   -> LayerNormalization
    match_rms_norm(model, graph, node)    anchor: Sqrt   -> RMSNormalization
    match_gelu(model, graph, node)        anchor: Erf or Tanh -> Gelu (approximate "none" / "tanh")

`iter_matches(model, graph, matcher)` runs a matcher on every anchor of a graph. Matchers verify
semantics, not only op types: reduction axes are the trailing axes, exponents and constants have
the expected values, and no intermediate tensor is used outside the pattern (or is a graph output).
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, NamedTuple, Union

from .._onnx import TensorProto

from ..model import Graph, Model, NodeRef

FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE})

SQRT2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_COEFF = 0.044715


class Match(NamedTuple):
    """A matched pattern. `nodes` are in dataflow order and `nodes[-1]` produces `output`. (An
    immutable record: a NamedTuple is made in a fraction of a frozen dataclass's time, at start-up and
    per match.)"""

    kind: str  # "layer-norm" | "rms-norm" | "gelu"
    nodes: tuple[NodeRef, ...]
    input: str
    output: str
    form: str  # how the pattern was written, e.g. "Div by Sqrt" or "Mul by Reciprocal(Sqrt)"
    axis: int | None = None  # first normalized axis, negative (normalizations)
    epsilon: float | None = None
    epsilon_name: str | None = None
    gamma: str | None = None  # scale tensor, None when the pattern has no scale Mul
    beta: str | None = None  # bias tensor (layer-norm), None when absent
    approximate: str | None = None  # gelu: "none" (Erf form) or "tanh"
    constants: tuple[str, ...] = ()  # every constant tensor the pattern reads

    def __bool__(self) -> bool:
        return True

    def describe(self) -> str:
        return " → ".join(n.op_type for n in self.nodes)


class MatchFailure(NamedTuple):
    """Why a matcher did not match, at which node."""

    reason: str
    node: NodeRef | None = None

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return self.reason


MatchResult = Union[Match, MatchFailure]


class _Fail(Exception):
    def __init__(self, reason: str, node: NodeRef | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.node = node


def fail(reason: str, node: NodeRef | None = None) -> MatchFailure:
    return MatchFailure(reason, node)


# ----------------------------------------------------------------------------
# Graph helpers
# ----------------------------------------------------------------------------
class _View:
    def __init__(self, model: Model, graph: Graph) -> None:
        self.model = model
        self.g = graph
        self.cv = model.constants(graph)

    def ref(self, index: int) -> NodeRef:
        return self.g.ref(index)

    def producer(self, tensor: str, op: str | tuple[str, ...] | None = None) -> NodeRef | None:
        g = self.g
        hit = g.producers.get(tensor)
        if hit is None:
            return None
        i = hit[0]
        if not g.standard[i]:
            return None
        op_type = g.op_types[i]
        if op is not None and op_type != op and (isinstance(op, str) or op_type not in op):
            return None
        return g.ref(i)

    def consumers(self, tensor: str) -> list[NodeRef]:
        return [self.ref(i) for i in self.g.consumers.get(tensor, ())]

    def only_consumer(self, tensor: str, what: str) -> NodeRef:
        users = self.g.consumers.get(tensor, ())
        if tensor in self.g.outputs:
            raise _Fail(f"{what} {tensor!r} is a graph output")
        if len(users) != 1:
            raise _Fail(f"{what} {tensor!r} has {len(users)} consumers, expected 1")
        return self.ref(users[0])

    def scalar(self, tensor: str) -> float | None:
        return self.cv.scalar(tensor)

    def is_const(self, tensor: str) -> bool:
        return self.cv.is_constant(tensor)

    def const_shape(self, tensor: str) -> tuple[int, ...] | None:
        shape = self.g.shape_of(tensor)  # type_of(tensor).shape, without making the TensorType
        if shape is not None and all(isinstance(d, int) for d in shape):
            return tuple(shape)  # type: ignore[arg-type]
        v = self.cv.value(tensor)
        return None if v is None else tuple(v.shape)

    def rank(self, tensor: str) -> int | None:
        return self.g.rank_of(tensor)


def _close(value: float | None, expected: float, tensor_dtype: int = 0) -> bool:
    if value is None or not math.isfinite(value):
        return False
    rtol = 2e-3 if tensor_dtype in (TensorProto.FLOAT16, TensorProto.BFLOAT16) else 1e-5
    return abs(value - expected) <= rtol * abs(expected)


def _other(node: NodeRef, tensor: str) -> str | None:
    """The other operand of a binary node that reads `tensor` (None if it does not, or reads it twice)."""
    ins = node.graph.node_inputs[node.index]  # read, not changed
    if len(ins) != 2:
        return None
    if ins[0] == tensor and ins[1] != tensor:
        return ins[1]
    if ins[1] == tensor and ins[0] != tensor:
        return ins[0]
    return None


def _split_const(v: _View, node: NodeRef, what: str) -> tuple[str, str, float]:
    """(variable operand, constant operand, its scalar value) of a commutative binary node."""
    ins = node.graph.node_inputs[node.index]  # read, not changed
    if len(ins) != 2:
        raise _Fail(f"{node.op_type} {node.name!r} does not have two inputs", node)
    for c, x in ((1, 0), (0, 1)):
        val = v.scalar(ins[c])
        if val is not None and not v.is_const(ins[x]):
            return ins[x], ins[c], val
    raise _Fail(f"{what} is not a constant scalar", node)


def _check_closed(v: _View, nodes: list[NodeRef]) -> None:
    """Every tensor produced inside the pattern, except the last node's output, is read only inside it."""
    g = v.g
    graph_outputs, consumers, node_outputs = g.outputs, g.consumers, g.node_outputs
    inside = {n.index for n in nodes}
    for n in nodes[:-1]:
        for out in node_outputs[n.index]:
            if not out:
                continue
            if out in graph_outputs:
                raise _Fail(f"intermediate tensor {out!r} is a graph output", n)
            for i in consumers.get(out, ()):
                if i not in inside:
                    raise _Fail(f"intermediate tensor {out!r} is also read outside the pattern (by {v.ref(i).name!r})", n)
    last = nodes[-1]
    if len([o for o in g.node_outputs[last.index] if o]) != 1:
        raise _Fail("the last node of the pattern has more than one output", last)


def _reduce_axes(v: _View, node: NodeRef, x: str) -> tuple[int, ...]:
    """ReduceMean axes, normalized to negative form; requires keepdims=1."""
    if node.attr("keepdims", 1) != 1:
        raise _Fail(f"ReduceMean {node.name!r} has keepdims=0", node)
    axes: list[int] | None = node.list_attr("axes")  # None: absent, or another kind of value
    if axes is None:
        if node.has_attr("axes"):  # an int, say
            raise _Fail(f"ReduceMean {node.name!r} axes attribute is not a list of integers", node)
        if node.input(1):
            val = v.cv.value(node.input(1))
            if val is None:
                raise _Fail(f"ReduceMean {node.name!r} axes are not a constant", node)
            axes = [int(a) for a in val.reshape(-1)]
    rank = v.rank(x)
    if not axes:
        if node.attr("noop_with_empty_axes", 0):
            raise _Fail(f"ReduceMean {node.name!r} reduces nothing (noop_with_empty_axes)", node)
        if rank is None:
            raise _Fail(f"ReduceMean {node.name!r} reduces all axes and the input rank is unknown", node)
        axes = list(range(rank))
    if rank is not None:
        if min(axes) < -rank or max(axes) >= rank:
            raise _Fail(f"ReduceMean {node.name!r} axes {axes} are out of range for rank {rank}", node)
        # one axis, the common case, without the set
        neg = [axes[0] - rank if axes[0] >= 0 else axes[0]] if len(axes) == 1 else sorted({a - rank if a >= 0 else a for a in axes})
    else:
        if max(axes) >= 0:
            raise _Fail(f"ReduceMean {node.name!r} axes {axes} are positive and the input rank is unknown", node)
        neg = sorted(set(axes))
    # distinct negative axes, sorted: they are -n..-1 exactly when the first is -n
    if neg[0] != -len(neg):
        raise _Fail(f"ReduceMean axes {axes} are not the last axis (or trailing axes)", node)
    return tuple(neg)


def _square_of(v: _View, tensor: str) -> tuple[NodeRef, str]:
    """The node squaring some tensor d into `tensor` (Pow(d, 2) or Mul(d, d)), and d."""
    sq = v.producer(tensor, ("Pow", "Mul"))
    if sq is None:
        raise _Fail(f"the reduced tensor {tensor!r} is not produced by Pow or Mul (x²)")
    if sq.op_type == "Mul":
        a, b = sq.input(0), sq.input(1)
        if a != b:
            raise _Fail(f"Mul {sq.name!r} is not a square (x * x)", sq)
        return sq, a
    e = v.scalar(sq.input(1))
    if e is None:
        raise _Fail(f"Pow {sq.name!r} exponent is not a constant scalar", sq)
    if e != 2.0:
        raise _Fail(f"Pow {sq.name!r} exponent is {e:g}, not 2", sq)
    return sq, sq.input(0)


def _variance_chain(v: _View, sqrt: NodeRef) -> tuple[list[NodeRef], str, str, float, tuple[int, ...]]:
    """Sqrt ← Add(eps) ← ReduceMean ← square(d). Returns (nodes in order, d, eps name, eps, axes).
    The LayerNorm and RMSNorm matchers both start here at every Sqrt: the outcome (or the failure) is
    kept per model view, so the chain is walked once."""
    memo = v.model.__dict__.setdefault("_variance_chains", {})
    key = (id(v.g), sqrt.index)
    hit = memo.get(key)
    if hit is None:
        try:
            hit = memo[key] = _walk_variance_chain(v, sqrt)
        except _Fail as e:
            memo[key] = e
            raise
    if isinstance(hit, _Fail):
        raise _Fail(hit.reason, hit.node)
    chain, d, eps_name, eps, axes = hit
    return list(chain), d, eps_name, eps, axes


def _walk_variance_chain(v: _View, sqrt: NodeRef) -> tuple[list[NodeRef], str, str, float, tuple[int, ...]]:
    if sqrt.op_type != "Sqrt":
        raise _Fail(f"anchor {sqrt.name!r} is a {sqrt.op_type}, not a Sqrt", sqrt)
    add = v.producer(sqrt.input(0), "Add")
    if add is None:
        raise _Fail("Sqrt input is not produced by an Add (of epsilon)", sqrt)
    var, eps_name, eps = _split_const(v, add, "epsilon")
    if not (eps >= 0 and math.isfinite(eps)):
        raise _Fail(f"epsilon {eps:g} is negative or not finite", add)
    rm = v.producer(var, "ReduceMean")
    if rm is None:
        raise _Fail("epsilon is not added to a ReduceMean (the variance)", add)
    sq, d = _square_of(v, rm.input(0))
    axes = _reduce_axes(v, rm, d)
    return [sq, rm, add, sqrt], d, eps_name, eps, axes


def _normalize(v: _View, sqrt: NodeRef, numerators: Callable[[str], bool]) -> tuple[list[NodeRef], str, str]:
    """The node dividing a numerator by the Sqrt output: Div(n, s), Mul(n, Reciprocal(s)) or
    Mul(n, Div(1, s)). Returns (nodes after the Sqrt, numerator, form)."""
    s = sqrt.output(0)
    first = v.only_consumer(s, "Sqrt output")
    if first.op_type == "Div" and first.input(1) == s and first.input(0) != s:
        one = v.scalar(first.input(0))
        if one is not None and one == 1.0:
            r_nodes, form = [first], "Mul by Div(1, Sqrt)"
        else:
            if not numerators(first.input(0)):
                raise _Fail(f"Div {first.name!r} does not divide the expected tensor by the standard deviation", first)
            return [first], first.input(0), "Div by Sqrt"
    elif first.op_type == "Reciprocal":
        r_nodes, form = [first], "Mul by Reciprocal(Sqrt)"
    else:
        raise _Fail(f"the Sqrt output feeds {first.op_type} {first.name!r}, not Div or Reciprocal", first)
    r = first.output(0)
    mul = v.only_consumer(r, "reciprocal standard deviation")
    n = _other(mul, r) if mul.op_type == "Mul" else None
    if n is None or not numerators(n):
        raise _Fail(f"the reciprocal standard deviation is not multiplied with the expected tensor (by {mul.op_type} {mul.name!r})", mul)
    return [*r_nodes, mul], n, form


def _affine(v: _View, out: str, names: tuple[str, ...]) -> list[tuple[NodeRef, str]]:
    """Optional trailing Mul(·, const) then Add(·, const) (as many as `names` allows)."""
    found: list[tuple[NodeRef, str]] = []
    for op in names:
        users = v.g.consumers.get(out, ())
        if len(users) != 1 or out in v.g.outputs:
            break
        node = v.ref(users[0])
        if node.op_type != op or node.domain:
            break
        other = _other(node, out)
        if other is None or not v.is_const(other):
            break
        found.append((node, other))
        out = node.output(0)
    return found


def _check_param_shape(v: _View, tensor: str, n_axes: int, what: str, node: NodeRef) -> None:
    shape = v.const_shape(tensor)
    if shape is None:
        raise _Fail(f"the shape of {what} {tensor!r} is unknown", node)
    trimmed = list(shape)
    while trimmed and trimmed[0] == 1:
        trimmed.pop(0)
    if len(trimmed) > n_axes:
        raise _Fail(f"{what} {tensor!r} of shape {list(shape)} varies along a non-normalized axis", node)


def _check_float(v: _View, x: str, node: NodeRef) -> None:
    et = v.g.elem_type_of(x)
    if et and et not in FLOAT_TYPES:
        raise _Fail(f"input {x!r} is not a floating-point tensor", node)


def _run(build: Callable[[_View, NodeRef], Match], model: Model, graph: Graph, node: NodeRef | int) -> MatchResult:
    v = _View(model, graph)
    return _attempt(build, v, v.ref(node) if isinstance(node, int) else node)


def _attempt(build: Callable[[_View, NodeRef], Match], v: _View, ref: NodeRef) -> MatchResult:
    try:
        return build(v, ref)
    except _Fail as e:
        return MatchFailure(e.reason, e.node or ref)


# ----------------------------------------------------------------------------
# LayerNorm
# ----------------------------------------------------------------------------
def match_layer_norm(model: Model, graph: Graph, node: NodeRef | int) -> MatchResult:
    """Decomposed LayerNorm anchored at its Sqrt:
    ReduceMean(x) → Sub → Pow(2)|Mul(d,d) → ReduceMean → Add(eps) → Sqrt → Div | Reciprocal→Mul | Div(1,·)→Mul
    → [Mul(gamma) → [Add(beta)]]. A second identical Sub for the numerator is accepted."""
    return _run(_layer_norm, model, graph, node)


def _layer_norm(v: _View, sqrt: NodeRef) -> Match:
    chain, d, eps_name, eps, axes = _variance_chain(v, sqrt)
    sub = v.producer(d, "Sub")
    if sub is None:
        raise _Fail("the squared tensor is not x - mean(x) (no Sub): not a LayerNorm (an RMSNorm?)", chain[0])
    x, mean = sub.input(0), sub.input(1)
    rm1 = v.producer(mean, "ReduceMean")
    if rm1 is None or rm1.input(0) != x:
        raise _Fail(f"Sub {sub.name!r} does not subtract ReduceMean of its first input", sub)
    if _reduce_axes(v, rm1, x) != axes:
        raise _Fail("the two ReduceMean nodes reduce different axes", rm1)
    subs = [sub]

    def centred(t: str) -> bool:
        if t == d:
            return True
        other = v.producer(t, "Sub")
        if other is not None and other.input(0) == x and other.input(1) == mean:
            subs.append(other)
            return True
        return False

    tail, numerator, form = _normalize(v, sqrt, centred)
    _check_float(v, x, sqrt)
    out = tail[-1].output(0)
    aff = _affine(v, out, ("Mul", "Add"))
    gamma = beta = None
    for n, c in aff:
        if n.op_type == "Mul":
            gamma = c
            _check_param_shape(v, c, len(axes), "gamma", n)
        else:
            beta = c
            _check_param_shape(v, c, len(axes), "beta", n)
    nodes = [rm1, *subs, *chain, *tail, *(n for n, _ in aff)]
    _check_closed(v, nodes)
    if len(subs) > 1:
        form += ", x - mean computed twice"
    return Match(
        "layer-norm", tuple(nodes), x, nodes[-1].output(0), form, axis=axes[0], epsilon=eps,
        epsilon_name=eps_name, gamma=gamma, beta=beta,
        constants=tuple(c for c in (eps_name, gamma, beta) if c),
    )


# ----------------------------------------------------------------------------
# RMSNorm
# ----------------------------------------------------------------------------
def match_rms_norm(model: Model, graph: Graph, node: NodeRef | int) -> MatchResult:
    """Decomposed RMSNorm anchored at its Sqrt:
    Pow(x, 2)|Mul(x,x) → ReduceMean → Add(eps) → Sqrt → Div(x, ·) | Reciprocal→Mul(x, ·) | Div(1, ·)→Mul(x, ·)
    → [Cast to the same type]* → [Mul(gamma)]."""
    return _run(_rms_norm, model, graph, node)


def _rms_norm(v: _View, sqrt: NodeRef) -> Match:
    chain, x, eps_name, eps, axes = _variance_chain(v, sqrt)
    sub = v.producer(x, "Sub")
    if sub is not None:
        mean = v.producer(sub.input(1), "ReduceMean")
        if mean is not None and mean.input(0) == sub.input(0):
            raise _Fail("the squared tensor is x - mean(x): a LayerNorm, not an RMSNorm", sub)
    tail, _, form = _normalize(v, sqrt, lambda t: t == x)
    _check_float(v, x, sqrt)
    out = tail[-1].output(0)
    # HF's LlamaRMSNorm casts back to the input dtype before the scale: same-type Casts are no-ops
    casts: list[NodeRef] = []
    while True:
        users = v.g.consumers.get(out, ())
        if len(users) != 1 or out in v.g.outputs:
            break
        c = v.ref(users[0])
        if c.op_type != "Cast" or c.domain or not v.g.elem_type_of(out) or c.attr("to") != v.g.elem_type_of(out):
            break
        casts.append(c)
        out = c.output(0)
    aff = _affine(v, out, ("Mul",))
    gamma = None
    if aff:
        gamma = aff[0][1]
        _check_param_shape(v, gamma, len(axes), "gamma", aff[0][0])
    else:
        casts = []  # without a scale, the Casts stay outside the pattern
    nodes = [*chain, *tail, *casts, *(n for n, _ in aff)]
    _check_closed(v, nodes)
    return Match(
        "rms-norm", tuple(nodes), x, nodes[-1].output(0), form, axis=axes[0], epsilon=eps,
        epsilon_name=eps_name, gamma=gamma, constants=tuple(c for c in (eps_name, gamma) if c),
    )


# ----------------------------------------------------------------------------
# GELU
# ----------------------------------------------------------------------------
def match_gelu(model: Model, graph: Graph, node: NodeRef | int) -> MatchResult:
    """Decomposed GELU anchored at its Erf or Tanh.

    Erf form: x / √2 (or x · 1/√2) → Erf → Add(1) → multiplied by x and 0.5 in any order
    (x·(1+erf)·0.5, 0.5·(1+erf)·x, (0.5·x)·(1+erf)).
    Tanh form: x + 0.044715·x³ (Pow(x, 3) or x·x·x) → Mul(√(2/π)) → Tanh → Add(1) → multiplied by x and
    0.5 as above. Gelu(approximate="tanh") computes exactly this formula."""
    return _run(_gelu, model, graph, node)


def _gelu(v: _View, anchor: NodeRef) -> Match:
    if anchor.op_type == "Erf":
        head, x, consts = _erf_head(v, anchor)
        approx, form = "none", "Erf"
    elif anchor.op_type == "Tanh":
        head, x, consts = _tanh_head(v, anchor)
        approx, form = "tanh", "Tanh approximation"
    else:
        raise _Fail(f"anchor {anchor.name!r} is a {anchor.op_type}, not Erf or Tanh", anchor)
    _check_float(v, x, anchor)
    et = v.g.elem_type_of(x)
    add = v.only_consumer(anchor.output(0), f"{anchor.op_type} output")
    if add.op_type != "Add" or add.domain:
        raise _Fail(f"the {anchor.op_type} output feeds {add.op_type} {add.name!r}, not Add(1)", add)
    one_name = _other(add, anchor.output(0))
    if one_name is None or v.scalar(one_name) != 1.0:
        raise _Fail(f"Add {add.name!r} does not add the constant 1", add)
    p = add.output(0)
    m1 = v.only_consumer(p, "(1 + ...) factor")
    o = _other(m1, p) if m1.op_type == "Mul" else None
    if o is None:
        raise _Fail(f"the (1 + {anchor.op_type.lower()}) factor is not multiplied (feeds {m1.op_type} {m1.name!r})", m1)
    half_value = v.scalar(o)
    tail: list[NodeRef]
    pre: list[NodeRef] = []
    if o == x:
        m2 = v.only_consumer(m1.output(0), "x·(1 + ...)")
        h = _other(m2, m1.output(0)) if m2.op_type == "Mul" else None
        if h is None or not _close(v.scalar(h), 0.5, et):
            raise _Fail("x·(1 + ...) is not multiplied by 0.5", m2)
        tail, half = [m1, m2], h
        form += ", x·(1+·)·0.5"
    elif half_value is not None:
        if not _close(half_value, 0.5, et):
            raise _Fail(f"the (1 + ...) factor is multiplied by {half_value:g}, not 0.5", m1)
        m2 = v.only_consumer(m1.output(0), "0.5·(1 + ...)")
        if m2.op_type != "Mul" or _other(m2, m1.output(0)) != x:
            raise _Fail("0.5·(1 + ...) is not multiplied by the input x", m2)
        tail, half = [m1, m2], o
        form += ", 0.5·(1+·)·x"
    else:
        hm = v.producer(o, "Mul")
        h = _other(hm, x) if hm is not None else None
        if h is None or not _close(v.scalar(h), 0.5, et):
            raise _Fail("the (1 + ...) factor is not multiplied by x and 0.5", m1)
        pre, tail, half = [hm], [m1], h  # type: ignore[list-item]
        form += ", (0.5·x)·(1+·)"
    nodes = [*pre, *head, anchor, add, *tail]
    nodes.sort(key=lambda n: n.index)
    _check_closed_any_order(v, nodes, tail[-1])
    return Match("gelu", tuple(nodes), x, tail[-1].output(0), form, approximate=approx,
                 constants=(*consts, one_name, half))


def _check_closed_any_order(v: _View, nodes: list[NodeRef], last: NodeRef) -> None:
    _check_closed(v, [n for n in nodes if n.index != last.index] + [last])


def _erf_head(v: _View, erf: NodeRef) -> tuple[list[NodeRef], str, tuple[str, ...]]:
    scale = v.producer(erf.input(0), ("Div", "Mul"))
    if scale is None:
        raise _Fail("Erf input is not x/√2 (no Div or Mul)", erf)
    if scale.op_type == "Div":
        x, c = scale.input(0), scale.input(1)
        expected, shown = SQRT2, "√2"
        val = v.scalar(c)
    else:
        x, c, val = _split_const(v, scale, "the Erf input scale")
        expected, shown = 1 / SQRT2, "1/√2"
    if not _close(val, expected, v.g.elem_type_of(x)):
        raise _Fail(f"Erf input is x {scale.op_type} {val if val is None else f'{val:g}'}, not {shown}", scale)
    return [scale], x, (c,)


def _tanh_head(v: _View, tanh: NodeRef) -> tuple[list[NodeRef], str, tuple[str, ...]]:
    ms = v.producer(tanh.input(0), "Mul")
    if ms is None:
        raise _Fail("Tanh input is not a Mul by √(2/π)", tanh)
    inner, c1, val = _split_const(v, ms, "the Tanh input scale")
    et = v.g.elem_type_of(inner)
    if not _close(val, SQRT_2_OVER_PI, et):
        raise _Fail(f"Tanh input is scaled by {val:g}, not √(2/π) ≈ 0.7978846", ms)
    add = v.producer(inner, "Add")
    if add is None:
        raise _Fail("the √(2/π) factor does not multiply an Add (x + 0.044715·x³)", ms)
    for x, cubic in ((add.input(0), add.input(1)), (add.input(1), add.input(0))):
        cm = v.producer(cubic, "Mul")
        if cm is None:
            continue
        try:
            cube, c2, k = _split_const(v, cm, "the cubic coefficient")
        except _Fail:
            continue
        if not _close(k, GELU_TANH_COEFF, et):
            raise _Fail(f"the cubic term is scaled by {k:g}, not 0.044715", cm)
        cube_nodes = _cube_of(v, cube, x)
        if cube_nodes is None:
            raise _Fail("the 0.044715 term is not x³ of the same x (Pow(x, 3) or x·x·x)", cm)
        return [*cube_nodes, cm, add, ms], x, (c1, c2)
    raise _Fail("Add does not add x and 0.044715·x³", add)


def _cube_of(v: _View, tensor: str, x: str) -> list[NodeRef] | None:
    node = v.producer(tensor, ("Pow", "Mul"))
    if node is None:
        return None
    if node.op_type == "Pow":
        return [node] if node.input(0) == x and v.scalar(node.input(1)) == 3.0 else None
    a, b = node.input(0), node.input(1)
    for lin, sq_t in ((a, b), (b, a)):
        sq = v.producer(sq_t, "Mul")
        if lin == x and sq is not None and sq.input(0) == x and sq.input(1) == x:
            return [sq, node]
    return None


# ----------------------------------------------------------------------------
# Scanning
# ----------------------------------------------------------------------------
ANCHORS: dict[Callable, tuple[str, ...]] = {
    match_layer_norm: ("Sqrt",),
    match_rms_norm: ("Sqrt",),
    match_gelu: ("Erf", "Tanh"),
}


# The pattern builder behind each public matcher: iter_matches runs it on one view of the graph.
_BUILDERS: dict[Callable, Callable[[_View, NodeRef], Match]] = {
    match_layer_norm: _layer_norm,
    match_rms_norm: _rms_norm,
    match_gelu: _gelu,
}


def iter_matches(model: Model, graph: Graph, matcher: Callable[..., MatchResult]) -> Iterator[tuple[NodeRef, MatchResult]]:
    """(anchor, result) for every anchor node of `matcher` in `graph`, in graph order: what
    `matcher(model, graph, anchor)` returns for each."""
    positions = graph.op_positions
    anchors = sorted(i for op in ANCHORS[matcher] for i in positions.get(op, ()))
    build, v = _BUILDERS[matcher], _View(model, graph)
    for i in anchors:
        ref = graph.ref(i)
        yield ref, _attempt(build, v, ref)


__all__ = [
    "ANCHORS", "Match", "MatchFailure", "MatchResult", "fail", "iter_matches",
    "match_gelu", "match_layer_norm", "match_rms_norm",
]
