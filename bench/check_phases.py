"""Where `onnxdoctor check` spends its time, phase by phase and rule by rule.

Runs the check pipeline's steps one after another in a fresh interpreter per run (so imports are
measured cold) and reports the median CPU time of each phase over the runs, plus the slowest rules.
CPU time (time.process_time) is used because wall time on a shared VM is noisy; on an idle machine
the two agree for these single-threaded steps. The steps are those of the CLI's `check`, serially:
the CLI runs the two marked "(helper)" in its helper process, in parallel with the others.

    python bench/check_phases.py [MODEL] [--runs 5] [--trt 11.5]

MODEL defaults to bench/out/model.onnx (built by check_speed.py). Timings are of the steps run
serially in one process: the CLI may overlap some of them (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

_CHILD = r"""
import json, os, sys, time, gc
clock = time.process_time
t0 = clock()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the CLI's check does
from onnxdoctor import _onnx
_onnx.use_light()  # as the CLI's check does: onnx's protobuf classes and C++ extension only
_onnx.ModelProto, _onnx.extension()
t1a = clock()
import numpy  # noqa: F401
t1 = clock()
from onnxdoctor import api, engine
from onnxdoctor.model import core, inference, loading, validate
from onnxdoctor.rule import Context
t2 = clock()
gc.disable()
settings = api.Settings(trt=sys.argv[2], select=None, ignore=(), plugins=(), precision=None, shapes=(), fail_on="error")
target, rules = settings.target(), settings.rules()
t3 = clock()
path = sys.argv[1]
data = open(path, "rb").read()
proto = loading._parse(path, data)
t4 = clock()
from pathlib import Path
m = core.Model(proto, path, base_dir=Path(path).resolve().parent)
m.graphs  # as loading._prepare does when the helper infers: views first, their op types serve the tensor walk
t5v = clock()
validate._validate_tensors(m)
t5 = clock()
# what the helper process does (in the CLI, on the second core): inference, then packing the types
import marshal
from onnxdoctor import _typeinfo
inferred = _onnx.infer_shapes(data, strict=True)
t6a = clock()
packed = marshal.dumps(_typeinfo.pack_serialized(inferred))
t6 = clock()
validate._validate(m)
t7a = clock()
inference._fill_packed(m.graphs, marshal.loads(packed))
t7 = clock()
ctx = Context(m, target)
per_rule = {}
findings = 0
for r in rules:
    a = clock()
    findings += len(list(r.check(ctx)))
    per_rule[r.code] = clock() - a
t8 = clock()
print(json.dumps({"phases": {"load onnx protobuf + C++ extension": t1a - t0, "import numpy": t1 - t1a, "import onnxdoctor": t2 - t1, "settings": t3 - t2,
                             "read + parse": t4 - t3, "graph views": t5v - t4, "tensor/external-data validation": t5 - t5v,
                             "shape inference (helper)": t6a - t5, "pack types (helper)": t6 - t6a,
                             "structure (+ text check)": t7a - t6, "attach packed types": t7 - t7a,
                             "rules": t8 - t7, "total": t8 - t0},
                  "rules": per_rule, "findings": findings}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=str(HERE / "out" / "model.onnx"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--trt", default="latest")
    ap.add_argument("--top", type=int, default=12, help="how many of the slowest rules to list")
    args = ap.parse_args()
    samples = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-c", _CHILD, args.model, args.trt], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(out.stderr)
        samples.append(json.loads(out.stdout))
    print(f"{args.model}: median CPU seconds over {args.runs} runs ({samples[0]['findings']} findings)\n")
    print("| phase | CPU median (s) | min (s) |\n|---|---:|---:|")
    for phase in samples[0]["phases"]:
        vals = [s["phases"][phase] for s in samples]
        print(f"| {phase} | {statistics.median(vals):.3f} | {min(vals):.3f} |")
    med = {c: statistics.median(s["rules"][c] for s in samples) for c in samples[0]["rules"]}
    print("\nslowest rules (median ms; a rule that first builds a shared cache pays for it):")
    print(", ".join(f"{c} {v * 1000:.0f}" for c, v in sorted(med.items(), key=lambda kv: -kv[1])[: args.top]))


if __name__ == "__main__":
    main()
