"""Repair rate of `onnxdoctor fix` over the project's own rule case models (issue 14).

    PYTHONPATH=src /work/venv/bin/python bench/repair_rate.py [--releases 8.6,10.15,latest]
        [--only TRT101,TRT102] [--jobs 2] [--doc docs/repair-rate.md] [--unsafe-fixes]

Models: every `kind: fail` case of tests/cases/*.yaml (the failing model of each rule, written per
release boundary), de-duplicated by model text and case options (--precision, --plugin, --shape,
external data). For each release V among --releases:

1. `check --trt V` (all rules, the case's options, no configuration). A model with at least one
   error at V is *flagged* at V; the others do not count at V.
2. `fix --trt V` with the same options, the default ruleset and default safety (no
   --unsafe-fixes unless asked), proving every rewrite in ONNX Runtime as the CLI does.
3. *Repaired*: the fixed model has no error at V and the final proof passed (every output equal
   to the original's within fix's tolerance: in ONNX Runtime, or in onnx.reference when ONNX Runtime
   refuses a valid model). A model no runtime here runs cannot be proven, so it is never counted
   repaired; neither is one that is invalid ONNX (counted apart: `onnxdoctor.refeval.invalid_onnx`).

Also reported per release: the flagged models whose every error names an exact (safe) rewrite in
its `fix` field — the issue's target is that all of them are repaired — and, for every model not
repaired, why (remaining errors, rolled-back rewrites, an original ONNX Runtime cannot run).

Writes bench/out/repair-rate/results.json; with --doc, also the markdown page (docs/repair-rate.md).
Runs in-process through onnxdoctor's Python API (the same calls the CLI makes), one model at a time,
or in --jobs worker processes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CASES = REPO / "tests" / "cases"
OUT = HERE / "out" / "repair-rate"


def collect(only: set[str] | None) -> list[dict]:
    """One entry per distinct failing model (text + options), with the cases it comes from."""
    import yaml

    models: dict[tuple, dict] = {}
    for path in sorted(CASES.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        rule = data["rule"]
        if only and rule not in only:
            continue
        for case in data["cases"]:
            if case["kind"] != "fail":
                continue
            opts = {
                "precision": case.get("precision"),
                "plugins": sorted(case.get("plugins", ())),
                "shapes": list(case.get("shapes", ())),
                "external": case.get("external"),
            }
            key = (case["model"], json.dumps(opts, sort_keys=True))
            entry = models.setdefault(key, {"model": case["model"], "options": opts, "cases": []})
            entry["cases"].append(f"{rule}::{case['id']}")
    return list(models.values())


def _materialize(entry: dict, folder: Path) -> Path:
    """Write the case model (with its external-data setup, as tests/test_cases.py does) to `folder`."""
    import onnx
    import onnx.numpy_helper
    import onnx.parser

    model = onnx.parser.parse_model(entry["model"])
    for spec in entry["options"]["external"] or ():
        t = next(t for t in model.graph.initializer if t.name == spec["tensor"])
        nbytes = len(t.raw_data) if t.raw_data else onnx.numpy_helper.to_array(t).nbytes
        t.ClearField("raw_data")
        for field in ("float_data", "int32_data", "int64_data", "double_data"):
            t.ClearField(field)
        t.data_location = onnx.TensorProto.EXTERNAL
        for k, v in (("location", spec["location"]), ("offset", "0"), ("length", str(nbytes))):
            e = t.external_data.add()
            e.key, e.value = k, v
        if "file_bytes" in spec:
            (folder / spec["location"]).write_bytes(b"\0" * spec["file_bytes"])
    path = folder / "model.onnx"
    onnx.save(model, path)
    return path


def _errors(findings) -> list:
    from onnxdoctor.findings import Severity

    return [f for f in findings if f.severity == Severity.ERROR]


def _invalid_onnx(entry: dict) -> str | None:
    """Why the case model is not valid ONNX (onnx.checker's full check, strict shape inference, the
    specs' stated constraints: onnxdoctor.refeval.invalid_onnx), or None."""
    import onnx.parser

    from onnxdoctor.refeval import invalid_onnx

    return invalid_onnx(onnx.parser.parse_model(entry["model"]))


def _describe(f) -> dict:
    return {"code": f.code, "node": f.location.node or f.location.tensor or "model", "message": f.message,
            "fix": f.fix.rewrite if f.fix else None, "applicability": str(f.fix.applicability) if f.fix else None}


def _quiet() -> None:
    """ONNX Runtime logs kernel failures of the originals it cannot run (the record says why)."""
    try:
        import onnxruntime

        onnxruntime.set_default_logger_severity(4)
    except ImportError:
        pass


def run_one(args: tuple[dict, str, bool]) -> dict:
    """Check and fix one model for one release; the result record."""
    entry, release, unsafe = args
    _quiet()
    import onnxdoctor
    from onnxdoctor.errors import OnnxDoctorError
    from onnxdoctor.findings import Applicability
    from onnxdoctor.fix import FixOptions, fix_model, load_for_fix

    opts = entry["options"]
    rec = {"cases": entry["cases"], "release": release, "options": {k: v for k, v in opts.items() if v and k != "external"}}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = _materialize(entry, Path(tmp))
            report = onnxdoctor.check(str(path), trt=release, plugins=opts["plugins"], precision=opts["precision"],
                                      shapes=opts["shapes"] or None, config=False, select=None)
        except OnnxDoctorError as e:
            rec.update(flagged=True, repaired=False, exact=False, outcome="unreadable",
                       reason=f"check cannot read the model: {' '.join(str(e).split())[:200]}", errors=[])
            return rec
        errors = _errors(report.findings)
        rec["errors"] = [_describe(f) for f in errors]
        rec["invalid_onnx"] = _invalid_onnx(entry)
        rec["flagged"] = bool(errors)
        rec["exact"] = bool(errors) and all(f.fix is not None and f.fix.applicability == Applicability.SAFE for f in errors)
        if not errors:
            rec.update(repaired=None, outcome="not flagged")
            return rec
        try:
            proto, _external = load_for_fix(path)
            res = fix_model(proto, FixOptions(trt=release, precision=opts["precision"], plugins=tuple(opts["plugins"]),
                                              shapes=tuple(opts["shapes"]), unsafe=unsafe))
        except OnnxDoctorError as e:
            msg = " ".join(str(e).replace(f"{tmp}/", "").split())  # the temporary folder differs per run
            outcome = "not provable" if "does not run in ONNX Runtime" in msg else "fix error"
            rec.update(repaired=False, outcome=outcome, reason=msg[:300])
            return rec
        except Exception as e:  # noqa: BLE001 - a crash is a result to report, not a reason to stop
            rec.update(repaired=False, outcome="crash", reason=f"{type(e).__name__}: {e}"[:300])
            return rec
        after = _errors(res.after)
        rec["applied"] = sorted({s.rewrite for s in res.steps if s.status == "applied"})
        rec["rolled_back"] = sorted({f"{s.rewrite}: {s.reason}"[:240] for s in res.steps if s.status == "rolled-back"})
        rec["remaining"] = [_describe(f) for f in after]
        proof_ok = res.proof is not None and res.proof.passed
        rec["repaired"] = not after and proof_ok
        if rec["repaired"]:
            rec["outcome"] = "repaired"
        elif not after:
            rec["outcome"] = "proof failed"
            rec["reason"] = res.proof.summary() if res.proof is not None else "nothing proven"
        else:
            rec["outcome"] = "errors remain"
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    return rec


def resolve_releases(spec: str) -> list[str]:
    from onnxdoctor.kb import knowledge_base

    kb = knowledge_base()
    out = []
    for r in spec.split(","):
        r = r.strip()
        out.append(kb.versions[-1] if r == "latest" else kb.resolve(r))
    return list(dict.fromkeys(out))


def summarize(records: list[dict], releases: list[str]) -> dict:
    out = {}
    for rel in releases:
        recs = [r for r in records if r["release"] == rel and r.get("flagged")]
        exact = [r for r in recs if r.get("exact")]
        provable = [r for r in recs if classify(r)[0] not in _UNPROVABLE]
        exact_valid = [r for r in exact if not r.get("invalid_onnx")]
        out[rel] = {
            "flagged": len(recs),
            "repaired": sum(1 for r in recs if r["repaired"]),
            "invalid_onnx": sum(1 for r in recs if r.get("invalid_onnx")),
            "provable": len(provable),
            "exact_flagged": len(exact),
            "exact_repaired": sum(1 for r in exact if r["repaired"]),
            "exact_valid": len(exact_valid),
            "exact_valid_repaired": sum(1 for r in exact_valid if r["repaired"]),
            "outcomes": dict(Counter(r["outcome"] for r in recs)),
        }
    return out


def _git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        return sha + ("+uncommitted changes" if dirty else "")
    except OSError:
        return "unknown"


def _why(r: dict) -> str:
    if r.get("invalid_onnx") and r["outcome"] in ("fix error", "not provable"):
        return f"the model is invalid ONNX: {r['invalid_onnx']}; no rewrite can be proven"
    text = _why_valid(r)
    return text + (f" (and the model is invalid ONNX: {r['invalid_onnx']})" if r.get("invalid_onnx") else "")


def _why_valid(r: dict) -> str:
    if r["outcome"] in ("not provable", "fix error", "crash", "unreadable", "proof failed"):
        return f"{r['outcome']}: {r.get('reason', '')}"
    parts = []
    codes = Counter(e["code"] for e in r.get("remaining", []))
    for code, n in codes.items():
        e = next(x for x in r["remaining"] if x["code"] == code)
        fix = f" (names `{e['fix']}`)" if e["fix"] else " (no rewrite)"
        parts.append(f"{code}{' ×' + str(n) if n > 1 else ''}{fix}: {e['message']}")
    text = "; ".join(parts)
    if r.get("rolled_back"):
        text += " — rolled back: " + "; ".join(r["rolled_back"])
    return text


# Why a flagged model is not repaired: the first class whose test matches, in this order. Each test
# reads the record (errors before, errors remaining, the fix's own error message).
def _codes_left(r: dict) -> set[str]:
    return {e["code"] for e in (r.get("remaining") or r.get("errors") or [])}


def _texts_left(r: dict) -> str:
    return " ".join(e["message"] for e in (r.get("remaining") or r.get("errors") or []))


CLASSES: list[tuple[str, object, str]] = [
    ("model is invalid ONNX", lambda r: bool(r.get("invalid_onnx")) and r["outcome"] in ("fix error", "not provable"),
     "The model is not valid ONNX: `onnx.checker`'s full check or strict shape inference refuses it (a "
     "type outside the operator's type constraints, such as INT32 Hardmax or BOOL Add; a 3-D Attention "
     "without `q_num_heads`, or a hidden size num_heads does not divide; duplicate definitions; an "
     "attribute of the wrong kind; an opset no ONNX release defines; a top-level input or output without "
     "a shape, whose rank IR.md requires), or it breaks a constraint the "
     "operator's specification states in words (an Attention mask of rank above 4, floating-point Mod with "
     "fmod=0). Such a model has no defined meaning, so no runtime's output is its reference and no rewrite "
     "can be proven equal to it: re-export it valid."),
    ("missing weights", lambda r: "MOD502" in _codes_left(r) and r["outcome"] == "fix error",
     "The external data file is missing or too short: the weights are not there, so there is nothing "
     "to rewrite or run (supply the data)."),
    ("no proof inputs", lambda r: "cannot generate values of type" in r.get("reason", "") or r["outcome"] == "crash",
     "A graph input of a type ONNX Runtime inputs cannot be generated for (BF16, FP8, FP4, string, "
     "complex): `fix` needs `--data`; the type is on the interface anyway."),
    ("original does not run in ONNX Runtime", lambda r: r["outcome"] in ("fix error", "not provable"),
     "Valid ONNX that ONNX Runtime cannot load or run, and that the fallback runtime (`onnx.reference`, "
     "used for the reference outputs when ONNX Runtime refuses a valid model) cannot run either or "
     "refuses (a DequantizeLinear axis outside the tensor, 4-D pooling, an op onnx.reference does not "
     "implement for that opset): no rewrite can be proven equal to it."),
    ("type at the interface", lambda r: bool(_codes_left(r) & {"TRT111", "TRT151"}) and any(
        e["message"].startswith(("input ", "output ")) for e in r.get("remaining", [])),
     "A type TensorRT cannot hold (INT16, a sequence, an optional) on a graph input or output: changing "
     "it changes the model's interface. Cast or restructure at export."),
    ("rewrite within tolerance only", lambda r: bool(r.get("remaining")) and all(
        e["fix"] and e["applicability"] == "unsafe" for e in r["remaining"]),
     "Every remaining error names a rewrite proven only within a tolerance (ONNX Runtime's dynamic or "
     "static quantization to float ops or symmetric INT8, MatMulNBits' weights dequantized): safe mode "
     "does not apply it; `--unsafe-fixes` does (the second table counts what that repairs)."),
    ("quantization format", lambda r: bool(_codes_left(r) & {"TRT125", "PRC311"}) and "TopK" not in _texts_left(r)
     or "zero_point" in _texts_left(r) or "INT4" in _texts_left(r) or "FLOAT8" in _texts_left(r)
     or "QuantizeLinear" in _texts_left(r) or "DequantizeLinear" in _texts_left(r) or "Dropout" in _texts_left(r)
     or "type BFLOAT16" in _texts_left(r)
     or ("TRT113" in _codes_left(r)),
     "Quantization or training formats the release cannot import (asymmetric zero points, UINT8 Q/DQ "
     "data, INT4/FP8/BF16/UINT32 values computed inside the network before the release has the type, Dropout "
     "in training mode), where no rewrite (or not one for every error) applies: a value computed in a "
     "type the release lacks has no exact equivalent in another type, and a Dropout that is random at "
     "run time has none at all."),
    ("value known only at run time", lambda r: "TRT122" in _codes_left(r),
     "A value the importer needs at build time comes from a graph input or a dynamic dimension, and no "
     "graph of constant-parameter ops computes the same: OneHot's depth is its output's size; Pad axes "
     "holding several run-time values (before 10.3). Only `--shape` or a different export makes it a "
     "constant. (A single run-time Reduce/Squeeze/Unsqueeze/Slice/CumSum axis is repaired by "
     "`runtime-axis-to-if`, a run-time InstanceNormalization scale by `instance-norm-to-reductions`.)"),
    ("dynamic Squeeze without axes", lambda r: "Squeeze without axes" in _texts_left(r),
     "Squeeze without axes on a dynamic shape: which dimensions go (so the output's rank) depends on run-time "
     "sizes. An equivalent graph exists only for fixed shapes (`--shape`)."),
    ("TensorRT limits", lambda r: "TRT124" in _codes_left(r) or "TopK K must not exceed" in _texts_left(r),
     "Beyond what TensorRT can represent: tensors of more than 8 dimensions (no layer holds them), 5-D "
     "GridSample before 11.x (no volumetric sampling layer). (A DeformConv with 3 spatial dimensions is "
     "repaired by `deform-conv-3d-to-gathers`; TopK with K above 3840 is repaired by "
     "`topk-in-rounds`, 6-D InstanceNormalization by `instance-norm-to-reductions`.)"),
    ("control flow", lambda r: "TRT141" in _codes_left(r),
     "If branches whose outputs differ in rank under a run-time condition (the output's rank depends "
     "on data), a Loop with scan outputs and no trip count (its length is known only at run time): no "
     "equivalent graph. (Ifs nested deeper than the parser accepts are flattened by `inline-constant-if` "
     "when they repeat an enclosing condition.)"),
    ("no equivalent graph", lambda r: "Unique" in _texts_left(r) or "ScatterND reduction" in _texts_left(r),
     "Unique (its output size depends on the data) and ScatterND with a reduction (duplicate indices "
     "accumulate in an order-dependent way): no equivalent graph of imported ops; a plugin is the route."),
    ("no rewrite yet", lambda r: True,
     "An equivalent graph may exist, but no rewrite produces it by default yet (see the errors): an "
     "integer Pow with a run-time exponent (computed in FLOAT it is exact only below 2^24; repeated "
     "multiplication needs the exponent's range), Pow mixing FLOAT16 and FLOAT in a strongly typed network, "
     "integer Gemm (MatMul has `integer-matmul-to-mul-reduce-sum`, Gemm not yet), Resize scaling an outer "
     "dimension (a Resize over a transposed layout would be equivalent)."),
]


# Classes whose original cannot be run (so no rewrite can be proven equal to it).
_UNPROVABLE = frozenset({"missing weights", "no proof inputs", "original does not run in ONNX Runtime",
                         "model is invalid ONNX"})


def classify(r: dict) -> tuple[str, str]:
    for name, test, why in CLASSES:
        if test(r):
            return name, why
    raise AssertionError("the last class matches everything")


def render_doc(summary: dict, records: list[dict], releases: list[str], commit: str, unsafe: bool,
               unsafe_summary: dict | None = None) -> str:
    lines = [
        "# Repair rate of `onnxdoctor fix`",
        "",
        "<!-- Generated by `bench/repair_rate.py --doc docs/repair-rate.md`; edit the script, not this page. -->",
        "",
        "How many of the models `check` flags with errors does `fix --trt V` turn into models with no",
        "error at V whose outputs are equal in ONNX Runtime? Measured over the project's own rule case",
        "models: every `kind: fail` case of `tests/cases/*.yaml` (one minimal model per rule and release",
        "boundary; duplicates merged), checked and fixed with the case's options and the default ruleset"
        + (" with `--unsafe-fixes`." if unsafe else " and default safety (no `--unsafe-fixes`)."),
        "A model counts at release V when `check --trt V` reports at least one error for it; it is",
        "*repaired* when the fixed model has no error at V and the final proof passed. *Exact rewrite",
        "listed*: flagged models whose every error names a safe (exactly equivalent) rewrite in its fix.",
        "Proofs run in ONNX Runtime; when it refuses a valid model (an op, type or form it does not",
        "implement), the reference outputs come from `onnx.reference` instead (see docs/fix.md).",
        "Some flagged models are *invalid ONNX* (onnx.checker's full check or strict shape inference",
        "refuses them, or they break a constraint the operator's specification states): they have no",
        "defined meaning, so no rewrite can be proven equal to them; they stay in the denominator and are",
        "counted in their own column. Others cannot be run at all (inputs that cannot be generated, missing",
        "weights, configurations no runtime here runs), so the rate is also given among the models whose",
        "original runs.",
        "",
        f"Commit: `{commit}`. Reproduce: `PYTHONPATH=src python bench/repair_rate.py --doc docs/repair-rate.md`.",
        "",
        "| TensorRT | flagged models | repaired | rate | invalid ONNX | whose original runs | rate among those | exact rewrite listed | of those repaired | exact, valid ONNX | of those repaired |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rel in releases:
        s = summary[rel]
        rate = s["repaired"] / s["flagged"] if s["flagged"] else 0.0
        prate = s["repaired"] / s["provable"] if s["provable"] else 0.0
        lines.append(f"| {rel} | {s['flagged']} | {s['repaired']} | {rate:.0%} | {s['invalid_onnx']} | {s['provable']} | "
                     f"{prate:.0%} | {s['exact_flagged']} | {s['exact_repaired']} | {s['exact_valid']} | "
                     f"{s['exact_valid_repaired']} |")
    if unsafe_summary:
        lines += ["", "The same with `--unsafe-fixes` (rewrites proven within a looser tolerance also apply: ONNX",
                  "Runtime's dynamic and static quantization to float or symmetric INT8, DOUBLE to FLOAT):", "",
                  "| TensorRT | flagged models | repaired | rate |", "|---|---|---|---|"]
        for rel in releases:
            u = unsafe_summary[rel]
            lines.append(f"| {rel} | {u['flagged']} | {u['repaired']} | {u['repaired'] / u['flagged'] if u['flagged'] else 0:.0%} |")
    lines += ["", "Target (issue 14): at least half of the flagged models at 8.6 and at 10.15, and every model",
              "whose errors all name an exact rewrite (an invalid model has no meaning to preserve: those are",
              "listed, not counted as repairable).", ""]
    for rel in releases:
        missed = [r for r in records if r["release"] == rel and r.get("flagged") and r.get("exact") and not r["repaired"]]
        if missed:
            kinds = Counter(classify(r)[0] for r in missed)
            lines.append(f"- {rel}: the {len(missed)} exact-rewrite model(s) not repaired: "
                         + ", ".join(f"{n} {k}" for k, n in kinds.most_common())
                         + " (" + ", ".join(f"`{r['cases'][0]}`" for r in missed) + ").")
    lines.append("")
    for rel in releases:
        recs = [r for r in records if r["release"] == rel and r.get("flagged") and not r["repaired"]]
        lines += [f"## Not repaired at {rel} ({len(recs)})", ""]
        by_class: dict[str, list[dict]] = defaultdict(list)
        why_of: dict[str, str] = {}
        for r in recs:
            name, why = classify(r)
            by_class[name].append(r)
            why_of[name] = why
        lines += ["| why | models |", "|---|---|"]
        for name in sorted(by_class, key=lambda n: -len(by_class[n])):
            lines.append(f"| {name} | {len(by_class[name])} |")
        lines.append("")
        for name in sorted(by_class, key=lambda n: -len(by_class[n])):
            lines += [f"### {name} ({len(by_class[name])})", "", why_of[name], ""]
            for r in sorted(by_class[name], key=lambda r: r["cases"][0]):
                lines.append(f"- `{r['cases'][0]}`{' (+' + str(len(r['cases']) - 1) + ')' if len(r['cases']) > 1 else ''}: {_why(r)}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--releases", default="8.6,10.15,latest")
    ap.add_argument("--only", default="", help="comma-separated rule codes (case files) to include")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--unsafe-fixes", action="store_true")
    ap.add_argument("--doc", default=None, help="write the markdown page here (e.g. docs/repair-rate.md)")
    ap.add_argument("--out", default=str(OUT))
    ns = ap.parse_args(argv)
    releases = resolve_releases(ns.releases)
    entries = collect({c.strip().upper() for c in ns.only.split(",") if c.strip()} or None)
    tasks = [(e, rel, ns.unsafe_fixes) for rel in releases for e in entries]
    print(f"{len(entries)} distinct failing case models x {len(releases)} releases ({', '.join(releases)})", file=sys.stderr)
    t0 = time.perf_counter()
    records: list[dict] = []
    if ns.jobs > 1:
        with ProcessPoolExecutor(ns.jobs) as pool:
            for i, rec in enumerate(pool.map(run_one, tasks, chunksize=4), 1):
                records.append(rec)
                if i % 50 == 0:
                    print(f"  {i}/{len(tasks)}", file=sys.stderr)
    else:
        for i, t in enumerate(tasks, 1):
            records.append(run_one(t))
            if i % 50 == 0:
                print(f"  {i}/{len(tasks)}", file=sys.stderr)
    summary = summarize(records, releases)
    commit = _git_commit()
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"commit": commit, "releases": releases, "unsafe_fixes": ns.unsafe_fixes,
                                                  "seconds": round(time.perf_counter() - t0, 1), "summary": summary,
                                                  "records": records}, indent=1))
    for rel in releases:
        s = summary[rel]
        rate = s["repaired"] / s["flagged"] if s["flagged"] else 0.0
        print(f"TensorRT {rel}: {s['repaired']}/{s['flagged']} flagged models repaired ({rate:.0%}; "
              f"{s['repaired']}/{s['provable']} of those whose original runs; {s['invalid_onnx']} invalid ONNX); "
              f"exact rewrite listed: {s['exact_repaired']}/{s['exact_flagged']} "
              f"(valid ONNX: {s['exact_valid_repaired']}/{s['exact_valid']}); {s['outcomes']}")
    if ns.doc:
        unsafe_summary = None
        if not ns.unsafe_fixes:  # the page also shows the --unsafe-fixes rates
            print("again with --unsafe-fixes for the page", file=sys.stderr)
            extra = [run_one((e, rel, True)) for rel in releases for e in entries]
            unsafe_summary = summarize(extra, releases)
        Path(ns.doc).write_text(render_doc(summary, records, releases, commit, ns.unsafe_fixes, unsafe_summary))
        print(f"wrote {ns.doc}", file=sys.stderr)
    print(f"results: {out / 'results.json'} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
