"""The mixed-precision stage: plan, build, prove layer by layer against the FP32 model (verify's
streaming helpers), widen the FP32 set around the first divergence and retry."""

from __future__ import annotations

import time

import numpy as np
import onnx

from .builder import _count_op, build, convert_bodies
from .decisions import ConversionResult, DEFAULT_TOLERANCE, Decision, MAX_RETRIES, Stat, TARGETS
from .emulation import _adapt_feeds, emulated
from .planner import _name_nodes, _widen, elem_types, fp32_fractions, observe, plan

# Folded constants larger than this stay Casts (fold-constants' default cap).
FOLD_MAX_BYTES = 64 * 2**20


def _prove(reference: onnx.ModelProto, converted: onnx.ModelProto, target_type: str, feeds, atol: float, rtol: float, notes: list[str],
           budget=None):
    """Layerwise comparison (verify.compare_layerwise) of the FP32 reference and the converted model in
    ORT; BF16, or a converted model ORT cannot run, is proven on its emulation. Returns
    (mode, comparisons, first divergence)."""
    from .. import prove as proving
    from .. import verify

    cand, mode = converted, "onnxruntime"
    if target_type == "bf16":
        cand, mode = emulated(converted, target_type), "emulated (BF16 rounding of every tensor, FP32 accumulation; ORT CPU has no BF16 kernels)"
    else:
        try:
            proving.session(converted)
        except Exception as e:  # noqa: BLE001 - a missing FP16 CPU kernel: prove the emulation, say so
            notes.append(f"ONNX Runtime cannot run the FP16 model on CPU ({' '.join(str(e).split())[:160]}); proven by emulation")
            cand, mode = emulated(converted, target_type), "emulated (FP16 rounding of every tensor)"
    cfeeds = _adapt_feeds(cand, feeds)
    comps = verify.compare_layerwise(reference, cand, feeds, cfeeds, atol, rtol, budget=budget)
    return mode, comps, verify.first_divergence(reference, comps)



def convert(model: onnx.ModelProto, target_type: str = "fp16", *, keep_io_types: bool = True, keep_fp32: tuple[str, ...] = (),
            max_abs: float | None = None, feeds: dict[str, np.ndarray] | None = None,
            tolerance: tuple[float, float] | None = None, prove: bool = True, observe_activations: bool = True,
            max_retries: int = MAX_RETRIES, seed: int = 0, shapes: dict | None = None, keep_norm_stats: bool = False,
            convert_subgraphs: bool = True, log=None, budget=None, fold_constants: bool = False) -> ConversionResult:
    """Convert an FP32 model to mixed FP16/BF16. With `observe_activations`/`prove` (default) the model
    runs in ONNX Runtime on `feeds` (generated when None); the layerwise proof reruns the original
    segment by segment (layerwise.run); `budget` (layerwise.Budget) bounds those runs.
    LayerNorm/RMSNorm statistics and Pow convert unless evidence keeps them (observed ranges beyond
    `max_abs`, large reductions, tiny constants, a failed proof); `keep_norm_stats=True` keeps the
    statistics FP32 regardless. Control-flow bodies convert too (`convert_bodies`), unless
    `convert_subgraphs=False` or a proof with converted bodies fails (then they stay FP32, noted).
    `fold_constants=True` folds what became constant (Casts of weights read inside bodies) before the
    proof, so the proof covers the model returned (the fix pipeline's final stage asks for it)."""
    from .. import prove as proving

    if target_type not in TARGETS:
        raise ValueError(f"target_type must be one of {sorted(TARGETS)}, got {target_type!r}")
    log = log or (lambda msg: None)
    t0 = time.perf_counter()
    work = onnx.ModelProto()
    work.CopyFrom(model)
    _name_nodes(work)
    tol = tolerance or DEFAULT_TOLERANCE[target_type]
    observed: dict[str, Stat] = {}
    if (observe_activations or prove) and feeds is None:
        feeds = proving.generate_inputs(work, shapes or {}, seed)
    if observe_activations:
        log("reference run: observing every intermediate tensor")
        observed = observe(work, feeds, budget=budget)
    types = elem_types(work, observed)
    extra: dict[str, str] = {}
    notes: list[str] = []
    retries = 0
    while True:
        decisions = plan(work, target_type, keep_fp32=keep_fp32, max_abs=max_abs, observed=observed, extra_keep=extra, types=types,
                         keep_norm_stats=keep_norm_stats)
        converted = build(work, decisions, target_type, keep_io_types=keep_io_types, types=types)
        body_decisions: list[Decision] = []
        if convert_subgraphs:
            converted, body_decisions, body_notes = convert_bodies(converted, target_type, keep_fp32=keep_fp32, max_abs=max_abs,
                                                                   keep_norm_stats=keep_norm_stats)
            notes.extend(n for n in body_notes if n not in notes)
        if fold_constants:
            from ..rewrites._gs import fold

            converted = fold(converted, FOLD_MAX_BYTES)
        converted = onnx.shape_inference.infer_shapes(converted)
        all_decisions = decisions + body_decisions
        res = ConversionResult(converted, target_type, all_decisions,
                               _count_op(converted.graph, "Cast") - _count_op(work.graph, "Cast"),
                               *fp32_fractions(work, all_decisions, observed), retries=retries, tolerance=tol, notes=notes)
        if not prove:
            break
        log(f"proving (attempt {retries + 1})")
        mode, comps, fd = _prove(work, converted, target_type, feeds, *tol, notes, budget=budget)
        outs = {o.name for o in work.graph.output}
        res.proof, res.first_divergence = mode, fd
        res.outputs = [c for c in comps if c.tensor in outs]
        # An intermediate that turned inf/NaN fails the proof even when ORT's outputs look fine: ORT's
        # CPU FP16 kernels do not always carry an overflow on, TensorRT would.
        blown = next((c for c in comps if c.max_abs_diff == float("inf") and c.tensor not in outs), None)
        res.passed = all(c.passed for c in res.outputs) and blown is None
        if blown is not None and fd is None:
            res.first_divergence = fd = blown
        if not res.passed and convert_subgraphs and any(not d.kept_fp32 for d in body_decisions):
            convert_subgraphs = False
            notes.append("the proof failed with converted control-flow bodies: they stay FP32")
            continue
        if res.passed or retries >= max_retries:
            break
        around = fd.node if fd is not None else next((c.node for c in res.outputs if not c.passed), None)
        if around is None:
            break
        retries += 1
        before = len(extra)
        for name in _widen(work, around, retries, decisions):
            extra.setdefault(name, f"widened around the first divergence at {around!r} (retry {retries})")
        if len(extra) == before:
            notes.append(f"widening around {around!r} added nothing; stopped")
            break
    res.seconds = time.perf_counter() - t0
    return res
