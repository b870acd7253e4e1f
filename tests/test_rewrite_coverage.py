"""Every rewrite is tested on small generated models for the four things issue 14 asks: it applies
where it should, not where it should not, its proof passes, and its result passes onnx.checker's
full check.

Where the positive examples are (each runs `fix` or the rewrite and asserts all of: applied, proof
passed in ONNX Runtime — or onnx.reference where ONNX Runtime lacks the op —, full check):

- a `fix:` case in tests/cases/*.yaml (tests/test_cases.py::test_fix_case: fix at the case's release
  applies the rewrite, no error and no finding of the rule remain, full check, proof passed);
- a substitution case in tests/test_substitutions.py (CASES: the op is gone, full check, outputs
  within 1e-5 of the original's, the finding gone);
- EXAMPLES below, for the rewrites neither covers (fix with the option that asks for them).

"Not where it should not": every rewrite applied to plain models that hold none of the patterns
(test_rewrites_leave_plain_models_alone), besides each family's own near-miss tests (skips with a
reason) in its test file. test_every_rewrite_has_a_proven_example keeps the table complete: a new
rewrite without an example fails it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from onnxdoctor.fix import FixOptions, fix_model
from onnxdoctor.rewrites import RewriteContext, all_rewrites
from onnxdoctor.target import Target

CASES_DIR = Path(__file__).parent / "cases"


def _sparse_weight_model() -> onnx.ModelProto:
    w = helper.make_sparse_tensor(numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "w"),
                                  numpy_helper.from_array(np.array([0, 4], np.int64), "w_idx"), [3, 3])
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], sparse_initializer=[w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _dense_model() -> onnx.ModelProto:
    w = numpy_helper.from_array((np.random.default_rng(0).standard_normal((16, 16)) * 0.1).astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 16])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _text(t: str):
    return lambda: onnx.parser.parse_model(t)


# rewrite -> (model builder, fix options): fix applies the rewrite, proves and checks the result.
EXAMPLES: dict[str, tuple] = {
    "freeze-shapes": (_text("""<ir_version: 8, opset_import: ["" : 17]>
        g (float[N,8] x) => (float[N,8] y) { y = Relu(x) }"""), FixOptions(trt="10.15", shapes=("x:2x8",))),
    "densify-sparse-constants": (_sparse_weight_model, FixOptions(trt="10.15")),
    "convert-precision": (_dense_model, FixOptions(trt="10.15", precision="fp16")),
    "einsum-lowercase-labels": (_text("""<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3,5,4] q, float[2,3,6,4] k) => (float[2,3,5,6] y) { y = Einsum<equation = "BHQD,BHKD->BHQK">(q, k) }"""),
        FixOptions(trt="10.15")),
}


def _yaml_fix_rewrites() -> set[str]:
    out = set()
    for path in CASES_DIR.glob("*.yaml"):
        for case in yaml.safe_load(path.read_text())["cases"]:
            if "fix" in case:
                out.add(case["fix"])
    return out


def test_every_rewrite_has_a_proven_example():
    from tests.test_substitutions import CASES as SUBSTITUTION_CASES

    names = {r.name for r in all_rewrites()}
    covered = _yaml_fix_rewrites() | {c.rewrite for c in SUBSTITUTION_CASES} | set(EXAMPLES)
    assert names - covered == set(), f"rewrites without a proven example: {sorted(names - covered)}"
    assert covered - names == set(), f"examples of rewrites that do not exist: {sorted(covered - names)}"
    assert len(names) >= 88


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_applies_is_proven_and_passes_the_full_check(name):
    build, options = EXAMPLES[name]
    res = fix_model(build(), options)
    applied = [s for s in res.steps if s.rewrite == name and s.status == "applied"]
    assert applied and applied[0].proof is not None and applied[0].proof.passed, \
        [(s.rewrite, s.status, s.reason, s.skipped) for s in res.steps]
    assert not [s for s in res.steps if s.rewrite == name and s.status == "rolled-back"]
    assert res.proof is not None and res.proof.passed, res.proof.summary() if res.proof else "no proof"
    onnx.checker.check_model(res.model, full_check=True)
    assert not [f for f in res.after if str(f.severity) == "error"], [(f.code, f.message) for f in res.after]


# Models without any pattern a rewrite looks for: a plain activation, a small CNN head, a dense layer.
PLAIN = {
    "relu": """<ir_version: 8, opset_import: ["" : 17]> g (float[2,8] x) => (float[2,8] y) { y = Relu(x) }""",
    "cnn": """<ir_version: 8, opset_import: ["" : 17]>
        g (float[1,3,8,8] x, float[4,3,3,3] w, float[4] b) => (float[1,4] y) {
          c = Conv<pads = [1, 1, 1, 1]>(x, w, b)
          r = Relu(c)
          p = GlobalAveragePool(r)
          y = Flatten(p)
        }""",
    "dense": """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2,8] x, float[8,4] w) => (float[2,4] y) { m = MatMul(x, w)  y = Sigmoid(m) }""",
}


@pytest.mark.parametrize("release", ["8.6", "11.5"])
@pytest.mark.parametrize("rewrite", all_rewrites(), ids=lambda r: r.name)
def test_rewrites_leave_plain_models_alone(rewrite, release):
    for name, text in PLAIN.items():
        model = onnx.parser.parse_model(text)
        before = model.SerializeToString()
        outcome = rewrite.apply(model, RewriteContext(target=Target.make(release)))
        assert not outcome.changed, (name, outcome.changes)
        assert model.SerializeToString() == before  # the model given is never modified


def _fix_cases() -> list:
    out = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        near_misses = [c for c in data["cases"] if c["kind"] == "pass" and not c.get("external")]
        for case in data["cases"]:
            if "fix" in case and not case.get("external"):
                out.append(pytest.param(case, near_misses, id=f"{data['rule']}::{case['id']}"))
    return out


@pytest.mark.parametrize(("case", "near_misses"), _fix_cases())
def test_a_rewrite_runs_only_where_a_finding_names_it(case, near_misses):
    """Not where it should not: each yaml fix case's model at the releases (8.6, 10.15, the latest)
    where no finding names the case's rewrite (the op is imported there, the form accepted): fix does
    not run it on that model. Where a finding names it at every one of those releases, the rule's
    pass cases (its near misses) at the case's release stand in: fix does not run it on those.
    Rewrites the pipeline also tries unprompted are exempt."""
    import onnxdoctor
    from onnxdoctor.kb import knowledge_base

    rewrite = next(r for r in all_rewrites() if r.name == case["fix"])
    if rewrite.unprompted:
        pytest.skip(f"{rewrite.name} is tried without a finding naming it")
    model = onnx.parser.parse_model(case["model"])
    opts = dict(precision=case.get("precision"), plugins=tuple(case.get("plugins", ())), shapes=tuple(case.get("shapes", ())))
    checked = 0
    for release in dict.fromkeys(("8.6", "10.15", knowledge_base().versions[-1])):
        report = onnxdoctor.check(model, trt=release, config=False, precision=opts["precision"],
                                  plugins=opts["plugins"], shapes=opts["shapes"] or None)
        if any(f.fix is not None and f.fix.rewrite == rewrite.name for f in report.findings):
            continue
        res = fix_model(model, FixOptions(trt=release, unsafe=bool(case.get("unsafe")), **opts))
        # the first iteration runs what the findings of the model as given name (a later one may
        # rightly run it on what another rewrite produced)
        assert rewrite.name not in {s.rewrite for s in res.steps if s.iteration == 1}, release
        checked += 1
    if checked:
        return
    release = str(case["trt"])
    for near in near_misses:
        other = onnx.parser.parse_model(near["model"])
        report = onnxdoctor.check(other, trt=release, config=False, precision=near.get("precision"),
                                  plugins=tuple(near.get("plugins", ())), shapes=tuple(near.get("shapes", ())) or None)
        if any(f.fix is not None and f.fix.rewrite == rewrite.name for f in report.findings):
            continue  # another rule's finding names it there
        # which rewrites run is the question, not their proofs (a near miss may be a model nothing runs)
        res = fix_model(other, FixOptions(trt=release, precision=near.get("precision"), plugins=tuple(near.get("plugins", ())),
                                          shapes=tuple(near.get("shapes", ())), prove=False))
        assert rewrite.name not in {s.rewrite for s in res.steps if s.iteration == 1}, near["id"]
        checked += 1
    if not checked:
        pytest.skip(f"a finding names {rewrite.name} at every release tried, and no near miss of the rule is free of one")
