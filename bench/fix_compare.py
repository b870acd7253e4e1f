"""Compares `onnxdoctor fix --rules default` with onnxslim and onnx-simplifier on real exported models.

    /work/venv-bench/bin/python bench/fix_compare.py [--models-dir bench/out/fix-models]
        [--only bert-torchscript,...] [--tools onnxdoctor,onnxslim,onnxsim] [--runs 3] [--install .]

Models come from bench/export_models.py (BERT, GPT-2, ViT, a Llama-style decoder; TorchScript
opset 17 and 14, dynamo opset 18). For every model and tool:

1. The tool runs in a fresh process, started by a tiny wrapper process that reports that one
   child's wall time and peak RSS (getrusage(RUSAGE_CHILDREN).ru_maxrss), so peak memory is per
   run. Commands (console scripts looked up beside --onnxdoctor-python / this Python, then PATH):
     onnxdoctor: onnxdoctor fix MODEL -o OUT --rules default --trt 10.15 --format json
                 (its JSON report gives the proof result and the rewrites applied)
     onnxdoctor-noprove: the same with --no-prove (only with --tools; shows the proof's share)
     onnxslim:   onnxslim MODEL OUT
     onnxsim:    onnxsim MODEL OUT
   Tools run in interleaved rounds (each tool once per round, --runs rounds, default 3), as
   bench/check_speed.py does, so a drifting machine slows them alike; time is the median, peak
   memory the largest of a tool's runs. A tool whose first run takes longer than --slow seconds
   (default 120) is run once, and the table says so.
2. Nodes before/after (top-level graph nodes) and op-type histograms of both.
3. The original runs in ONNX Runtime (CPU, default session options) on generated inputs (fixed
   seed; ids in [0, 1000), attention mask of ones with the second row's last quarter zero, pixel
   values N(0, 1); batch 2 and sequence 16 for dynamic dimensions; models these do not fit, e.g.
   the real-model corpus, get onnxdoctor's input oracle's inputs) and each result runs on the
   same inputs; every output is compared with atol 1e-4, rtol 1e-3 (|a-b| <= atol + rtol*|b|),
   and the max abs diff is reported.

Prints a markdown table and writes bench/out/fix-compare/results.json (plus a timestamped copy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ATOL, RTOL = 1e-4, 1e-3

# Each measurement gets its own wrapper process, so RUSAGE_CHILDREN covers exactly one run
# (ru_maxrss of RUSAGE_CHILDREN is the peak of the largest waited-for descendant, KiB on Linux).
WRAPPER = r"""
import json, os, resource, subprocess, sys, time
cmd = json.loads(sys.argv[1]); out = sys.argv[2]; load1 = os.getloadavg()[0]
t0 = time.perf_counter()
with open(out + ".stdout", "wb") as so, open(out + ".stderr", "wb") as se:
    try:
        p = subprocess.run(cmd, stdout=so, stderr=se, timeout=float(sys.argv[3]))
        rc = p.returncode
    except subprocess.TimeoutExpired:
        rc = "timeout"
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"load1_before": load1, "wall": wall, "maxrss_kb": ru.ru_maxrss, "user": ru.ru_utime, "sys": ru.ru_stime, "rc": rc}))
"""


def _script(name: str, python: str | None) -> str:
    for d in ([Path(python).parent] if python else []) + [Path(sys.executable).parent]:
        if (d / name).exists():
            return str(d / name)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found beside the Python or on PATH")
    return found


def commands(args) -> dict:
    doctor = args.onnxdoctor.split() if args.onnxdoctor else [_script("onnxdoctor", "/work/venv/bin/python")]
    fix = ["fix", "{model}", "-o", "{out}", "--rules", "default", "--trt", args.trt, "--format", "json"]
    return {
        "onnxdoctor": doctor + fix,
        "onnxdoctor-noprove": doctor + fix + ["--no-prove"],
        "onnxslim": [_script("onnxslim", None), "{model}", "{out}"],
        "onnxsim": [_script("onnxsim", None), "{model}", "{out}"],
    }


def install(source: Path, out: Path) -> dict:
    """Build a wheel of the onnxdoctor source tree `source` and install it (no dependencies: they are
    this Python's) into out/onnxdoctor-site; pip compiles its bytecode."""
    wheels, site = out / "onnxdoctor-wheel", out / "onnxdoctor-site"
    for d in (wheels, site):
        shutil.rmtree(d, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)], check=True)
    wheel = next(wheels.glob("onnxdoctor-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], check=True)
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    print(f"installed {wheel.name} from {source} at {commit}{' (modified)' if dirty else ''} into {site}", file=sys.stderr)
    return {"source": str(source), "commit": commit, "modified": bool(dirty), "wheel": wheel.name, "site": str(site)}


def run_once(cmd: list[str], log: Path, timeout: float) -> dict:
    p = subprocess.run([sys.executable, "-c", WRAPPER, json.dumps(cmd), str(log), str(timeout)],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def op_hist(path: Path) -> tuple[int, dict]:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    hist = Counter((n.domain + "::" if n.domain not in ("", "ai.onnx") else "") + n.op_type for n in m.graph.node)
    return len(m.graph.node), dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))


# ---------------------------------------------------------------- ONNX Runtime comparison

def make_inputs(model_path: Path, seed: int = 0) -> dict:
    import numpy as np
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else (2 if k == 0 else 16) for k, d in enumerate(i.shape)]
        if "int" in i.type:
            dtype = np.int64 if "int64" in i.type else np.int32
            if "mask" in i.name:
                a = np.ones(shape, dtype=dtype)
                if shape[0] > 1 and len(shape) > 1:
                    a[1, -max(1, shape[1] // 4):] = 0
            else:
                a = rng.integers(0, 1000, size=shape).astype(dtype)
        elif "bool" in i.type:
            a = np.ones(shape, dtype=bool)
        else:
            a = rng.standard_normal(shape).astype(np.float16 if "float16" in i.type else np.float32)
        feeds[i.name] = a
    return feeds


def reference_run(model_path: Path) -> tuple[dict, dict, str]:
    """(inputs, the original's outputs, where the inputs come from): the transformer heuristics of
    make_inputs, else (e.g. images of a size the strides divide, audio of a given length) onnxdoctor's
    input oracle, the inputs its own proof would use."""
    try:
        feeds = make_inputs(model_path)
        return feeds, ort_run(model_path, feeds), "make_inputs"
    except Exception:  # noqa: BLE001 - the heuristics do not fit this model
        import onnx

        from onnxdoctor.inputs import plan_inputs

        plan = plan_inputs(onnx.load(str(model_path)), path=str(model_path))
        return plan.feeds, ort_run(model_path, plan.feeds), "onnxdoctor.inputs"


def ort_run(model_path: Path, feeds: dict) -> dict:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    outs = sess.run(None, {k: v for k, v in feeds.items() if k in names})
    return {o.name: v for o, v in zip(sess.get_outputs(), outs)}


def compare(ref: dict, got: dict) -> dict:
    import numpy as np

    res = {"equal": True, "max_abs_diff": 0.0, "outputs": {}}
    for name, r in ref.items():
        if name not in got:
            res["equal"] = False
            res["outputs"][name] = "missing"
            continue
        g = got[name]
        if g.shape != r.shape:
            res["equal"] = False
            res["outputs"][name] = f"shape {g.shape} != {r.shape}"
            continue
        d = np.abs(g.astype(np.float64) - r.astype(np.float64))
        mad = float(np.nanmax(d)) if d.size else 0.0
        ok = bool(np.allclose(g, r, atol=ATOL, rtol=RTOL, equal_nan=True))
        res["outputs"][name] = {"max_abs_diff": mad, "equal": ok}
        res["max_abs_diff"] = max(res["max_abs_diff"], mad)
        res["equal"] &= ok
    return res


# ---------------------------------------------------------------- main

def doctor_summary(stdout: str) -> dict:
    try:
        rep = json.loads(stdout)
    except ValueError:
        return {"parse_error": stdout[-500:]}
    applied = [f"{s['rewrite']}: {'; '.join(s.get('changes', []))}" for s in rep.get("steps", [])
               if s.get("status") == "applied"]
    other = [f"{s['rewrite']} ({s.get('status')}): {'; '.join(s.get('changes', []) + s.get('skipped', []))}"
             for s in rep.get("steps", []) if s.get("status") not in ("applied", "no-change")]
    after = rep.get("after", {})
    return {"iterations": rep.get("iterations"), "nodes": rep.get("nodes"), "proof": rep.get("proof"),
            "applied": applied, "not_applied": other, "after_summary": after.get("summary"),
            "after_codes": dict(Counter(f["code"] for f in after.get("findings", [])))}


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cores": os.cpu_count()}
    try:
        ls = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in ls.splitlines() if ln.startswith("Model name")), "")
    except OSError:
        pass
    vers = {}
    for mod in ("onnx", "onnxruntime", "onnxslim", "onnxsim", "numpy"):
        try:
            m = __import__(mod)
            vers[mod] = getattr(m, "__version__", "?")
        except Exception:  # noqa: BLE001
            vers[mod] = None
    try:
        vers["onnxdoctor"] = subprocess.run(["/work/venv/bin/python", "-c",
                                             "import onnxdoctor; print(onnxdoctor.__version__)"],
                                            capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    info["versions"] = vers
    return info


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", type=Path, default=HERE / "out" / "fix-models")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "fix-compare")
    ap.add_argument("--only", default="", help="comma-separated model stems (e.g. bert-torchscript)")
    ap.add_argument("--tools", default="onnxdoctor,onnxslim,onnxsim")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--slow", type=float, default=120.0, help="run once when the first run takes longer (s)")
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--trt", default="10.15")
    ap.add_argument("--onnxdoctor", default="", help="command for onnxdoctor (default: /work/venv/bin/onnxdoctor)")
    ap.add_argument("--install", type=Path, default=None, metavar="SOURCE",
                    help="build a wheel of the onnxdoctor source tree SOURCE, install it into --out/onnxdoctor-site "
                         "and run that (bytecode compiled and knowledge base pre-parsed, as users get it; a source "
                         "tree run under PYTHONDONTWRITEBYTECODE compiles every module on every run)")
    ap.add_argument("--tag", default="", help="label stored in results.json (e.g. 'before fusions')")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other models of an existing --out/results.json and replace only those run now "
                         "(with --tools, replace only those tools)")
    ap.add_argument("--table-only", action="store_true", help="re-print the table of --out/results.json")
    args = ap.parse_args(argv)
    if args.table_only:
        print(markdown(json.loads((args.out / "results.json").read_text())))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    installed = install(args.install, args.out) if args.install else None
    if installed:
        args.onnxdoctor = f"env PYTHONPATH={installed['site']} {sys.executable} -m onnxdoctor"
    cmds = commands(args)
    tools = args.tools.split(",")
    models = sorted(args.models_dir.glob("*.onnx"))
    if args.only:
        keep = set(args.only.split(","))
        models = [m for m in models if m.stem in keep]
    results = {"machine": machine(), "tag": args.tag, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
               "tolerance": {"atol": ATOL, "rtol": RTOL}, "commands": cmds, "installed": installed, "models": []}
    old = {}
    if args.merge and (args.out / "results.json").exists():
        prev = json.loads((args.out / "results.json").read_text())
        old = {e["model"]: e for e in prev["models"]}
        results["merged_from"] = prev.get("merged_from", []) + [{"tag": prev.get("tag"), "started": prev.get("started")}]
    for model in models:
        meta_p = model.with_suffix(".json")
        meta = json.loads(meta_p.read_text()) if meta_p.exists() else {}
        n0, h0 = op_hist(model)
        print(f"== {model.stem}: {n0} nodes", file=sys.stderr, flush=True)
        feeds, ref, how = reference_run(model)
        entry = {"model": model.stem, "export": meta, "nodes_before": n0, "ops_before": h0, "inputs_from": how,
                 "inputs": {k: list(v.shape) for k, v in feeds.items()}, "tools": {}}
        outs = {tool: args.out / f"{model.stem}.{tool}.onnx" for tool in tools}
        cmd_of = {tool: [c.replace("{model}", str(model)).replace("{out}", str(outs[tool])) for c in cmds[tool]]
                  for tool in tools}
        samples: dict[str, list] = {tool: [] for tool in tools}
        # Interleaved rounds (as bench/check_speed.py): every tool runs once per round, so a machine whose
        # speed drifts (2 cores shared with other work) slows them alike; a tool slower than --slow on
        # its first run is not run again.
        for i in range(args.runs):
            for tool in tools:
                if i and (samples[tool][0]["wall"] > args.slow or samples[tool][0]["rc"] == "timeout"):
                    continue
                for p in (outs[tool], Path(str(outs[tool]) + ".data")):
                    p.unlink(missing_ok=True)
                log = args.out / f"{model.stem}.{tool}.run{i}"
                r = run_once(cmd_of[tool], log, args.timeout)
                r["log"] = str(log)
                samples[tool].append(r)
                print(f"  round {i + 1} {tool}: {r['wall']:.1f} s, {r['maxrss_kb'] / 1024:.0f} MiB, rc={r['rc']}, "
                      f"load {r['load1_before']:.1f}", file=sys.stderr, flush=True)
        for tool in tools:
            out, runs = outs[tool], samples[tool]
            t = {"cmd": cmd_of[tool], "runs": len(runs), "samples": runs,
                 "wall_median_s": statistics.median(s["wall"] for s in runs),
                 "cpu_median_s": statistics.median(s["user"] + s["sys"] for s in runs),
                 "rss_peak_mb": max(s["maxrss_kb"] for s in runs) / 1024,
                 "rss_median_mb": statistics.median(s["maxrss_kb"] for s in runs) / 1024,
                 "rc": runs[-1]["rc"]}
            last = Path(runs[-1]["log"])
            t["stderr_tail"] = tail(Path(str(last) + ".stderr"))
            if tool.startswith("onnxdoctor"):
                t["report"] = doctor_summary(Path(str(last) + ".stdout").read_text(errors="replace"))
            else:
                t["stdout_tail"] = tail(Path(str(last) + ".stdout"), 3000)
            if out.exists():
                t["nodes_after"], t["ops_after"] = op_hist(out)
                try:
                    t["compare"] = compare(ref, ort_run(out, feeds))
                except Exception as e:  # noqa: BLE001 - a result ORT cannot run is a result too
                    t["compare"] = {"equal": False, "error": f"{type(e).__name__}: {str(e)[:500]}"}
            else:
                t["nodes_after"] = None
                t["compare"] = {"equal": False, "error": "no output written"}
            entry["tools"][tool] = t
        if model.stem in old:  # keep the tools not re-run now
            entry["tools"] = {**old.pop(model.stem)["tools"], **entry["tools"]}
        results["models"].append(entry)
        # write after every model so a partial run leaves results
        partial = dict(results, models=sorted(results["models"] + list(old.values()), key=lambda e: e["model"]))
        (args.out / "results.json").write_text(json.dumps(partial, indent=1) + "\n")
    results["models"] += list(old.values())
    results["models"].sort(key=lambda e: e["model"])
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    text = json.dumps(results, indent=1) + "\n"
    (args.out / "results.json").write_text(text)
    (args.out / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(text)
    table = markdown(results)
    (args.out / "table.md").write_text(table)
    print(table)
    return 0


def markdown(results: dict) -> str:
    rows = ["| model | nodes before | tool | nodes after | time (s) | peak RSS (MiB) | outputs equal (max abs diff) | notes |",
            "|---|---:|---|---:|---:|---:|---|---|"]
    for e in results["models"]:
        for tool, t in e["tools"].items():
            c = t.get("compare", {})
            eq = ("yes" if c.get("equal") else "**no**") + (f" ({c['max_abs_diff']:.1e})" if "max_abs_diff" in c else
                                                           f" ({c.get('error', '')[:60]})")
            notes = []
            if t["runs"] < 3:
                notes.append(f"{t['runs']} run{'s' if t['runs'] > 1 else ''}")
            if t["rc"] not in (0,):
                notes.append(f"rc={t['rc']}")
            rep = t.get("report")
            if rep and rep.get("proof") is not None:
                notes.append("proof " + ("pass" if rep["proof"].get("pass") else "FAIL"))
            elif tool == "onnxdoctor" and rep:
                notes.append("no proof")
            if rep:
                names = Counter(a.split(":", 1)[0] for a in rep.get("applied", []))
                if names:
                    notes.append("applied: " + ", ".join(f"{k}" + (f"×{v}" if v > 1 else "") for k, v in names.items()))
            rows.append(f"| {e['model']} | {e['nodes_before']} | {tool} | {t.get('nodes_after')} | "
                        f"{t['wall_median_s']:.1f} | {t['rss_peak_mb']:.0f} | {eq} | {'; '.join(notes)} |")
    # target summary
    rows += ["", "| model | nodes: onnxdoctor / onnxslim | time (s): onnxdoctor / onnxslim (ratio) | peak RSS (MiB): "
             "onnxdoctor / onnxslim | outputs equal | target met (nodes, time, memory, outputs) |",
             "|---|---:|---:|---:|---|---|"]
    for e in results["models"]:
        d, s = e["tools"].get("onnxdoctor"), e["tools"].get("onnxslim")
        if not d or not s or d.get("nodes_after") is None or s.get("nodes_after") is None:
            continue
        ratio = d["wall_median_s"] / s["wall_median_s"]
        ok = [d["nodes_after"] <= s["nodes_after"], ratio <= 1, d["rss_peak_mb"] <= s["rss_peak_mb"],
              bool(d.get("compare", {}).get("equal"))]
        rows.append(f"| {e['model']} | {d['nodes_after']} / {s['nodes_after']} | {d['wall_median_s']:.1f} / "
                    f"{s['wall_median_s']:.1f} ({ratio:.2f}×) | {d['rss_peak_mb']:.0f} / {s['rss_peak_mb']:.0f} | "
                    f"{'yes' if ok[3] else '**no**'} | {'yes' if all(ok) else 'no (' + ', '.join(n for n, v in zip(('nodes', 'time', 'memory', 'outputs'), ok) if not v) + ')'} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
