"""Optimization profiles for dynamic inputs, and the ready-to-run `trtexec` command (`onnxdoctor profile`).

Every dynamic graph input gets a min/opt/max shape, taken in this order from:

1. ``flag``: a `--shape NAME:MIN:OPT:MAX` (or `NAME:DIMS`) for that input;
2. ``shared-dim``: a symbolic dim name (e.g. `batch`, `sequence`) that a flagged input also uses:
   inputs sharing a dim name must agree on it, or the engine cannot be built;
3. ``default``, per dim:

   - batch-like dims: **1 / 1 / 8** — a name containing `batch`, or `N`, `B`, `bs`; an unnamed or
     otherwise-named dim at position 0 of an input of rank 2 or more;
   - every other dynamic dim (sequence, length, height, ...): **1 / 128 / 512**.

   A default chosen for a dim name is reused for every input with that name, so `input_ids` and
   `attention_mask` sharing `batch`/`sequence` always get identical shapes.

The `trtexec` line adds `--stronglyTyped` on 10.x targets (the recommended mode there), no
precision flag on 11.x targets (strong typing is the only mode; `--fp16`, `--int8`, `--best` no
longer exist), and on earlier targets the builder precision flag for an explicit `--precision`.
"""

from __future__ import annotations

import re
import shlex

from .errors import UsageError
from .model import Model
from .shapes import ShapeSpec
from .target import Target

BATCH_DEFAULT = (1, 1, 8)
OTHER_DEFAULT = (1, 128, 512)

_BATCH_NAMES = re.compile(r"(?i)^(n|b|bs)$|batch")
_OTHER_NAMES = re.compile(r"(?i)seq|len|token|past|total|height|width|time|frame")
_PRECISION_FLAGS = {"fp16": "--fp16", "bf16": "--bf16", "int8": "--int8", "fp8": "--fp8"}


def _default_for(name: str | None, index: int, rank: int) -> tuple[int, int, int]:
    if name and _BATCH_NAMES.search(name):
        return BATCH_DEFAULT
    if name and _OTHER_NAMES.search(name):
        return OTHER_DEFAULT
    return BATCH_DEFAULT if index == 0 and rank >= 2 else OTHER_DEFAULT


def _shown_dims(shape) -> list:
    return [d if isinstance(d, (int, str)) else "?" for d in shape]


def build_profile(model: Model, target: Target, specs: dict[str, ShapeSpec], engine: str = "model.engine", *,
                  proto=None) -> dict:
    """A min/opt/max profile for every dynamic input of `model` and the `trtexec` command that builds it.

    With `proto` (the model with its weights), the shapes come from the input oracle and min, opt
    and max are each run in ONNX Runtime; the profile says which ran (`validation`). Without it,
    the name-based defaults above are used and the profile says it was not validated.

    Raises UsageError when `specs` name an input the model does not have, or disagree with its rank
    or fixed dims."""
    g = model.main
    path = model.path if model.path and model.path != "<memory>" else "model.onnx"
    candidates = [n for n in g.inputs if n not in g.initializers]
    notes: list[str] = []
    for name, spec in specs.items():
        if name not in candidates:
            known = ", ".join(candidates) or "none"
            raise UsageError(f"{path}: --shape names input {name!r}, which the model does not have (inputs: {known})")
        t = g.types.get(name)
        if t is None or t.kind != "tensor":
            raise UsageError(f"{path}: --shape: input {name!r} is not a tensor")
        if t.shape is not None:
            if len(t.shape) != len(spec.min):
                raise UsageError(f"{path}: --shape {name}: model input has rank {len(t.shape)}, got {len(spec.min)} dims")
            for i, d in enumerate(t.shape):
                if isinstance(d, int) and not (spec.min[i] == spec.opt[i] == spec.max[i] == d):
                    raise UsageError(f"{path}: --shape {name}: dimension {i} is fixed to {d} in the model")

    # symbolic dim name -> (min, opt, max, source, input it came from)
    symbols: dict[str, tuple[tuple[int, int, int], str, str]] = {}
    for name, spec in specs.items():
        shape = g.types.get(name).shape  # type: ignore[union-attr]
        for i, d in enumerate(shape or ()):
            if isinstance(d, str):
                value = (spec.min[i], spec.opt[i], spec.max[i])
                if d in symbols and symbols[d][0] != value:
                    notes.append(f"dim {d!r} is {_mom(symbols[d][0])} for {symbols[d][2]!r} but {_mom(value)} for {name!r}; "
                                 "inputs sharing a dim name must agree")
                else:
                    symbols.setdefault(d, (value, "flag", name))

    inputs: list[dict] = []
    for name in candidates:
        t = g.types.get(name)
        if t is None or t.kind != "tensor":
            continue
        if name in specs:
            spec = specs[name]
            if t.shape is not None and t.is_static:
                continue  # a static input needs no shape flags
            inputs.append({"name": name, "dims": _shown_dims(t.shape) if t.shape is not None else None,
                           "min": list(spec.min), "opt": list(spec.opt), "max": list(spec.max), "source": "flag"})
            continue
        if t.shape is None:
            notes.append(f"input {name!r} has no declared shape (unknown rank): give it with --shape {name}:MIN:OPT:MAX")
            continue
        if t.is_static:
            continue
        lo, opt, hi = [], [], []
        sources = set()
        for i, d in enumerate(t.shape):
            if isinstance(d, int):
                value = (d, d, d)
            elif isinstance(d, str) and d in symbols:
                value, src, _ = symbols[d]
                sources.add("shared-dim" if src == "flag" else "default")
            else:
                value = _default_for(d, i, len(t.shape))
                sources.add("default")
                if isinstance(d, str):
                    symbols[d] = (value, "default", name)
            lo.append(value[0])
            opt.append(value[1])
            hi.append(value[2])
        inputs.append({"name": name, "dims": _shown_dims(t.shape), "min": lo, "opt": opt, "max": hi,
                       "source": "default" if "default" in sources else "shared-dim"})

    validation: dict = {"validated": False, "reason": "not asked (no model weights given)"}
    if proto is not None and inputs:
        validation = _validate(proto, path, specs, inputs, notes)
    elif proto is not None:
        validation = {"validated": True, "reason": "all inputs are static"}
    return {
        "model": path,
        "trt": target.trt,
        "inputs": inputs,
        "trtexec": _trtexec(path, target, inputs, engine, notes),
        "validation": validation,
        "notes": notes,
    }




def _over_budget(oracle, shapes: dict[str, tuple[int, ...]], budget) -> str | None:
    """Why these shapes are not run (their tensors, sized from inferred shapes, need more than the
    command's activation limit), or None."""
    if budget is None:
        return None
    need = oracle.activation_peak(shapes)
    if need <= budget.activation_bytes:
        return None
    return (f"not run: its tensors need ~{need / 2**20:,.0f} MB, over the activation limit of "
            f"{budget.activation_mb:g} MB (--activation-limit)")


def _validate(proto, path: str, specs: dict[str, ShapeSpec], inputs: list[dict], notes: list[str]) -> dict:
    """Replace the default shapes by the input oracle's and run min, opt and max in ONNX Runtime.
    Flagged shapes are kept as given and only run. `inputs` is updated in place."""
    from . import prove as proving
    from .budget import OverMemory, active
    from .errors import OnnxDoctorError
    from .inputs import InputOracle

    try:
        oracle = InputOracle(proto, path=path)
        sess = proving.session(proto)
    except OnnxDoctorError as e:
        return _unvalidated(notes, str(e))
    except Exception as e:  # noqa: BLE001 - ONNX Runtime cannot load it: say so, keep the defaults
        return _unvalidated(notes, f"ONNX Runtime cannot load the model ({' '.join(str(e).split())[:160]})")
    names = [o.name for o in sess.get_outputs()]
    flagged: dict[int, tuple[int, int, int]] = {}
    for name, spec in specs.items():
        for axis, slot in enumerate(oracle.slots.get(name, ())):
            if not isinstance(slot, int):
                flagged.setdefault(slot.key, (spec.min[axis], spec.opt[axis], spec.max[axis]))
    tried: list[dict] = []

    budget = active()
    over_limit: list[str] = []  # the shapes not run (or stopped) for the activation limit

    def run(point: dict[int, int], label: str) -> bool:
        shapes = oracle.shapes_at(point)
        err = _over_budget(oracle, shapes, budget)
        if err is None:
            try:
                err = oracle.try_run(sess, names, shapes)
            except OverMemory as e:  # grew past the limit while running (sizes inference could not see)
                err = str(e)
                over_limit.append(label)
        else:
            over_limit.append(label)
        tried.append({"point": label, "shapes": _shapes_text(shapes), "ran": err is None, **({"error": err} if err else {})})
        return err is None

    lo = None
    for level in oracle.levels()[:10]:
        point = {k: flagged[k][0] if k in flagged else v for k, v in level.items()}
        if run(point, "min"):
            lo = point
            break
    if lo is None:
        return _unvalidated(notes, "no candidate shape ran in ONNX Runtime (see tried): the shapes are onnxdoctor's "
                                   "defaults; give them with --shape NAME:MIN:OPT:MAX", tried)
    # opt grows from the first candidate that ran (the proof's size), min shrinks from it
    opt = _grow(oracle, lo, flagged, 1, _opt_choices, lambda p: run(p, "opt"))
    hi = _grow(oracle, opt, flagged, 2, _max_choices, lambda p: run(p, "max"), tries=4)
    lo = _grow(oracle, lo, flagged, 0, _min_choices, lambda p: run(p, "min"))
    ran = {"min": True, "opt": True, "max": True}
    for label, point, which in (("min", lo, 0), ("opt", opt, 1), ("max", hi, 2)):
        if any(point.get(k) != v[which] for k, v in flagged.items()):
            ran[label] = False
    if not all(ran.values()):
        notes.append("a --shape profile point did not run in ONNX Runtime (see validation.tried); "
                     "the others are onnxdoctor's and ran")
    if over_limit:
        notes.append(f"larger shapes were not run: their activations would take more than {budget.activation_mb:g} MB "
                     "(raise --activation-limit to validate them)")
    by_name = {i["name"]: i for i in inputs}
    mins, opts, maxs = oracle.shapes_at(lo), oracle.shapes_at(opt), oracle.shapes_at(hi)
    for name, row in by_name.items():
        if name not in mins or row["source"] == "flag":
            continue
        row["min"], row["opt"], row["max"] = list(mins[name]), list(opts[name]), list(maxs[name])
        vars_ = [s for s in oracle.slots[name] if not isinstance(s, int)]
        if vars_ and all(v.key in flagged for v in vars_):
            row["source"] = "shared-dim"
        else:
            row["source"] = "oracle"
            row["why"] = [f"dim {s.places[0][1] if s.places[0][0] == name else '?'}: {_role_text(s)}" for s in vars_]
    return {"validated": all(ran.values()), "ran": ran, "tried": tried}


def _role_text(var) -> str:
    text = var.role
    if var.role == "spatial" and var.multiple > 1:
        text += f", multiple of {var.multiple} (total stride)"
    if var.hint:
        text += f", {var.hint_source}"
    if len(var.places) > 1:
        text += f", tied: {var.label()}"
    return text


def _unvalidated(notes: list[str], reason: str, tried: list | None = None) -> dict:
    notes.append(f"shapes not validated: {reason}")
    return {"validated": False, "reason": reason, **({"tried": tried} if tried else {})}


def _opt_choices(var, start: int) -> list[int]:
    """opt: the size the model carries (metadata), else a typical size that the stride divides."""
    from .inputs import _TYPICAL_SEQUENCE, _TYPICAL_SPATIAL

    if var.role == "batch":
        return [1]
    if var.hint:
        return [var.hint]
    want = _TYPICAL_SPATIAL if var.role == "spatial" else _TYPICAL_SEQUENCE
    sizes = [c for c in var.candidates() if c >= start]
    above = [c for c in sizes if c >= want]
    below = sorted((c for c in sizes if c < want), reverse=True)
    return above[:2] + below


def _min_choices(var, start: int) -> list[int]:
    """min: smaller than the first candidate that ran, smallest first — one token for a decoder,
    a 48-pixel text line for a recogniser trained on 48 (the proof's candidates start larger)."""
    if var.role == "batch":
        return []
    if var.role == "spatial":
        m = max(var.multiple, 1)
        return sorted(s for s in {16, 32, 48} | {m * k for k in range(1, 4)} if 16 <= s < start)
    return [s for s in (1, 2, 4, 8) if s < start]


def _max_choices(var, start: int) -> list[int]:
    """max: batch 8, 4, 2; other dims 4x their opt (a spatial dim at least 1024), then 2x, 1.5x,
    1.25x — multiples of the stride."""
    if var.role == "batch":
        return [b for b in (8, 4, 2) if b > start]
    m = max(var.multiple, 1)
    first = max(4 * start, 1024) if var.role == "spatial" else 4 * start
    grow = [-(-int(x) // m) * m for x in (first, 2 * start, 1.5 * start, 1.25 * start)]
    return list(dict.fromkeys(g for g in grow if g > start))


def _grow(oracle, base: dict[int, int], flagged: dict, which: int, choices, run, tries: int = 3) -> dict[int, int]:
    """From `base` (a point that ran), move one free variable at a time (batch last) to the first of
    its choices that still runs, at most `tries` tries each. Flagged variables take their
    given value (`which`: 1 opt, 2 max) first; when that does not run, the point is kept and
    the caller reports it."""
    point = dict(base)
    trial = {**point, **{k: flagged[k][which] for k in flagged if k in point}}
    if trial != point and run(trial):
        point = trial
    free = [k for k in base if k not in flagged]
    # Batch dims move together: inputs that share a batch must agree even where the graph does not
    # show the tie (an RNN state's batch inside a branch). They move last: a size that does not run
    # fails sooner at batch 1.
    groups = [[k] for k in free if oracle.vars[k].role != "batch"] + [[k for k in free if oracle.vars[k].role == "batch"]]
    for group in (g for g in groups if g):
        lead = group[0]
        for value in [c for c in choices(oracle.vars[lead], base[lead]) if c != point[lead]][:tries]:
            if run({**point, **{k: value for k in group}}):
                point.update({k: value for k in group})
                break
    return point


def _shapes_text(shapes: dict) -> str:
    return " ".join(f"{n}:{'x'.join(map(str, s)) or 'scalar'}" for n, s in shapes.items())


def _mom(value) -> str:
    return "/".join(str(v) for v in value)


def _shape_arg(inputs: list[dict], key: str) -> str:
    parts = []
    for inp in inputs:
        name = inp["name"]
        # trtexec splits on ':' and ','; such names must be wrapped in single quotes
        shown = f"'{name}'" if re.search(r"[:,']", name) else name
        parts.append(f"{shown}:{'x'.join(str(d) for d in inp[key])}")
    return ",".join(parts)


def _trtexec(path: str, target: Target, inputs: list[dict], engine: str, notes: list[str]) -> str:
    args = ["trtexec", f"--onnx={path}"]
    if inputs:
        for flag, key in (("--minShapes", "min"), ("--optShapes", "opt"), ("--maxShapes", "max")):
            args.append(f"{flag}={_shape_arg(inputs, key)}")
    args.append(f"--saveEngine={engine}")
    major = int(target.trt.split(".")[0])
    if major >= 11:
        pass  # strongly typed is the only mode: precision lives in the ONNX graph
    elif major == 10:
        args.append("--stronglyTyped")
        if target.precision and target.precision != "fp32":
            notes.append(f"strongly typed: the engine runs in the graph's own types; for {target.precision}, convert "
                         "the ONNX model to mixed precision instead of using a builder flag")
    elif target.precision in _PRECISION_FLAGS:
        if target.precision in ("bf16", "fp8") and major < 9:
            notes.append(f"TensorRT {target.trt} has no {target.precision} builder flag")
        else:
            args.append(_PRECISION_FLAGS[target.precision])
    return " ".join(shlex.quote(a) for a in args)


def render_text(profile: dict) -> str:
    """The profile as a short human-readable block ending with the trtexec command."""
    lines = [f"{profile['model']} (TensorRT {profile['trt']})"]
    inputs = profile["inputs"]
    if not inputs:
        lines.append("  all inputs are static: no optimization profile needed")
    else:
        width = max(len(i["name"]) for i in inputs)
        for i in inputs:
            dims = ", ".join(str(d) for d in i["dims"]) if i["dims"] is not None else "rank unknown"
            shapes = "  ".join(f"{k} {'x'.join(str(d) for d in i[k])}" for k in ("min", "opt", "max"))
            lines.append(f"  {i['name']:<{width}}  [{dims}]  {shapes}  ({i['source']})")
    v = profile.get("validation") or {}
    if inputs and v.get("ran"):
        ran = v["ran"]
        lines.append("  ONNX Runtime: " + ", ".join(f"{k} {'ran' if ran[k] else 'did NOT run'}" for k in ("min", "opt", "max")))
    for note in profile.get("notes", ()):
        lines.append(f"  note: {note}")
    lines.append("")
    lines.append(profile["trtexec"])
    return "\n".join(lines) + "\n"
