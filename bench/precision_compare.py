"""Compare onnxdoctor's convert-precision with ModelOpt AutoCast and onnxconverter-common on the real
exports in fixtures/models/real: share of compute kept FP32, Casts inserted, max output error vs FP32,
conversion time.

    PYTHONPATH=src /work/venv/bin/python bench/precision_compare.py [--target fp16] [--models GLOB]

onnxdoctor runs in this interpreter. The competitors run in a separate venv (they pull torch and
onnxconverter-common), by re-invoking this file with `--worker`:

    python3 -m venv /work/venv-modelopt
    /work/venv-modelopt/bin/pip install "nvidia-modelopt[onnx]" onnxconverter-common

Every converted model is measured here the same way: ONNX Runtime CPU on the same generated inputs
(seed 0) as the FP32 original; a compute node counts as FP32 when its first float output is FLOAT;
compute = MAC-weighted (output elements, times the reduction length for MatMul/Gemm/Conv), from the
shapes observed in the run. Casts inserted = Cast nodes after minus before.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "precision"
OTHER_PY = os.environ.get("PRECISION_BENCH_PYTHON", "/work/venv-modelopt/bin/python")
# onnxconverter-common's default block list plus the ops known to be sensitive in FP16.
OCC_BLOCK = ["Pow", "ReduceMean", "Sqrt", "Softmax", "Range"]


def stress_inputs(model, seed: int = 0, scale: float = 30.0):
    """Inputs that exercise the ranges FP16 breaks on: padded attention masks (the last 3 positions
    masked, so mask arithmetic runs) and float inputs scaled up (a large residual stream)."""

    from onnxdoctor import prove as proving

    feeds = proving.generate_inputs(model, {}, seed)
    for k, v in feeds.items():
        if "mask" in k.lower() and v.dtype.kind in "iub":
            v = v.copy()
            v[..., -3:] = 0
            feeds[k] = v
        elif v.dtype.kind == "f":
            feeds[k] = (v * scale).astype(v.dtype)
    return feeds


def worker(tool: str, src: str, dst: str, target: str, calib: str | None = None) -> None:
    """Runs in the competitor venv: convert, save, print the conversion time as JSON."""
    import onnx

    t0 = time.perf_counter()
    if tool == "autocast":
        from modelopt.onnx.autocast import convert_to_mixed_precision

        m = convert_to_mixed_precision(src, target, keep_io_types=True, providers=["cpu"], calibration_data=calib)
    elif tool in ("occ", "occ-default"):
        from onnxconverter_common import float16

        block = None if tool == "occ-default" else sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(OCC_BLOCK))
        m = float16.convert_float_to_float16(onnx.load(src), keep_io_types=True, op_block_list=block)
    else:
        raise SystemExit(f"unknown tool {tool}")
    secs = time.perf_counter() - t0
    onnx.save(m, dst)
    print(json.dumps({"seconds": secs}))


def measure(original, converted, feeds) -> dict:
    """Same metrics for every tool, on the same inputs."""
    import numpy as np
    import onnx
    from onnx import TensorProto as TP

    from onnxdoctor import prove as proving
    from onnxdoctor import mixed_precision as mp

    ref = proving.run(original, feeds)
    try:
        got = proving.run(converted, feeds, list(ref))
        err = max(float(np.nanmax(np.abs(ref[k].astype(np.float64) - got[k].astype(np.float64)))) if np.all(np.isfinite(got[k]))
                  else float("inf") for k in ref)
    except Exception as e:  # noqa: BLE001
        return {"error": " ".join(str(e).split())[:200]}
    # ORT's CPU FP16 kernels compute in FP32 inside a node, so an overflow inside a node never shows.
    # The emulation rounds every FP16 tensor as TensorRT stores it (inf from 65520 on, past the largest finite 65504).
    try:
        emu = proving.run(mp.emulated(converted, "fp16"), feeds, list(ref))
        emu_err = max(float(np.nanmax(np.abs(ref[k].astype(np.float64) - emu[k].astype(np.float64)))) if np.all(np.isfinite(emu[k]))
                      else float("inf") for k in ref)
    except Exception as e:  # noqa: BLE001
        emu_err = float("nan")
        print(f"emulation failed: {' '.join(str(e).split())[:200]}", file=sys.stderr)
    named = onnx.ModelProto()
    named.CopyFrom(converted)
    from onnxdoctor.mixed_precision.planner import _constants, _name_nodes

    _name_nodes(named)
    observed = mp.observe(named, feeds)
    types = mp.elem_types(named, observed)
    static = set(_constants(named))
    total = kept = 0.0
    n_compute = n_kept = 0
    for n in named.graph.node:
        ins = [i for i in n.input if i]
        if n.op_type in ("Shape", "Size") or (ins and all(i in static for i in ins)):
            static.update(o for o in n.output if o)
            continue
        if n.op_type in ("Cast", "Constant") or n.op_type in mp.MOVEMENT:
            continue
        outs = [o for o in n.output if o and types.get(o) in (TP.FLOAT, TP.FLOAT16, TP.BFLOAT16)]
        if not outs:
            continue
        w = 1.0
        if outs[0] in observed:
            w = float(max(1, int(np.prod(observed[outs[0]].shape or (1,)))))
            if n.op_type in ("MatMul", "Gemm") and ins[0] in observed and observed[ins[0]].shape:
                w *= observed[ins[0]].shape[-1]
            if n.op_type == "Conv" and ins[0] in observed and len(ins) > 1 and ins[1] in observed:
                ws = observed[ins[1]].shape
                w *= int(np.prod(ws[1:])) if len(ws) > 1 else 1
        fp32 = types.get(outs[0]) == TP.FLOAT
        total += w
        kept += w if fp32 else 0.0
        n_compute += 1
        n_kept += fp32
    casts = sum(n.op_type == "Cast" for n in converted.graph.node) - sum(n.op_type == "Cast" for n in original.graph.node)
    return {"fp32_compute": kept / total if total else 0.0, "fp32_nodes": n_kept, "compute_nodes": n_compute,
            "casts": casts, "max_err": err, "max_err_emulated": emu_err, "mixed_type_nodes": len(mp.mixed_type_nodes(converted))}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs="+", metavar="TOOL SRC DST TARGET [CALIB]")
    ap.add_argument("--stress", action="store_true", help="padded masks and float inputs x30 (also AutoCast's calibration data)")
    ap.add_argument("--eval-scale", type=float, default=None,
                    help="convert/calibrate on ordinary inputs, measure the error on float inputs scaled by this "
                         "(inputs the calibration never saw)")
    ap.add_argument("--synthetic", action="store_true", help="add the transformer block of tests/test_mixed_precision.py")
    ap.add_argument("--target", default="fp16")
    ap.add_argument("--models", default=str(ROOT / "fixtures/models/real/*-torchscript-opset14.onnx"))
    ap.add_argument("--tools", default="onnxdoctor,onnxdoctor-fix,onnxdoctor-keepnorm,autocast,occ")
    ap.add_argument("--json", default=str(OUT / "results.json"))
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0

    import onnx

    from onnxdoctor import prove as proving
    from onnxdoctor import mixed_precision as mp

    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    paths = sorted(glob.glob(args.models))
    if args.synthetic:
        sys.path.insert(0, str(ROOT / "tests"))
        from test_mixed_precision import block_model

        paths.insert(0, str(OUT / "synthetic-block.onnx"))
        onnx.save(block_model(), paths[0])
    for path in paths:
        name = Path(path).stem
        original = onnx.load(path)
        feeds = stress_inputs(original) if args.stress else proving.generate_inputs(original, {}, 0)
        calib = OUT / f"{name}.inputs{'.stress' if args.stress else ''}.npz"
        import numpy as np

        np.savez(calib, **feeds)
        for tool in args.tools.split(","):
            dst = OUT / f"{name}.{tool}.{args.target}{'.stress' if args.stress else ''}.onnx"
            row = {"model": name, "tool": tool}
            if tool in ("onnxdoctor", "onnxdoctor-keepnorm"):
                # keepnorm: decomposed LayerNorm/RMSNorm statistics kept FP32 regardless of evidence
                t0 = time.perf_counter()
                res = mp.convert(original, args.target, feeds=feeds, keep_norm_stats=tool == "onnxdoctor-keepnorm")
                row["seconds"] = time.perf_counter() - t0
                row["proof"] = "pass" if res.passed else "FAIL"
                row["retries"] = res.retries
                onnx.save(res.model, dst)
                converted = res.model
            elif tool == "onnxdoctor-fix":
                # what users run: the whole fix pipeline (fusions first, then convert-precision), same inputs
                exe = str(Path(sys.executable).with_name("onnxdoctor"))
                t0 = time.perf_counter()
                p = subprocess.run([exe, "fix", path, "-o", str(dst), "--precision", args.target, "--trt", "11.5",
                                    "--data", str(calib)], capture_output=True, text=True)
                row["seconds"] = time.perf_counter() - t0
                if p.returncode not in (0, 1):
                    row["error"] = (p.stderr.strip().splitlines() or ["failed"])[-1][:200]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    continue
                row["proof"] = "pass" if "convert-precision (unsafe)" in p.stdout and "applied" in p.stdout else "not applied"
                converted = onnx.load(dst)
            else:
                p = subprocess.run([OTHER_PY, __file__, "--worker", tool, path, str(dst), args.target, str(calib)], capture_output=True, text=True)
                if p.returncode != 0:
                    row["error"] = (p.stderr.strip().splitlines() or ["failed"])[-1][:200]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    continue
                row["seconds"] = json.loads(p.stdout.strip().splitlines()[-1])["seconds"]
                converted = onnx.load(dst)
            eval_feeds = feeds
            if args.eval_scale:
                eval_feeds = {k: (v * args.eval_scale).astype(v.dtype) if v.dtype.kind == "f" else v for k, v in feeds.items()}
            row.update(measure(original, converted, eval_feeds))
            rows.append(row)
            print(json.dumps(row), flush=True)
    Path(args.json).write_text(json.dumps(rows, indent=1))
    print()
    print(f"{'model':<26} {'tool':<15} {'FP32 compute':>12} {'FP32 nodes':>11} {'Casts':>6} {'max |err|':>10} {'emulated':>10} {'time s':>7}")
    for r in rows:
        if "error" in r:
            print(f"{r['model']:<26} {r['tool']:<15} error: {r['error']}")
            continue
        print(f"{r['model']:<26} {r['tool']:<15} {r['fp32_compute']:>12.1%} {r['fp32_nodes']:>5}/{r['compute_nodes']:<5} "
              f"{r['casts']:>6} {r['max_err']:>10.3g} {r['max_err_emulated']:>10.3g} {r['seconds']:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
