"""Ranks from op semantics where ONNX shape inference gave up.

TensorRT knows the rank of every tensor at build time; ONNX shape inference sometimes does not (an
Einsum it cannot type, a Reshape whose shape is built from `Slice(Shape(x))` of such a tensor).
`rank_of` derives the rank from the producing op and the ranks of its inputs; `shape_length` the
length of a 1-D tensor used as a shape. Both are memoized on the Model (they depend on nothing else:
not on the release), shared by the SHP rules and the control-flow predicates (If-branch ranks).
"""

from __future__ import annotations

import re

import numpy as np

from ..model import Graph, Model

# Output 0 has the rank of input 0.
_SAME_RANK = frozenset("""
    Abs Acos Acosh Asin Asinh Atan Atanh BatchNormalization BitwiseNot Cast CastLike Ceil Celu Clip Cos
    Cosh CumSum DepthToSpace DequantizeLinear Dropout Elu Erf Exp Floor Gelu GroupNormalization
    HardSigmoid HardSwish Hardmax Identity InstanceNormalization IsInf IsNaN LRN LayerNormalization
    LeakyRelu Log LogSoftmax LpNormalization MeanVarianceNormalization Mish Neg Not QuantizeLinear
    Reciprocal Relu ReverseSequence Round RMSNormalization Selu Shrink Sigmoid Sign Sin Sinh Softmax
    Softplus Softsign SpaceToDepth Sqrt Tan Tanh ThresholdedRelu Transpose Trilu
    Conv ConvTranspose ConvInteger AveragePool MaxPool LpPool MaxUnpool GlobalAveragePool GlobalMaxPool
    GlobalLpPool RoiAlign Pad Slice Resize Upsample TopK Concat Split ScatterElements ScatterND Scatter
    GatherElements DeformConv GridSample CenterCropPad AffineGrid Col2Im ImageDecoder
""".split())
# Output 0 has the broadcast rank of all inputs.
_BROADCAST = frozenset("""
    Add Sub Mul Div Pow Mod Max Min Sum Mean Equal Less LessOrEqual Greater GreaterOrEqual And Or Xor
    Where PRelu BitShift BitwiseAnd BitwiseOr BitwiseXor
""".split())
_REDUCE = frozenset("""
    ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp
    ReduceSumSquare
""".split())
_EINSUM_TERM = re.compile(r"[A-Za-z]|\.\.\.")


def _memo(model: Model, kind: str, g: Graph) -> dict:
    memos = model.__dict__.setdefault("_rank_memos", {})
    return memos.setdefault((kind, id(g)), {})


def rank_of(model: Model, g: Graph, tensor: str) -> int | None:
    """Rank of `tensor` in `g`: from shape inference, a constant's value, or the producing op."""
    return _rank(model, g, tensor, _memo(model, "ranks", g), 0)


def shape_length(model: Model, g: Graph, tensor: str) -> int | None:
    """Number of elements of a 1-D (or 0-D: 1) tensor used as a shape, or None when unknown."""
    return _length(model, g, tensor, _memo(model, "lengths", g), 0)


def _rank(model: Model, g: Graph, t: str, memo: dict, depth: int) -> int | None:
    if not t:
        return None
    if t in memo:
        return memo[t]
    memo[t] = None  # cycles (malformed graphs) end here
    memo[t] = r = _compute_rank(model, g, t, memo, depth)
    return r


def _compute_rank(model: Model, g: Graph, t: str, memo: dict, depth: int) -> int | None:
    typ = g.type_of(t)
    if typ is not None and typ.shape is not None:
        return len(typ.shape)
    hit = g.producers.get(t)
    if hit is None:
        if g.outer is not None and t not in g.inputs and t not in g.initializers:
            return rank_of(model, g.outer, t)
        val = model.constants(g).value(t) if t in g.initializers else None
        return None if val is None else int(val.ndim)
    val = model.constants(g).value(t)
    if val is not None:
        return int(val.ndim)
    if depth > 200:
        return None
    i, k = hit
    if not g.standard[i]:
        return None
    ref = g.ref(i)
    op = ref.op_type
    ins = g.node_inputs[i]

    def rank(x: str) -> int | None:
        return _rank(model, g, x, memo, depth + 1)

    def length(x: str) -> int | None:
        return _length(model, g, x, _memo(model, "lengths", g), depth + 1)

    if op in ("Shape", "Range"):
        return 1
    if op == "NonZero":
        return 2
    if op == "Size":
        return 0
    if op in _SAME_RANK and k == 0:
        return rank(ins[0]) if ins else None
    if op in _BROADCAST:
        ranks = [rank(x) for x in ins if x]
        return max(ranks) if ranks and all(r is not None for r in ranks) else None  # type: ignore[type-var]
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        a, b = (rank(ins[0]), rank(ins[3])) if op == "QLinearMatMul" else (rank(ins[0]), rank(ins[1]))
        if a is None or b is None:
            return None
        if a == 1 and b == 1:
            return 0
        if a == 1 or b == 1:
            return max(a, b) - 1
        return max(a, b)
    if op == "Gemm" or op == "Flatten":
        return 2
    if op in ("Reshape", "ConstantOfShape"):
        return length(ins[1] if op == "Reshape" else ins[0]) if len(ins) > (op == "Reshape") else None
    if op == "Expand" and len(ins) > 1:
        r, n = rank(ins[0]), length(ins[1])
        return max(r, n) if r is not None and n is not None else None
    if op == "Tile":
        return rank(ins[0]) if ins else None
    if op in ("Unsqueeze", "Squeeze"):
        r = rank(ins[0]) if ins else None
        axes = _axes(model, g, ref, ins)
        if r is None:
            return None
        if op == "Unsqueeze":
            return r + len(axes) if axes is not None else None
        if axes is None:
            # no axes: every dim of size 1 goes; known only from a full static shape
            return None
        return r - len(axes)
    if op in _REDUCE or op in ("ArgMax", "ArgMin"):
        r = rank(ins[0]) if ins else None
        if r is None:
            return None
        if ref.attr("keepdims", 1):
            return r
        if op in ("ArgMax", "ArgMin"):
            return r - 1
        axes = _axes(model, g, ref, ins)
        if axes is None:
            return None
        if not axes:
            return r if ref.attr("noop_with_empty_axes", 0) else 0
        return r - len(set(int(a) % r for a in axes)) if r else 0
    if op == "Gather" and len(ins) > 1:
        r, q = rank(ins[0]), rank(ins[1])
        return r + q - 1 if r is not None and q is not None else None
    if op == "GatherND" and len(ins) > 1:
        r, q = rank(ins[0]), rank(ins[1])
        idx = g.type_of(ins[1])
        last = idx.shape[-1] if idx is not None and idx.shape else None
        if r is None or q is None or not isinstance(last, int):
            return None
        return q + r - last - 1 - ref.attr("batch_dims", 0)
    if op == "OneHot" and ins:
        r = rank(ins[0])
        return r + 1 if r is not None else None
    if op == "Einsum":
        return _einsum_rank(ref.attr("equation"), [rank(x) for x in ins])
    if op in ("LSTM", "GRU", "RNN"):
        return 4 if k == 0 else 3
    if op == "If":
        return _if_rank(model, ref, k)
    return None


def _axes(model: Model, g: Graph, ref, ins) -> list[int] | None:
    """The `axes` of Squeeze/Unsqueeze/Reduce*: attribute (older opsets) or constant input 1."""
    if ref.has_attr("axes"):
        return ref.list_attr("axes")  # another kind of value (an int) is unknown here
    if len(ins) > 1 and ins[1]:
        val = model.constants(g).value(ins[1])
        return None if val is None else [int(v) for v in np.asarray(val).reshape(-1)]
    return []


def _einsum_rank(equation, ranks: list[int | None]) -> int | None:
    if not isinstance(equation, (str, bytes)):
        return None
    eq = (equation.decode() if isinstance(equation, bytes) else equation).replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        return None
    ellipsis = 0
    for term, r in zip(terms, ranks):
        parts = _EINSUM_TERM.findall(term)
        if "..." in parts:
            if r is None:
                return None
            ellipsis = max(ellipsis, r - (len(parts) - 1))
    if arrow:
        parts = _EINSUM_TERM.findall(rhs)
        return len(parts) - ("..." in parts) + (ellipsis if "..." in parts else 0)
    # implicit output: the labels that appear once, plus the ellipsis dims
    letters = [p for term in terms for p in _EINSUM_TERM.findall(term) if p != "..."]
    return sum(1 for c in set(letters) if letters.count(c) == 1) + ellipsis


def _if_rank(model: Model, ref, k: int) -> int | None:
    """An If output's rank when both branches agree on it (TensorRT requires that: TRT124)."""
    ranks = set()
    for g in node_subgraphs(model, ref).values():
        out = g.outputs[k] if k < len(g.outputs) else ""
        ranks.add(rank_of(model, g, out) if out else None)
    return ranks.pop() if len(ranks) == 1 else None


def node_subgraphs(model: Model, ref) -> dict[str, Graph]:
    """The subgraphs of a control-flow node by attribute name (`then_branch`, `else_branch`, `body`)."""
    index = model.__dict__.get("_subgraph_index")
    if index is None:
        index = model.__dict__["_subgraph_index"] = _subgraph_index(model)
    return index.get((id(ref.graph), ref.name), {})


def _subgraph_index(model: Model) -> dict[tuple[int, str], dict[str, Graph]]:
    out: dict[tuple[int, str], dict[str, Graph]] = {}
    for g in model.graphs:
        if g.outer is not None and g.path:
            node, _, attr = g.path[-1].rpartition("/")
            out.setdefault((id(g.outer), node), {})[attr] = g
    return out


def _length(model: Model, g: Graph, t: str, memo: dict, depth: int) -> int | None:
    if not t:
        return None
    if t in memo:
        return memo[t]
    memo[t] = None
    memo[t] = n = _compute_length(model, g, t, memo, depth)
    return n


_LENGTH_ELEMENTWISE = frozenset("Cast CastLike Identity Neg Abs Floor Ceil Add Sub Mul Div Max Min Mod Where Clip".split())


def _compute_length(model: Model, g: Graph, t: str, memo: dict, depth: int) -> int | None:
    typ = g.type_of(t)
    if typ is not None and typ.shape is not None:
        if len(typ.shape) == 0:
            return 1
        if len(typ.shape) == 1 and isinstance(typ.shape[0], int):
            return typ.shape[0]
    val = model.constants(g).value(t)
    if val is not None:
        return int(val.size) if val.ndim <= 1 else None
    hit = g.producers.get(t)
    if hit is None or depth > 200:
        return None
    i = hit[0]
    if not g.standard[i]:
        return None
    ins = g.node_inputs[i]
    ref = g.ref(i)
    op = ref.op_type

    def rec(x: str) -> int | None:
        return _length(model, g, x, memo, depth + 1)

    if op == "Shape" and ins:
        r = rank_of(model, g, ins[0])
        if r is None:
            return None
        return len(range(r)[ref.attr("start", 0):ref.attr("end", None)])
    if op == "Concat":
        lens = [rec(x) for x in ins if x]
        return sum(lens) if lens and all(n is not None for n in lens) else None  # type: ignore[misc]
    if op == "Unsqueeze" and ins:
        return 1 if rank_of(model, g, ins[0]) == 0 else None
    if op == "Gather" and len(ins) > 1:
        q = rank_of(model, g, ins[1])
        if q == 0:
            return 1
        if q == 1:
            return rec(ins[1])
        return None
    if op == "Slice" and ins:
        return _slice_length(model, g, ins, rec(ins[0]))
    if op in _LENGTH_ELEMENTWISE:
        lens = [rec(x) for x in (ins[1:] if op == "Where" else ins) if x]
        if op in ("Cast", "CastLike", "Identity", "Neg", "Abs", "Floor", "Ceil", "Clip"):
            lens = lens[:1]
        return max(lens) if lens and all(n is not None for n in lens) else None  # type: ignore[type-var]
    if op == "Range":
        return None  # data-dependent length: see length_cause
    return None


def _slice_length(model: Model, g: Graph, ins: list[str], n: int | None) -> int | None:
    """Length of Slice(v) of a 1-D `v` of length `n`, when starts/ends/axes/steps are constants."""
    if n is None or len(ins) < 3:
        return None
    consts = model.constants(g)
    vals = []
    for k in (1, 2, 3, 4):
        x = ins[k] if k < len(ins) else ""
        if not x:
            vals.append(None)
            continue
        v = consts.value(x)
        if v is None:
            return None
        vals.append([int(e) for e in np.asarray(v).reshape(-1)])
    starts, ends, axes, steps = vals
    if starts is None or ends is None or len(starts) != 1 or len(ends) != 1:
        return None
    if axes is not None and axes not in ([0], [-1]):
        return None
    step = steps[0] if steps else 1
    if step == 0:
        return None
    return len(range(n)[slice(starts[0], ends[0], step)])


# -- why a length is unknown ------------------------------------------------------------------------

_DATA_DEPENDENT = frozenset({"NonZero", "Unique", "Compress", "NonMaxSuppression", "Range", "StringSplit"})


def length_cause(model: Model, g: Graph, tensor: str) -> str | None:
    """What makes the length of the 1-D `tensor` unknowable at build time, if anything: a graph input
    of dynamic length, or a data-dependent op upstream (NonZero, Range with runtime bounds, ...).
    Shape() stops the search: its length is a rank, which TensorRT always knows. None: nothing found
    (then only onnxdoctor's analysis is missing, not information TensorRT has)."""
    seen: set[str] = set()
    stack = [(g, tensor)]
    while stack:
        graph, t = stack.pop()
        if not t or (id(graph), t) in seen or len(seen) > 2000:
            continue
        seen.add((id(graph), t))
        if model.constants(graph).is_constant(t):
            continue
        hit = graph.producers.get(t)
        if hit is None:
            if t in graph.inputs and t not in graph.initializers:
                # a shape read from an input: a 1-D input of dynamic length (a data input of higher
                # rank reached through other ops says nothing about the length)
                typ = graph.type_of(t)
                if typ is None or typ.shape is None or (len(typ.shape) == 1 and not isinstance(typ.shape[0], int)):
                    where = "graph input" if graph.outer is None else "subgraph input"
                    return f"{where} {t!r} of dynamic length"
            elif graph.outer is not None and t not in graph.initializers:
                stack.append((graph.outer, t))
            continue
        i = hit[0]
        op = graph.op_types[i]
        if op in ("Shape", "Size"):
            continue
        if op in _DATA_DEPENDENT:
            return f"{op} {graph.ref(i).name!r}, whose output length depends on data"
        # the lengths of these outputs follow from their inputs' ranks or values
        stack.extend((graph, x) for x in graph.node_inputs[i] if x)
    return None
