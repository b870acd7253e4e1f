"""verify: compare a candidate against ONNX Runtime on the reference model, layer by layer.

Candidates:
- `--against OTHER.onnx`: ONNX Runtime on another model (original vs fixed, FP32 vs FP16, two exports);
- `--backend trt`: a TensorRT engine built from MODEL through Polygraphy (needs TensorRT and a GPU);
- `--fp16` without either: FP16 emulation on CPU — the FP32 model runs in ONNX Runtime with every
  tensor observed, and tensors whose values leave the FP16 range are flagged.

Layerwise comparison runs both models segment by segment (layerwise.py: each node built and run once,
cost linear in the graph, memory one segment's activations plus the values later segments read)
and compares tensors present in both runs by name, in the topological order of the reference graph;
`layerwise.Budget` bounds the time and the activation memory.
`first_divergence` is the first failing tensor whose producer's inputs all passed: the layer to
look at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from . import layerwise
from . import layerwise as layerwise_mod
from . import prove as proving
from .dtype_limits import FP16_OVERFLOW, FP16_TINY
from .errors import OnnxDoctorError, UsageError
from .terminal import printable_lines

@dataclass
class LayerComparison:
    tensor: str
    node: str | None
    op_type: str | None
    max_abs_diff: float
    max_rel_diff: float
    passed: bool
    note: str | None = None

    def to_dict(self) -> dict:
        d = {"tensor": self.tensor, "node": self.node, "op_type": self.op_type, "max_abs_diff": _num(self.max_abs_diff),
             "max_rel_diff": _num(self.max_rel_diff), "pass": self.passed}
        if self.note:
            d["note"] = self.note
        return d


def _num(x: float):
    return x if np.isfinite(x) else ("inf" if x > 0 else "-inf") if not np.isnan(x) else "nan"


@dataclass
class VerifyResult:
    reference: str
    candidate: str
    mode: str  # layerwise | outputs | fp16-emulation
    comparisons: list[LayerComparison] = field(default_factory=list)
    first_divergence: LayerComparison | None = None
    tolerance: tuple[float, float] = (proving.DEFAULT_ATOL, proving.DEFAULT_RTOL)
    inputs: object | None = None  # the InputPlan the comparison ran on

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)

    def to_dict(self) -> dict:
        fd = self.first_divergence.to_dict() if self.first_divergence else None
        if fd:
            fd.pop("pass", None)
        return {"pass": self.passed, "reference": self.reference, "candidate": self.candidate, "mode": self.mode,
                "tolerance": {"atol": self.tolerance[0], "rtol": self.tolerance[1]},
                "compared": len(self.comparisons), "failed": sum(1 for c in self.comparisons if not c.passed),
                "comparisons": [c.to_dict() for c in self.comparisons], "first_divergence": fd,
                "inputs": self.inputs.to_dict() if self.inputs is not None else None}


def _topo_tensors(model: onnx.ModelProto) -> list[tuple[str, onnx.NodeProto, int]]:
    """(tensor, producer, node index) for every node output of the main graph, in topological order."""
    nodes = model.graph.node
    out = []
    for k, i in enumerate(layerwise.toposort(model)):
        n = nodes[i]
        for o in n.output:
            if o:
                out.append((o, n, k))
    return out


def _float_tensor_names(model: onnx.ModelProto, candidates: list[str]) -> list[str]:
    """Keep tensors that ORT can return (skip sequence/optional values) — types from shape inference."""
    kinds = layerwise.value_kinds(model)
    return [n for n in candidates if kinds.get(n, "tensor_type") in ("tensor_type", "")]


def compare_layerwise(reference: onnx.ModelProto, candidate: onnx.ModelProto, feeds, candidate_feeds, atol: float,
                      rtol: float, *, progress=None, budget: layerwise.Budget | None = None) -> list[LayerComparison]:
    """Compare every tensor the reference's nodes produce that the candidate's nodes produce too.

    Both models run segment by segment (layerwise.run: each node built and run once); the candidate
    in an order that follows the reference's, so that the values of one name meet soon and are
    dropped once compared. Comparisons come back in the reference's topological order."""
    budget = budget or layerwise.Budget()
    ref_plan = layerwise.Plan(reference)
    rank: dict[str, int] = {}
    producer: dict[str, onnx.NodeProto] = {}
    for i in ref_plan.order:
        n = ref_plan.nodes[i]
        for o in n.output:
            if o and o not in rank:
                rank[o] = len(rank)
                producer[o] = n
    cand_names = {o for n in candidate.graph.node for o in n.output if o}
    # every tensor a node of both computes (Constant nodes hold weights, not layers)
    common = {t for t in rank if t in cand_names and ref_plan.is_tensor(t) and t not in ref_plan.constant}
    cand_plan = layerwise.Plan(candidate, priority=rank)
    ref_runs = layerwise.run(reference, feeds, wanted=common, budget=budget, plan=ref_plan, what="the reference run",
                             progress=progress)
    cand_runs = layerwise.run(candidate, candidate_feeds, wanted=common, budget=budget, plan=cand_plan,
                              what="the candidate run")
    ref_pending: dict[str, np.ndarray] = {}
    cand_pending: dict[str, np.ndarray] = {}
    out: list[LayerComparison] = []

    def compare(name: str, ref: np.ndarray, got: np.ndarray) -> None:
        n = producer[name]
        c = proving.compare_arrays(name, ref, got, atol, rtol)
        out.append(LayerComparison(name, n.name or None, n.op_type, c.max_abs_diff, c.max_rel_diff, c.passed, c.shape_mismatch))

    cand_done = False
    for values in ref_runs:
        for name, arr in values.items():
            if name in cand_pending:
                compare(name, arr, cand_pending.pop(name))
            else:
                ref_pending[name] = arr
        while ref_pending and not cand_done:
            try:
                got = next(cand_runs)
            except StopIteration:
                cand_done = True
                break
            for name, arr in got.items():
                if name in ref_pending:
                    compare(name, ref_pending.pop(name), arr)
                else:
                    cand_pending[name] = arr
            held = sum(v.nbytes for v in ref_pending.values()) + sum(v.nbytes for v in cand_pending.values())
            budget.check_memory("the layerwise comparison", held, len(out), len(common))
    out.sort(key=lambda c: rank[c.tensor])
    return out


def first_divergence(reference: onnx.ModelProto, comparisons: list[LayerComparison]) -> LayerComparison | None:
    """The first failing tensor (topological order) whose producer's compared inputs all passed."""
    status = {c.tensor: c.passed for c in comparisons}
    producers = {o: n for n in reference.graph.node for o in n.output}
    for c in comparisons:
        if c.passed:
            continue
        n = producers.get(c.tensor)
        if n is None or all(status.get(i, True) for i in n.input if i):
            return c
    return None


def verify_against(model_path: str, other_path: str, reference: onnx.ModelProto, other: onnx.ModelProto, feeds,
                   *, layerwise: bool, atol: float, rtol: float, progress=None,
                   budget: layerwise_mod.Budget | None = None) -> VerifyResult:
    if layerwise:
        comps = compare_layerwise(reference, other, feeds, feeds, atol, rtol, progress=progress, budget=budget)
        res = VerifyResult(model_path, other_path, "layerwise", comps, tolerance=(atol, rtol))
        res.first_divergence = first_divergence(reference, comps)
        return res
    ref = proving.run(reference, feeds)
    try:
        got = proving.run(other, feeds, list(ref))
    except Exception as e:  # noqa: BLE001
        raise OnnxDoctorError(f"{other_path}: does not run in ONNX Runtime: {' '.join(str(e).split())[:200]}") from None
    producers = {o: n for n in reference.graph.node for o in n.output}
    comps = []
    for name, arr in ref.items():
        c = proving.compare_arrays(name, arr, got[name], atol, rtol)
        n = producers.get(name)
        comps.append(LayerComparison(name, n.name if n is not None else None, n.op_type if n is not None else None,
                                     c.max_abs_diff, c.max_rel_diff, c.passed, c.shape_mismatch))
    res = VerifyResult(model_path, other_path, "outputs", comps, tolerance=(atol, rtol))
    res.first_divergence = next((c for c in comps if not c.passed), None)
    return res


def fp16_emulation(model_path: str, reference: onnx.ModelProto, feeds, *, rtol: float = proving.DEFAULT_RTOL,
                   progress=None, budget: layerwise.Budget | None = None) -> VerifyResult:
    """Run the FP32 model with every tensor observed and judge what storing each float tensor in FP16
    does to it: FAIL for overflow (a finite value becomes inf), for NaN/inf that FP32 did not have,
    and for a rounding error beyond `rtol` of the tensor's scale (its largest magnitude). Values
    that underflow to zero fail only through that error: a Sigmoid output whose tail below 6e-8
    flushes loses nothing that matters; a tensor that lies wholly below FP16's range does."""
    plan = layerwise.Plan(reference)
    producer = {o: plan.nodes[i] for i in plan.order for o in plan.nodes[i].output if o}
    comps: list[LayerComparison] = []
    for got in layerwise.run(reference, feeds, budget=budget, plan=plan, what="the FP16 emulation", progress=progress):
        for name, arr in got.items():
            if arr.dtype.kind != "f" or arr.dtype == np.float16 or arr.size == 0:
                continue
            comps.append(_fp16_judgement(name, producer[name], arr, rtol))
        del got
    res = VerifyResult(model_path, "fp16-emulation (ONNX Runtime, CPU)", "fp16-emulation", comps,
                       tolerance=(0.0, rtol))
    res.first_divergence = first_divergence(reference, comps)
    return res


def _fp16_judgement(name: str, node: onnx.NodeProto, arr: np.ndarray, rtol: float) -> LayerComparison:
    x = arr.astype(np.float64)
    finite = np.isfinite(x)
    a = np.abs(x[finite])
    peak = float(a.max()) if a.size else 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        h = x.astype(np.float16).astype(np.float64)
    if peak >= FP16_OVERFLOW:
        return LayerComparison(name, node.name or None, node.op_type, peak, float("inf"), False,
                               f"max |value| {peak:.4g} overflows FP16 (inf beyond {FP16_OVERFLOW:g})")
    if not np.all(np.isfinite(h[finite])):
        return LayerComparison(name, node.name or None, node.op_type, peak, float("inf"), False, "becomes NaN/inf in FP16")
    err = float(np.abs(h[finite] - x[finite]).max()) if a.size else 0.0
    rel = err / peak if peak > 0 else 0.0
    nz = a[a > 0]
    tiny = float((nz < FP16_TINY).mean()) if nz.size else 0.0
    note = None
    if rel > rtol:
        note = (f"FP16 loses {rel:.1%} of the tensor's range" +
                (f" ({tiny:.0%} of non-zero values flush to 0 below {FP16_TINY:.3g})" if tiny else ""))
    elif tiny:
        note = f"{tiny:.0%} of non-zero values flush to 0 in FP16; error {rel:.2g} of the tensor's range (harmless)"
    return LayerComparison(name, node.name or None, node.op_type, peak, rel, rel <= rtol, note)


def verify_trt(model_path: str, feeds, *, layerwise: bool, fp16: bool, trt_version: str, strongly_typed: bool,
               shapes: dict, atol: float, rtol: float) -> VerifyResult:  # pragma: no cover - needs TensorRT + GPU
    """TensorRT vs ONNX Runtime through Polygraphy: a thin composition of its loaders.

    The equivalent command line is
    `polygraphy run MODEL --trt --onnxrt [--fp16] [--strongly-typed] --trt-outputs mark all --onnx-outputs mark all`.
    """
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        raise UsageError("--backend trt needs TensorRT: pip install 'onnxdoctor[tensorrt]' on a machine with an NVIDIA GPU") from None
    from polygraphy.backend.onnx import BytesFromOnnx, ModifyOutputs, OnnxFromPath
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy import constants
    from polygraphy.backend.trt import (CreateConfig, EngineFromNetwork, ModifyNetworkOutputs, NetworkFromOnnxPath,
                                        Profile, TrtRunner)
    from polygraphy.comparator import Comparator

    mark = [constants.MARK_ALL] if layerwise else None
    onnx_loader = OnnxFromPath(model_path)
    if mark:
        onnx_loader = ModifyOutputs(onnx_loader, outputs=mark)
    ort_runner = OnnxrtRunner(SessionFromOnnx(BytesFromOnnx(onnx_loader)))
    network = NetworkFromOnnxPath(model_path, strongly_typed=strongly_typed or None)
    if mark:
        network = ModifyNetworkOutputs(network, outputs=mark)
    profiles = []
    if shapes:
        p = Profile()
        for name, spec in shapes.items():
            p.add(name, min=spec.min, opt=spec.opt, max=spec.max)
        profiles = [p]
    # 11.x: strongly typed, no precision flags; 10.x: the FP16 builder flag only when asked.
    config = CreateConfig(fp16=(fp16 and not strongly_typed) or None, profiles=profiles or None)
    trt_runner = TrtRunner(EngineFromNetwork(network, config=config))
    results = Comparator.run([ort_runner, trt_runner], data_loader=[feeds])
    ref_out = results[0][1][0]
    trt_out = results[1][1][0]
    comps = []
    names = [t for t, _, _ in _topo_tensors(onnx.load(model_path, load_external_data=False))]
    for name in names if layerwise else list(ref_out.keys()):
        if name in ref_out and name in trt_out:
            c = proving.compare_arrays(name, np.asarray(ref_out[name]), np.asarray(trt_out[name]), atol, rtol)
            comps.append(LayerComparison(name, None, None, c.max_abs_diff, c.max_rel_diff, c.passed, c.shape_mismatch))
    res = VerifyResult(model_path, f"TensorRT {trt_version}", "layerwise" if layerwise else "outputs", comps, tolerance=(atol, rtol))
    res.first_divergence = first_divergence(onnx.load(model_path, load_external_data=False), comps)
    return res


def render_text(res: VerifyResult, *, show_all: bool = False) -> str:
    lines = [f"reference: {res.reference} (ONNX Runtime, CPU)", f"candidate: {res.candidate}"]
    if res.inputs is not None:
        lines.append(f"on {res.inputs.describe()}")
    fails = [c for c in res.comparisons if not c.passed]
    shown = res.comparisons if show_all else (fails[:20] if fails else [])
    emul = res.mode == "fp16-emulation"
    if shown:
        lines.append(f"  {'tensor':<40} {'node':<28} {'op':<16} {'max |x|' if emul else 'max abs':>10} "
                     f"{'err/range' if emul else 'rel/range':>10}  result")
        for c in shown:
            lines.append(f"  {c.tensor[:40]:<40} {(c.node or '-')[:28]:<28} {(c.op_type or '-')[:16]:<16} "
                         f"{c.max_abs_diff:>10.3g} {c.max_rel_diff:>10.3g}  {'pass' if c.passed else 'FAIL'}"
                         + (f"  {c.note}" if c.note else ""))
        if not show_all and len(fails) > 20:
            lines.append(f"  ... {len(fails) - 20} more failing tensor(s) (--format json lists all)")
    lines.append(f"compared {len(res.comparisons)} tensor(s) ({res.mode}), {len(fails)} failed")
    fd = res.first_divergence
    if fd is not None:
        what = fd.note if emul else f"max |diff| {fd.max_abs_diff:.3g} ({fd.max_rel_diff:.3g} of the tensor's range)"
        lines.append(f"first divergence: tensor {fd.tensor!r} produced by {fd.node or '?'} ({fd.op_type}): {what}")
    lines.append("PASS" if res.passed else "FAIL")
    return printable_lines("\n".join(lines) + "\n")  # model text: no terminal control
