"""The fix pipeline: findings → rewrites → proof → re-check, to a fixpoint.

Each iteration checks the current model, collects the rewrites its findings name (filtered by the
ruleset and by fix safety), applies them in phase order, cleans up, and proves each result in
ONNX Runtime against the *original* model's outputs. A rewrite whose result does not run, fails
`onnx.checker`, or differs beyond tolerance is rolled back and not tried again. The loop ends when
no eligible rewrite changes the graph; if it is still changing after `max_iterations`, that is an
error (a pair of rewrites undoing each other must not loop forever).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import onnx

from .engine import analyze
from .errors import OnnxDoctorError, UsageError
from .findings import Applicability, Finding, Severity
from .inputs import InputPlan
from .kb import _load_toml, rules_dir
from .model import from_proto
from .prove import DEFAULT_ATOL, DEFAULT_RTOL, DEFAULT_SEED, ProofResult
from .registry import all_rules
from .target import Target


class FixError(OnnxDoctorError):
    """The pipeline could not complete (no convergence, unprovable original)."""


@dataclass
class FixOptions:
    rules: str = "default"
    trt: str | None = None
    precision: str | None = None
    plugins: tuple[str, ...] = ()
    unsafe: bool = False
    prove: bool = True
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    shapes: tuple[str, ...] = ()
    data: str | None = None
    seed: int = DEFAULT_SEED
    max_iterations: int = 8
    progress: bool = False
    # `--precision fp16|bf16` conversion options (convert-precision): keep_io_types, keep_fp32, max_abs.
    precision_options: dict = field(default_factory=dict)
    path: str = "model"  # the model's file, for messages


@dataclass
class Step:
    rewrite: str
    iteration: int
    status: str  # applied | rolled-back | no-change
    changes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    proof: ProofResult | None = None
    reason: str | None = None  # why it was rolled back
    applicability: str = "safe"
    details: dict | None = None

    def to_dict(self) -> dict:
        d = {"rewrite": self.rewrite, "iteration": self.iteration, "status": self.status, "applicability": self.applicability,
             "changes": self.changes, "skipped": self.skipped}
        if self.proof is not None:
            w = self.proof.worst()
            d["proof"] = {"pass": self.proof.passed, "inconclusive": self.proof.inconclusive is not None,
                          "summary": self.proof.summary(),
                          "max_abs_diff": w.max_abs_diff if w else 0.0, "max_rel_diff": w.max_rel_diff if w else 0.0}
        if self.reason:
            d["reason"] = self.reason
        if self.details is not None:
            d["details"] = self.details
        return d


@dataclass
class FixResult:
    original: onnx.ModelProto
    model: onnx.ModelProto
    target: Target
    before: list[Finding]
    after: list[Finding]
    steps: list[Step]
    iterations: int
    proof: ProofResult | None
    tolerance: tuple[float, float]
    inputs: InputPlan | None = None  # what the proofs ran on, and why
    # Set by onnxdoctor.fix() (api.py), the command's path: the files written, the fail-on level the
    # configuration or ruleset sets, and the node diff when asked.
    written: list[str] = field(default_factory=list)
    fail_on: str = "error"
    diff: dict | None = None

    @property
    def changed(self) -> bool:
        return any(s.status == "applied" for s in self.steps)


@dataclass(frozen=True)
class Ruleset:
    name: str
    select: tuple[str, ...]
    min_severity: Severity
    always: tuple[str, ...]
    fail_on: str | None

    def wants(self, f: Finding, unsafe: bool) -> bool:
        if f.fix is None or f.fix.applicability == Applicability.DISPLAY_ONLY:
            return False
        if f.fix.applicability == Applicability.UNSAFE and not unsafe:
            return False
        if not any(f.code.startswith(p) for p in self.select):
            return False
        return f.severity >= self.min_severity or any(f.code.startswith(p) for p in self.always)


def load_ruleset(spec: str) -> Ruleset:
    """`default`, `strict` (rules/rulesets/*.toml) or a comma-separated list of codes/prefixes."""
    spec = spec.strip()
    path = rules_dir() / "rulesets" / f"{spec}.toml"
    if path.is_file():
        data = _load_toml(path)
        return Ruleset(spec, tuple(data.get("select", ())), Severity.parse(data.get("min-severity", "warning")),
                       tuple(data.get("always", ())), data.get("fail-on"))
    codes = tuple(c.strip().upper() for c in spec.split(",") if c.strip())
    known = [r.code for r in all_rules()]
    bad = [c for c in codes if not any(k.startswith(c) for k in known)]
    if not codes or bad:
        names = sorted(p.stem for p in (rules_dir() / "rulesets").glob("*.toml"))
        raise UsageError(f"--rules {spec!r}: not a ruleset ({', '.join(names)}) nor rule codes" + (f" (unknown: {', '.join(bad)})" if bad else ""))
    return Ruleset(spec, codes, Severity.INFO, (), None)


def fix_model(proto: onnx.ModelProto, options: FixOptions, *, log=None) -> FixResult:
    """Fix an in-memory model (weights loaded). Pure: returns the result, writes nothing."""
    from . import prove as proving
    from .rewrites import Rewrite, RewriteContext, all_rewrites
    from .rewrites._gs import cleaned
    from .shapes import parse_shapes

    log = log or (lambda msg: None)
    specs = parse_shapes(options.shapes) if options.shapes else {}
    frozen = {n: s.opt for n, s in specs.items()}
    target = Target.make(options.trt, precision=options.precision, plugins=options.plugins, shapes=specs)
    ruleset = load_ruleset(options.rules)
    rules = all_rules()

    def check(p: onnx.ModelProto) -> list[Finding]:
        # Analysis reads structure and small constants only: check a copy without the big weights,
        # so shape inference does not serialize hundreds of MB on every re-check.
        return analyze(from_proto(weightless(p)), target, rules)

    before = check(proto)
    feeds = reference = plan = None
    if options.prove:
        from .inputs import plan_inputs

        log("finding inputs the model runs on in ONNX Runtime (reference outputs)")
        plan = plan_inputs(proto, path=options.path, shapes=frozen, data=options.data, seed=options.seed)
        feeds, reference = plan.feeds, plan.outputs
        if reference is None:
            try:
                reference = proving.run(proto, feeds)
            except Exception as e:  # noqa: BLE001
                raise FixError(f"{options.path}: cannot prove rewrites: ONNX Runtime does not run the model on the "
                               f"--data inputs ({' '.join(str(e).split())[:200]}); check the data, or use --no-prove") from None
        log(plan.describe())

    current = proto
    # Rewrites whose results ONNX Runtime can only run through their `proof_model` (BF16 conversion):
    # once applied, every later candidate is proven the same way.
    sticky: list = []

    def runnable(candidate, rw=None, rctx=None):
        m = candidate
        for r, c in sticky:
            m = r.proof_model(m, c)
        return rw.proof_model(m, rctx) if rw is not None else m
    steps: list[Step] = []
    blocked: set[str] = set()
    tol = (options.atol, options.rtol)
    findings = before
    iteration = 0
    rewrites = all_rewrites()
    for iteration in range(1, options.max_iterations + 1):
        wanted = {f.fix.rewrite for f in findings if ruleset.wants(f, options.unsafe)}
        if frozen:
            wanted.add("freeze-shapes")
        # `--precision fp16|bf16` asks for the conversion itself: that request is its consent.
        if options.precision in ("fp16", "bf16"):
            wanted.add("convert-precision")
        todo = [r for r in rewrites if r.name in wanted and r.name not in blocked]
        if not todo:
            break
        progressed = False
        for rw in todo:
            mine = [f for f in findings if f.fix is not None and f.fix.rewrite == rw.name]
            precision_options = dict(options.precision_options)
            if feeds is not None:
                precision_options.setdefault("feeds", feeds)
            ctx = RewriteContext(target=target, findings=mine, shapes=frozen, precision_options=precision_options,
                                 reference=reference)
            try:
                outcome = rw.apply(current, ctx)
            except Exception as e:  # noqa: BLE001 - a rewrite that crashes is rolled back, not fatal
                steps.append(Step(rw.name, iteration, "rolled-back", reason=f"rewrite failed: {type(e).__name__}: {e}"[:300],
                                  applicability=str(rw.applicability)))
                blocked.add(rw.name)
                continue
            if not outcome.changed:
                steps.append(Step(rw.name, iteration, "no-change", skipped=outcome.skipped, applicability=str(rw.applicability)))
                blocked.add(rw.name)
                continue
            try:
                candidate = cleaned(outcome.model)
                # On the real model: the checker insists that external-data stubs point at files.
                onnx.checker.check_model(candidate, full_check=False)
            except Exception as e:  # noqa: BLE001
                steps.append(Step(rw.name, iteration, "rolled-back", outcome.changes, outcome.skipped,
                                  reason=f"result is not a valid ONNX model: {' '.join(str(e).split())[:200]}",
                                  applicability=str(rw.applicability)))
                blocked.add(rw.name)
                continue
            step_tol = tol
            if rw.applicability == Applicability.UNSAFE:
                ra, rr = rw.tolerances(ctx)
                step_tol = (max(tol[0], ra or tol[0]), max(tol[1], rr or tol[1]))
            proof = None
            if options.prove:
                log(f"proving {rw.name}")
                proof = proving.prove(reference, runnable(candidate, rw, ctx), feeds, *step_tol, reference_model=proto)
                if not proof.passed and not proof.inconclusive:
                    steps.append(Step(rw.name, iteration, "rolled-back", outcome.changes, outcome.skipped, proof,
                                      reason=f"outputs differ: {proof.summary()}", applicability=str(rw.applicability)))
                    blocked.add(rw.name)
                    continue
            tol = step_tol
            steps.append(Step(rw.name, iteration, "applied", outcome.changes, outcome.skipped, proof,
                              applicability=str(rw.applicability), details=outcome.details))
            if type(rw).proof_model is not Rewrite.proof_model:
                sticky.append((rw, ctx))
            current = candidate
            progressed = True
        if not progressed:
            break
        findings = check(current)
        # A rewrite that changed the graph may be needed again after others ran.
        blocked -= {s.rewrite for s in steps if s.iteration == iteration and s.status == "no-change"}
    else:
        wanted = {f.fix.rewrite for f in findings if ruleset.wants(f, options.unsafe)} - blocked
        if wanted:
            raise FixError(f"rewrites did not converge after {options.max_iterations} iterations (still wanted: {', '.join(sorted(wanted))})")
    after = findings  # the findings of `current`: every change above was followed by a re-check
    final_proof = None
    if options.prove and current is not proto:
        final_proof = proving.prove(reference, runnable(current), feeds, *tol, reference_model=proto)
    return FixResult(proto, current, target, before, after, steps, iteration, final_proof, tol, plan)


# Initializers above this size are replaced by external-data stubs in `weightless` copies.
_WEIGHTLESS_MIN_BYTES = 1 << 16


def weightless(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose big initializers are external-data stubs (name, type, dims only): enough for
    shape inference, the checker and every rule, at a fraction of the cost. Returns `model` itself
    when nothing is big."""
    big = [i for i, t in enumerate(model.graph.initializer) if len(t.raw_data) > _WEIGHTLESS_MIN_BYTES] \
        if model.ByteSize() > 8 * _WEIGHTLESS_MIN_BYTES else []
    if not big:
        return model
    out = onnx.ModelProto()
    graph = model.graph
    # Copy everything but the initializers, then add stubs or real copies.
    held = list(graph.initializer)
    del graph.initializer[:]
    try:
        out.CopyFrom(model)
    finally:
        graph.initializer.extend(held)
    bigset = set(big)
    for i, t in enumerate(held):
        if i in bigset:
            stub = out.graph.initializer.add()
            stub.name, stub.data_type = t.name, t.data_type
            stub.dims.extend(t.dims)
            stub.data_location = onnx.TensorProto.EXTERNAL
            e = stub.external_data.add()
            e.key, e.value = "location", "in-memory-weights"
        else:
            out.graph.initializer.add().CopyFrom(t)
    return out


def node_diff(before: onnx.ModelProto, after: onnx.ModelProto) -> dict[str, list[str]]:
    """Per-node diff: removed, added and modified nodes (by name, or by op type and outputs when unnamed)."""

    def key(n: onnx.NodeProto) -> str:
        return n.name or f"{n.op_type}->{','.join(n.output)}"

    a = {key(n): n for n in before.graph.node}
    b = {key(n): n for n in after.graph.node}
    removed = [f"{k} ({a[k].op_type})" for k in a if k not in b]
    added = [f"{k} ({b[k].op_type})" for k in b if k not in a]
    modified = [f"{k} ({b[k].op_type})" for k in a if k in b and a[k].SerializeToString() != b[k].SerializeToString()]
    return {"removed": removed, "added": added, "modified": modified}


class Loaded(NamedTuple):
    proto: onnx.ModelProto  # weights loaded
    external: bool  # the file kept weights in external data
    data_files: list[str]  # its external-data files (resolved)


def load_for_fix(path: str | Path) -> tuple[onnx.ModelProto, bool]:
    """(the model with its weights, whether the file kept them in external data): see load_with_weights."""
    loaded = load_with_weights(path)
    return loaded.proto, loaded.external


def load_with_weights(path: str | Path) -> Loaded:
    """Load a model with its weights: every external-data reference validated by the loader (refused,
    missing or short data is an error), then exactly the validated bytes read from the model's folder."""
    from . import external as ext
    from .errors import ModelLoadError
    from .model import load

    model = load(path, infer_shapes=False)
    if model.external_problems:
        tensor, problem = model.external_problems[0]
        raise ModelLoadError(str(path), f"tensor {tensor!r}: {problem}; nothing written")
    proto = model.proto
    files = model.external_files
    for _, t in ext.external_tensors(proto):
        ref = ext.parse_ref(t)  # validated at load: cannot fail here
        resolved = files[ref.location]
        n = ref.length if ref.length is not None else ext.expected_bytes(t)
        if n is None:
            raise ModelLoadError(str(path), f"external data of {ref.tensor!r} names no length and its type has no fixed size")
        try:
            data = ext.read(resolved.path, ref.offset, n)
        except OSError as e:
            raise ModelLoadError(str(path), f"external data of {ref.tensor!r}: cannot read {ref.location!r}: {e.strerror or e}") from None
        t.raw_data = data
        del t.external_data[:]
        t.data_location = onnx.TensorProto.DEFAULT
    return Loaded(proto, bool(model.external), sorted({r.path for r in files.values()}))
