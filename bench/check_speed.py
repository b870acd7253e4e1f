#!/usr/bin/env python3
"""Benchmark `onnxdoctor check` against its floor and against `polygraphy check lint`.

Quality bar (docs/DESIGN "Quality bars"): on a 20,000-node model with ~1.3 GB of
external weights, `onnxdoctor check` finishes in under 1 s wall and under 300 MB
peak RSS on 2 CPU cores, and its cost grows linearly with node count.

What this script does:

1. Builds, reproducibly (fixed seed), a transformer-like ONNX model (opset 17):
   an embedding Gather, then N decoder-ish blocks of decomposed LayerNorm,
   Q/K/V projections with Shape->Gather->Unsqueeze->Concat->Reshape head
   splitting, Transpose, scaled Softmax attention, output projection, residual
   Adds and an erf-GELU MLP, then a final LayerNorm + LM head, padded with
   elementwise ops to the exact node count. Every weight of 1 KiB or more lives
   in ONE external data file beside the model (`model.onnx.data`), written
   tensor by tensor in chunks of at most 16 MB (streaming: the weights are never
   whole in memory), 4 KiB-aligned like onnx's own external-data writer. The build is
   skipped when `params.json` in the output folder matches the parameters.
2. Measures, each run in a fresh subprocess wrapped by a tiny Python process
   that reports the child's wall time and peak RSS (`ru_maxrss` of
   RUSAGE_CHILDREN, so peak RSS is per run, not a max over all runs):
     a. `onnxdoctor check MODEL --format json` (the installed console script),
     b. the floor: `python -c "import onnx"` and a python process doing only
        `onnx.load(path, load_external_data=False)` + `onnx.shape_inference.infer_shapes`,
     c. `polygraphy check lint MODEL` (slow; default once).
3. Prints a markdown table and writes `results.json` into the output folder.

`--scaling` instead builds models of 5k/10k/20k/40k nodes with small weights
(default 0.01 GB) and times `onnxdoctor check` (and the floor) on each, to show
cost grows linearly with node count.

Usage:
    python bench/check_speed.py                      # 20k nodes, 1.3 GB, 5 runs
    python bench/check_speed.py --scaling            # 5k..40k nodes
    python bench/check_speed.py --build-only         # just build the model
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "out"
BUILDER_VERSION = 2  # bump when the generated graph changes
ALIGN = 4096
INLINE_LIMIT = 1024  # bytes: smaller tensors stay inside the protobuf, like onnx's default threshold

# ----------------------------------------------------------------------------
# Model builder
# ----------------------------------------------------------------------------


class _Builder:
    """Accumulates nodes / initializers; streams large initializers to the data file."""

    def __init__(self, data_file, data_name: str, seed: int) -> None:
        import numpy as np
        from onnx import helper

        self.np = np
        self.helper = helper
        self.rng = np.random.default_rng(seed)
        self.data_file = data_file
        self.data_name = data_name
        self.offset = 0
        self.nodes = []
        self.initializers = []
        self._names: dict[str, int] = {}
        self._scalars: dict[tuple, str] = {}

    # names ------------------------------------------------------------------
    def name(self, base: str) -> str:
        n = self._names.get(base, 0)
        self._names[base] = n + 1
        return f"{base}_{n}" if n else base

    # nodes ------------------------------------------------------------------
    def op(self, op_type: str, inputs: list[str], scope: str, n_out: int = 1, **attrs) -> list[str] | str:
        name = self.name(f"/{scope}/{op_type}")
        outs = [f"{name}_output_{i}" for i in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def const_node(self, value, scope: str, dtype=None) -> str:
        """A Constant node, as torch.onnx.export emits them (counts as a node)."""
        np = self.np
        arr = np.asarray(value, dtype=dtype)
        name = self.name(f"/{scope}/Constant")
        out = f"{name}_output_0"
        t = self.helper.make_tensor(out + "_value", self.helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape, arr.flatten().tolist())
        self.nodes.append(self.helper.make_node("Constant", [], [out], name=name, value=t))
        return out

    def scalar(self, value: float, dtype: str = "float32") -> str:
        """A shared small initializer (e.g. epsilon, 2.0, sqrt(2))."""
        key = (value, dtype)
        if key not in self._scalars:
            np = self.np
            name = self.name(f"const_{dtype}_{str(value).replace('.', 'p').replace('-', 'm')}")
            arr = np.asarray(value, dtype=dtype)
            self.initializers.append(self.helper.make_tensor(name, self.helper.np_dtype_to_tensor_dtype(arr.dtype), (), [arr.item()]))
            self._scalars[key] = name
        return self._scalars[key]

    # weights ----------------------------------------------------------------
    def weight(self, name: str, shape: tuple[int, ...], scale: float = 0.02, fill: float | None = None) -> str:
        """A float32 initializer; >= 1 KiB goes to the external data file, written immediately."""
        from onnx import TensorProto

        np = self.np
        count = math.prod(shape)
        t = TensorProto()
        t.name = name
        t.data_type = TensorProto.FLOAT
        t.dims.extend(shape)
        nbytes = count * 4
        # generate in chunks of <= 4M floats (16 MB) so no big matrix is ever whole in memory
        chunk = 1 << 22
        pad = 0 if nbytes < INLINE_LIMIT else (-self.offset) % ALIGN
        if pad:
            self.data_file.write(b"\0" * pad)
            self.offset += pad
        raw = []
        for start in range(0, count, chunk):
            n = min(chunk, count - start)
            if fill is not None:
                arr = np.full(n, fill, dtype=np.float32)
            else:
                arr = self.rng.standard_normal(n, dtype=np.float32)
                arr *= np.float32(scale)
            if nbytes < INLINE_LIMIT:
                raw.append(arr.tobytes())
            else:
                self.data_file.write(memoryview(arr).cast("B"))
        if nbytes < INLINE_LIMIT:
            t.raw_data = b"".join(raw)
        else:
            t.data_location = TensorProto.EXTERNAL
            for k, v in (("location", self.data_name), ("offset", str(self.offset)), ("length", str(nbytes))):
                e = t.external_data.add()
                e.key, e.value = k, v
            self.offset += nbytes
        self.initializers.append(t)
        return name

    # composite pieces ---------------------------------------------------------
    def layer_norm(self, x: str, hidden: int, scope: str) -> str:
        """LayerNorm decomposed the way older exporters emit it (9 nodes)."""
        mean = self.op("ReduceMean", [x], scope, axes=[-1], keepdims=1)
        d = self.op("Sub", [x, mean], scope)
        sq = self.op("Pow", [d, self.scalar(2.0)], scope)
        var = self.op("ReduceMean", [sq], scope, axes=[-1], keepdims=1)
        ve = self.op("Add", [var, self.scalar(1e-5)], scope)
        std = self.op("Sqrt", [ve], scope)
        y = self.op("Div", [d, std], scope)
        g = self.weight(f"{scope}.weight", (hidden,), fill=1.0)
        b = self.weight(f"{scope}.bias", (hidden,), fill=0.0)
        y = self.op("Mul", [y, g], scope)
        return self.op("Add", [y, b], scope)

    def linear(self, x: str, n_in: int, n_out: int, scope: str) -> str:
        w = self.weight(f"{scope}.weight", (n_in, n_out))
        b = self.weight(f"{scope}.bias", (n_out,), scale=0.01)
        y = self.op("MatMul", [x, w], scope)
        return self.op("Add", [y, b], scope)

    def dim(self, x: str, axis: int, scope: str) -> str:
        """Shape -> Gather(axis) -> Unsqueeze: a 1-element int64 tensor holding x.shape[axis]."""
        s = self.op("Shape", [x], scope)
        idx = self.const_node(axis, scope, dtype="int64")
        g = self.op("Gather", [s, idx], scope, axis=0)
        ax = self.const_node([0], scope, dtype="int64")
        return self.op("Unsqueeze", [g, ax], scope)

    def block(self, x: str, hidden: int, heads: int, i: int) -> str:
        sc = f"layers.{i}"
        hd = hidden // heads
        h = self.layer_norm(x, hidden, f"{sc}/ln_1")
        att = f"{sc}/attn"
        q = self.linear(h, hidden, hidden, f"{att}/q_proj")
        k = self.linear(h, hidden, hidden, f"{att}/k_proj")
        v = self.linear(h, hidden, hidden, f"{att}/v_proj")
        b = self.dim(h, 0, att)
        s = self.dim(h, 1, att)
        nh = self.const_node([heads], att, dtype="int64")
        hdc = self.const_node([hd], att, dtype="int64")
        shp = self.op("Concat", [b, s, nh, hdc], att, axis=0)
        qh = self.op("Transpose", [self.op("Reshape", [q, shp], att)], att, perm=[0, 2, 1, 3])
        kh = self.op("Transpose", [self.op("Reshape", [k, shp], att)], att, perm=[0, 2, 3, 1])
        vh = self.op("Transpose", [self.op("Reshape", [v, shp], att)], att, perm=[0, 2, 1, 3])
        scores = self.op("MatMul", [qh, kh], att)
        scores = self.op("Div", [scores, self.scalar(float(math.sqrt(hd)))], att)
        probs = self.op("Softmax", [scores], att, axis=-1)
        ctx = self.op("MatMul", [probs, vh], att)
        ctx = self.op("Transpose", [ctx], att, perm=[0, 2, 1, 3])
        hc = self.const_node([hidden], att, dtype="int64")
        shp2 = self.op("Concat", [b, s, hc], att, axis=0)
        ctx = self.op("Reshape", [ctx, shp2], att)
        o = self.linear(ctx, hidden, hidden, f"{att}/o_proj")
        x = self.op("Add", [x, o], sc)
        h = self.layer_norm(x, hidden, f"{sc}/ln_2")
        mlp = f"{sc}/mlp"
        u = self.linear(h, hidden, 4 * hidden, f"{mlp}/fc_in")
        # erf GELU: 0.5 * u * (1 + erf(u / sqrt(2)))
        e = self.op("Erf", [self.op("Div", [u, self.scalar(1.4142135381698608)], mlp)], mlp)
        e = self.op("Add", [e, self.scalar(1.0)], mlp)
        g = self.op("Mul", [self.op("Mul", [u, e], mlp), self.scalar(0.5)], mlp)
        d = self.linear(g, 4 * hidden, hidden, f"{mlp}/fc_out")
        return self.op("Add", [x, d], sc)


def _block_nodes() -> int:
    """Node count of one block, measured by building a tiny one without a data file."""
    import io

    b = _Builder(io.BytesIO(), "x", 0)
    b.block("x", 16, 1, 0)
    return len(b.nodes)


def plan(nodes: int, weights_gb: float) -> dict:
    """Choose block count, hidden size and vocabulary so node count is exact and weights ~= target."""
    per_block = _block_nodes()
    # fixed nodes: embedding Gather (1) + final LN (9) + LM head MatMul (1)
    fixed = 11
    blocks = max(1, (nodes - fixed) // per_block)
    pad = nodes - fixed - blocks * per_block
    if pad < 0:
        raise SystemExit(f"--nodes {nodes} is too small (one block alone is {per_block + fixed} nodes)")
    target = int(weights_gb * 1e9)
    # per block: 12 H^2 weights (+ biases), ~90% of the budget; embedding (tied LM head) takes the rest
    hidden = int(math.sqrt(0.9 * target / (48 * blocks)))
    hidden = max(16, hidden // 16 * 16)
    heads = max(1, hidden // 64)
    while hidden % heads:
        heads -= 1
    block_bytes = 4 * (12 * hidden * hidden + 13 * hidden)  # 6 matrices, 6 biases (9H), 2 LN (4H)
    rest = target - blocks * block_bytes - 4 * 2 * hidden
    vocab = max(16, rest // (4 * hidden))
    return {
        "nodes": nodes,
        "weights_gb": weights_gb,
        "blocks": blocks,
        "nodes_per_block": per_block,
        "pad_nodes": pad,
        "hidden": hidden,
        "heads": heads,
        "vocab": int(vocab),
        "opset": 17,
        "seed": 0,
        "builder_version": BUILDER_VERSION,
    }


def build_model(out_dir: Path, nodes: int, weights_gb: float, name: str = "model") -> tuple[Path, dict]:
    """Build (or reuse) `out_dir/name.onnx` + `name.onnx.data`. Returns (model path, params)."""
    from onnx import TensorProto, helper

    out_dir.mkdir(parents=True, exist_ok=True)
    params = plan(nodes, weights_gb)
    model_path = out_dir / f"{name}.onnx"
    data_name = f"{name}.onnx.data"
    params_path = out_dir / f"{name}.params.json"
    if model_path.exists() and (out_dir / data_name).exists() and params_path.exists():
        try:
            if json.loads(params_path.read_text()).get("plan") == params:
                print(f"reusing {model_path} ({nodes} nodes, {weights_gb} GB)", file=sys.stderr)
                return model_path, json.loads(params_path.read_text())
        except ValueError:
            pass
    print(f"building {model_path}: {params}", file=sys.stderr)
    t0 = time.perf_counter()
    H, heads, V = params["hidden"], params["heads"], params["vocab"]
    tmp_data = out_dir / (data_name + ".tmp")
    with open(tmp_data, "wb") as f:
        b = _Builder(f, data_name, params["seed"])
        ids = "input_ids"
        emb = b.weight("embed_tokens.weight", (V, H))
        x = b.op("Gather", [emb, ids], "embed_tokens", axis=0)
        for i in range(params["blocks"]):
            x = b.block(x, H, heads, i)
        x = b.layer_norm(x, H, "norm")
        # pad to the exact node count with cheap elementwise ops (Mul by 1 / Add 0 alternately)
        for j in range(params["pad_nodes"]):
            x = b.op("Mul" if j % 2 == 0 else "Add", [x, b.scalar(1.0 if j % 2 == 0 else 0.0)], "pad")
        # a small classification-style head keeps the output tensor small
        head = b.weight("lm_head.weight", (H, 16))
        logits = b.op("MatMul", [x, head], "lm_head")
        weights_bytes = b.offset
    graph = helper.make_graph(
        b.nodes,
        "bench_transformer",
        [helper.make_tensor_value_info(ids, TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["batch", "sequence", 16])],
        initializer=b.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", params["opset"])], producer_name="onnxdoctor-bench", ir_version=8
    )
    assert len(model.graph.node) == nodes, (len(model.graph.node), nodes)
    tmp_model = out_dir / (name + ".onnx.tmp")
    with open(tmp_model, "wb") as f:
        f.write(model.SerializeToString())
    os.replace(tmp_data, out_dir / data_name)
    os.replace(tmp_model, model_path)
    info = {
        "plan": params,
        "node_count": len(model.graph.node),
        "initializers": len(model.graph.initializer),
        "model_bytes": model_path.stat().st_size,
        "data_bytes": (out_dir / data_name).stat().st_size,
        "weights_bytes": weights_bytes,
        "build_seconds": round(time.perf_counter() - t0, 2),
    }
    params_path.write_text(json.dumps(info, indent=2))
    print(f"built in {info['build_seconds']} s: {info}", file=sys.stderr)
    return model_path, info


# ----------------------------------------------------------------------------
# Measurement
# ----------------------------------------------------------------------------

# Runs ONE command in a child process and reports that child's wall time and peak memory.
# Each measurement gets its own wrapper process, so RUSAGE_CHILDREN covers exactly one run.
# ru_maxrss of RUSAGE_CHILDREN is the peak of the LARGEST waited-for descendant (KiB on Linux), not a
# sum: `onnxdoctor check` runs shape inference in a helper process, so the wrapper also samples, every
# 2 ms, the summed RSS of the command's whole process tree (/proc) and reports its peak.
WRAPPER = r"""
import json, os, resource, subprocess, sys, threading, time
cmd = json.loads(sys.argv[1])

def tree_rss_kb(pid):
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            with open(f"/proc/{p}/task/{p}/children") as f:
                stack.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            pass
    return total

load1 = os.getloadavg()[0]
peak = [0]
t0 = time.perf_counter()
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], tree_rss_kb(p.pid))
        time.sleep(0.002)
th = threading.Thread(target=sample, daemon=True)
th.start()
out, err = p.communicate()
wall = time.perf_counter() - t0
done.set()
th.join()
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "loadavg_1min_before": load1, "maxrss_kb": ru.ru_maxrss, "tree_rss_peak_kb": peak[0],
                  "user": ru.ru_utime, "sys": ru.ru_stime,
                  "rc": p.returncode, "stdout_bytes": len(out),
                  "stdout_tail": out.decode(errors="replace")[-2000:],
                  "stderr_tail": err.decode(errors="replace")[-2000:]}))
"""

FLOOR_SRC = (
    "import sys, onnx\n"
    "m = onnx.load(sys.argv[1], load_external_data=False)\n"
    "m = onnx.shape_inference.infer_shapes(m)\n"
    "print(len(m.graph.node), len(m.graph.value_info))\n"
)


def inline_copy(path: Path) -> Path:
    """`path`'s model with every weight inline, written once next to it (model-inline.onnx)."""
    import onnx

    target = path.with_name(path.stem + "-inline.onnx")
    if target.exists() and target.stat().st_mtime >= path.stat().st_mtime:
        return target
    print(f"writing {target} (weights inline)", file=sys.stderr)
    m = onnx.load(str(path))  # with the external data
    for t in m.graph.initializer:
        t.data_location = onnx.TensorProto.DEFAULT
        del t.external_data[:]
    onnx.save(m, str(target))
    return target


def _one_run(cmd: list[str], label: str, tag: str) -> dict:
    p = subprocess.run([sys.executable, "-c", WRAPPER, json.dumps(cmd)], capture_output=True, text=True, check=True)
    r = json.loads(p.stdout)
    print(f"  {label or cmd[0]}: {tag}: {r['wall']:.3f} s, {r['maxrss_kb'] * 1024 / 1e6:.0f} MB, rc={r['rc']}", file=sys.stderr)
    return r


def measure(cmd: list[str], runs: int, warmup: int = 1, label: str = "") -> dict:
    for i in range(warmup):
        _one_run(cmd, label, f"warmup {i + 1}")
    return _summary(cmd, [_one_run(cmd, label, f"run {i + 1}") for i in range(runs)], runs)


def measure_interleaved(cmds: dict[str, list[str]], runs: int, warmup: int = 1) -> dict[str, dict]:
    """The commands in turn, round after round: on a machine whose speed drifts, every command sees
    the same conditions, so their ratios mean something."""
    for i in range(warmup):
        for label, cmd in cmds.items():
            _one_run(cmd, label, f"warmup {i + 1}")
    samples: dict[str, list[dict]] = {label: [] for label in cmds}
    for i in range(runs):
        for label, cmd in cmds.items():
            samples[label].append(_one_run(cmd, label, f"round {i + 1}"))
    return {label: _summary(cmds[label], samples[label], runs) for label in cmds}


def _summary(cmd: list[str], samples: list[dict], runs: int) -> dict:
    walls = [s["wall"] for s in samples]
    rss = [s["maxrss_kb"] * 1024 / 1e6 for s in samples]  # MB (10^6 bytes), as in the target
    tree = [s["tree_rss_peak_kb"] * 1024 / 1e6 for s in samples]
    return {
        "cmd": cmd,
        "runs": runs,
        "wall_median_s": statistics.median(walls),
        "wall_min_s": min(walls),
        "rss_median_mb": statistics.median(rss),
        "rss_max_mb": max(rss),
        "tree_rss_median_mb": statistics.median(tree),
        "tree_rss_max_mb": max(tree),
        "cpu_median_s": statistics.median(s["user"] + s["sys"] for s in samples),
        "user_median_s": statistics.median(s["user"] for s in samples),
        "sys_median_s": statistics.median(s["sys"] for s in samples),
        "loadavg_1min_max": max(s["loadavg_1min_before"] for s in samples),
        "rc": sorted({s["rc"] for s in samples}),
        "stdout_bytes": samples[-1]["stdout_bytes"],
        "stdout_tail": samples[-1]["stdout_tail"][-1000:],
        "stderr_tail": samples[-1]["stderr_tail"][-1000:],
        "samples": samples,
    }


def machine_info(python: str) -> dict:
    def ver(mod: str) -> str:
        try:
            out = subprocess.run(
                [python, "-c", f"import importlib.metadata as m; print(m.version({mod!r}))"],
                capture_output=True, text=True, check=True,
            )
            return out.stdout.strip()
        except subprocess.CalledProcessError:
            return "not installed"

    cpu = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except FileNotFoundError:
        cpu = platform.processor()
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    py = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True).stdout.strip()
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        rev = ""
    return {
        "repo_head": rev,
        "python": py,
        "onnxdoctor": ver("onnxdoctor"),
        "onnx": ver("onnx"),
        "onnxruntime": ver("onnxruntime"),
        "polygraphy": ver("polygraphy"),
        "numpy": ver("numpy"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "mem_total": mem,
        "platform": platform.platform(),
    }


def find_tool(name: str, override: str | None) -> list[str] | None:
    if override:
        return shlex.split(override)
    here = Path(sys.executable).parent / name
    if here.exists():
        return [str(here)]
    found = shutil.which(name)
    return [found] if found else None


def fmt_row(name: str, r: dict | None) -> str:
    if r is None:
        return f"| {name} | skipped | | | | | | | |"
    return (
        f"| {name} | {r['wall_median_s']:.3f} | {r['wall_min_s']:.3f} | {r['cpu_median_s']:.3f} | {r['rss_median_mb']:.0f} | "
        f"{r['rss_max_mb']:.0f} | {r['tree_rss_max_mb']:.0f} | {r['runs']} | {r['loadavg_1min_max']:.2f} |"
    )


HEADER = ("| command | wall median (s) | wall min (s) | CPU user+sys median (s) | peak RSS median (MB) | peak RSS max (MB) "
          "| all processes: peak summed RSS max (MB) | runs | max load avg before a run |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def _write(out: Path, stem: str, results: dict) -> None:
    """`stem.json` (latest) plus a timestamped copy, so a partial re-run does not lose earlier numbers."""
    results["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = json.dumps(results, indent=2)
    (out / f"{stem}.json").write_text(text)
    (out / f"{stem}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json").write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=20000, help="node count of the generated model (default 20000)")
    ap.add_argument("--weights-gb", type=float, default=1.3, help="external weights, GB (default 1.3)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default bench/out/, gitignored)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per command (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs per command (default 1)")
    ap.add_argument("--poly-runs", type=int, default=1, help="timed runs of polygraphy check lint (default 1; 0 skips)")
    ap.add_argument("--onnxdoctor", default=None, help="command for onnxdoctor (default: console script beside this python, or on PATH)")
    ap.add_argument("--polygraphy", default=None, help="command for polygraphy (default: console script beside this python, or on PATH)")
    ap.add_argument("--inline", action="store_true",
                    help="measure on a copy of the model with its weights inline (one file, as torch.onnx.export "
                         "writes models under 2 GB) instead of external data; --weights-gb must stay under 2")
    ap.add_argument("--compare", action="append", default=[], metavar="CMD",
                    help="another onnxdoctor command (e.g. an older build: 'env PYTHONPATH=DIR python -m onnxdoctor') "
                         "whose check is measured in the same rounds, for an A/B comparison on a drifting machine "
                         "(repeatable: several builds)")
    ap.add_argument("--skip-check", action="store_true", help="do not run onnxdoctor (e.g. before the CLI exists)")
    ap.add_argument("--build-only", action="store_true", help="only build the model(s)")
    ap.add_argument("--scaling", action="store_true", help="time check at --scaling-nodes with small weights instead")
    ap.add_argument("--scaling-nodes", default="5000,10000,20000,40000", help="node counts for --scaling")
    ap.add_argument("--scaling-weights-gb", type=float, default=0.01, help="weights for --scaling models (default 0.01)")
    args = ap.parse_args(argv)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    od = None if args.skip_check else find_tool("onnxdoctor", args.onnxdoctor)
    if od is None and not args.skip_check and not args.build_only:
        print("onnxdoctor console script not found: `pip install .` first, or pass --onnxdoctor / --skip-check", file=sys.stderr)
        return 2
    info = machine_info(sys.executable)
    results: dict = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}}

    if args.scaling:
        rows = []
        for n in [int(x) for x in args.scaling_nodes.split(",")]:
            path, minfo = build_model(out, n, args.scaling_weights_gb, name=f"scaling_{n}")
            if args.build_only:
                continue
            row = {"nodes": n, "model": minfo}
            row["floor"] = measure([sys.executable, "-c", FLOOR_SRC, str(path)], args.runs, args.warmup, f"floor {n}")
            if od:
                row["check"] = measure(od + ["check", str(path), "--format", "json"], args.runs, args.warmup, f"check {n}")
            rows.append(row)
        if args.build_only:
            return 0
        results["scaling"] = rows
        lines = [
            "| nodes | check wall median (s) | check CPU median (s) | check peak RSS (MB) | floor wall median (s) "
            "| floor CPU median (s) | floor peak RSS (MB) | check CPU ms per extra 1k nodes | floor CPU ms per extra 1k nodes "
            "| max load avg before a run |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        base = rows[0]
        for r in rows:

            def slope(key: str) -> str:
                # marginal CPU cost relative to the smallest model: ms per additional 1,000 nodes
                # (CPU time, not wall: less sensitive to other load on the machine)
                if r is base or not r.get(key) or not base.get(key):
                    return ""
                dt = r[key]["cpu_median_s"] - base[key]["cpu_median_s"]
                return f"{1000 * dt / ((r['nodes'] - base['nodes']) / 1000):.1f}"

            c, f = r.get("check"), r["floor"]
            cells = [f"{r['nodes']}"]
            cells += [f"{c['wall_median_s']:.3f}", f"{c['cpu_median_s']:.3f}", f"{c['rss_median_mb']:.0f}"] if c else ["-", "-", "-"]
            cells += [f"{f['wall_median_s']:.3f}", f"{f['cpu_median_s']:.3f}", f"{f['rss_median_mb']:.0f}", slope("check"), slope("floor")]
            cells.append(f"{max(x['loadavg_1min_max'] for x in (c, f) if x):.2f}")
            lines.append("| " + " | ".join(cells) + " |")
        table = "\n".join(lines)
        _write(out, "scaling", results)
        print(table)
        print(f"\nresults: {out / 'scaling.json'}", file=sys.stderr)
        return 0

    path, minfo = build_model(out, args.nodes, args.weights_gb)
    if args.inline:
        path = inline_copy(path)
        minfo = dict(minfo, inline=True, model_bytes=path.stat().st_size, data_bytes=0)
    results["model"] = minfo
    if args.build_only:
        return 0
    cmds = {
        "python -c 'import onnx'": [sys.executable, "-c", "import onnx"],
        "floor: onnx.load(no ext data) + infer_shapes": [sys.executable, "-c", FLOOR_SRC, str(path)],
    }
    if od:
        cmds["onnxdoctor check --format json"] = od + ["check", str(path), "--format", "json"]
        cmds["onnxdoctor check --format json -j 1 (one process, no helper)"] = (
            od + ["check", str(path), "--format", "json", "-j", "1"])
        cmds["onnxdoctor check --format json --trt all (every release)"] = (
            od + ["check", str(path), "--format", "json", "--trt", "all"])
    for other in args.compare:
        cmds["compared: " + other + " check --format json"] = shlex.split(other) + [
            "check", str(path), "--format", "json"]
    m = measure_interleaved(cmds, args.runs, args.warmup)
    poly = find_tool("polygraphy", args.polygraphy)
    if poly and args.poly_runs > 0:
        m["polygraphy check lint"] = measure(poly + ["check", "lint", str(path)], args.poly_runs, 0, "polygraphy lint")
    results["measurements"] = m
    _write(out, "results-inline" if args.inline else "results", results)

    print(f"model: {path} — {minfo['node_count']} nodes, {minfo['initializers']} initializers, "
          f"model file {minfo['model_bytes'] / 1e6:.1f} MB, external data {minfo['data_bytes'] / 1e9:.3f} GB")
    print(f"machine: {info['cpu']}, {info['usable_cores']} cores, {info['mem_total']}; python {info['python']}, "
          f"onnx {info['onnx']}, onnxruntime {info['onnxruntime']}, polygraphy {info['polygraphy']}, onnxdoctor {info['onnxdoctor']} (repo HEAD {info['repo_head']})")
    print()
    print(HEADER)
    for k, r in m.items():
        print(fmt_row(k, r))
    c = m.get("onnxdoctor check --format json")
    if c:
        ok_t = c["wall_median_s"] < 1.0
        mem = max(c["rss_max_mb"], c["tree_rss_max_mb"])  # all processes of the command
        ok_m = mem < 300
        scope = " (defined for the external-data model; for reference)" if args.inline else ""
        print(f"\ntarget (<1 s, <300 MB){scope}: wall {'PASS' if ok_t else 'FAIL'} ({c['wall_median_s']:.3f} s), "
              f"memory {'PASS' if ok_m else 'FAIL'} ({mem:.0f} MB, all processes); exit codes {c['rc']}")
    a = m.get("onnxdoctor check --format json --trt all (every release)")
    if a:
        print(f"target --trt all (<3 s): wall {'PASS' if a['wall_median_s'] < 3.0 else 'FAIL'} "
              f"({a['wall_median_s']:.3f} s); exit codes {a['rc']}")
    print(f"\nresults: {out / ('results-inline.json' if args.inline else 'results.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
