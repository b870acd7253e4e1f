"""Running models in ONNX Runtime and comparing their outputs: the proof behind every rewrite.

Inputs come from `--data inputs.npz` or are generated from the graph inputs' metadata with a
fixed seed:

- floating point: standard normal values;
- integer inputs named like ids/indices/positions/tokens: values in [0, 16) (small enough for any
  embedding table or index range in practice); masks (`*mask*`): ones; other integers: [0, 4);
- bool: random;
- dynamic dimensions: the value given with `--shape` (OPT), else 1 for the first (batch-like)
  dimension and 8 for the others.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from .errors import UsageError

DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3
DEFAULT_SEED = 0
_INDEX_LIKE = re.compile(r"(ids?$|_ids?|index|indices|position|token|label|offset)", re.I)


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

    def worst(self) -> Comparison | None:
        fails = [c for c in self.comparisons if not c.passed]
        pool = fails or self.comparisons
        return max(pool, key=lambda c: (c.max_abs_diff if math.isfinite(c.max_abs_diff) else float("inf")), default=None)

    def summary(self) -> str:
        if self.error:
            return f"could not run: {self.error}"
        w = self.worst()
        if w is None:
            return "no outputs compared"
        if w.shape_mismatch:
            return f"output {w.name!r}: {w.shape_mismatch}"
        return f"max |diff| {w.max_abs_diff:.3g} (rel {w.max_rel_diff:.3g}) on {w.name!r} over {len(self.comparisons)} output(s)"


def _dims(vi: onnx.ValueInfoProto, shapes: dict[str, tuple[int, ...]]) -> list[int]:
    if vi.name in shapes:
        return list(shapes[vi.name])
    out = []
    for i, d in enumerate(vi.type.tensor_type.shape.dim):
        out.append(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (1 if i == 0 else 8))
    return out


def generate_inputs(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]] | None = None, seed: int = DEFAULT_SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = shapes or {}
    inits = {t.name for t in model.graph.initializer}
    feeds: dict[str, np.ndarray] = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        if not vi.type.HasField("tensor_type"):
            raise UsageError(f"input {vi.name!r} is not a tensor; pass --data with a value for it")
        dtype = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        dims = _dims(vi, shapes)
        if np.issubdtype(dtype, np.floating):
            arr = rng.standard_normal(dims).astype(dtype)
        elif dtype == np.bool_:
            arr = rng.integers(0, 2, dims).astype(bool)
        elif np.issubdtype(dtype, np.integer):
            if "mask" in vi.name.lower():
                arr = np.ones(dims, dtype=dtype)
            else:
                hi = 16 if _INDEX_LIKE.search(vi.name) else 4
                arr = rng.integers(0, hi, dims).astype(dtype)
        else:
            raise UsageError(f"cannot generate values of type {dtype} for input {vi.name!r}; pass --data")
        feeds[vi.name] = arr
    return feeds


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


def session(model: onnx.ModelProto, *, optimize: bool = False, workdir: Path | None = None):
    """An ONNX Runtime CPU session. Graph optimizations are off by default so that what runs is the
    graph as written (the proof must not depend on ORT's own rewrites)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    try:  # one serialization; protobuf refuses messages over 2 GB, which then go through a file
        data = model.SerializeToString()
    except ValueError:
        data = None
    if data is not None:
        return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    import tempfile

    d = Path(tempfile.mkdtemp(dir=workdir))
    path = d / "model.onnx"
    onnx.save_model(model, path, save_as_external_data=True, location="model.onnx.data")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    sess = session(model)
    names = outputs or [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def compare_arrays(name: str, ref: np.ndarray, got: np.ndarray, atol: float, rtol: float) -> Comparison:
    if ref.shape != got.shape:
        return Comparison(name, float("inf"), float("inf"), False, f"shape {got.shape} != reference {ref.shape}")
    if ref.dtype.kind in "biu" and got.dtype.kind in "biu" or ref.dtype == np.bool_:
        diff = np.abs(ref.astype(np.int64) - got.astype(np.int64)) if ref.size else np.zeros(0)
        mad = float(diff.max()) if diff.size else 0.0
        return Comparison(name, mad, 0.0 if mad == 0 else float("inf"), mad == 0)
    r = ref.astype(np.float64)
    g = got.astype(np.float64)
    both_nan = np.isnan(r) & np.isnan(g)
    same_inf = np.isinf(r) & np.isinf(g) & (np.sign(r) == np.sign(g))
    ok_special = both_nan | same_inf
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(ok_special, 0.0, np.abs(r - g))
        diff = np.where(np.isnan(diff), np.inf, diff)
        rel = np.where(ok_special, 0.0, diff / np.maximum(np.abs(r), 1e-12))
    passed = bool(np.all(diff <= atol + rtol * np.abs(np.where(ok_special, 0.0, r))))
    mad = float(diff.max()) if diff.size else 0.0
    mrd = float(rel.max()) if rel.size else 0.0
    return Comparison(name, mad, mrd, passed)


def compare(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], atol: float, rtol: float) -> ProofResult:
    comps = []
    for name, ref in reference.items():
        if name not in candidate:
            comps.append(Comparison(name, float("inf"), float("inf"), False, "missing in candidate"))
            continue
        comps.append(compare_arrays(name, ref, candidate[name], atol, rtol))
    return ProofResult(all(c.passed for c in comps), comps)


def prove(reference_outputs: dict[str, np.ndarray], candidate: onnx.ModelProto, feeds: dict[str, np.ndarray],
          atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL) -> ProofResult:
    """Run `candidate` on `feeds` and compare every reference output by name."""
    try:
        got = run(candidate, feeds, list(reference_outputs))
    except Exception as e:  # noqa: BLE001 - an unrunnable candidate fails its proof, with ORT's reason
        return ProofResult(False, [], " ".join(str(e).split())[:300])
    return compare(reference_outputs, got, atol, rtol)
