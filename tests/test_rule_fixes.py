"""rule_fixes: the one rule -> rewrite table agrees with the rewrites' `resolves`, and everything that
shows a rule's fix (findings, rule pages, `rules --format json`, `explain`) reads it."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
import textwrap

import onnx.parser
import pytest

from onnxdoctor import docgen, rule_fixes
from onnxdoctor.api import explain
from onnxdoctor.checks.trt._constraint_rule import ConstraintRule
from onnxdoctor.findings import Fix
from onnxdoctor.fix import FixOptions, fix_model
from onnxdoctor.kb import knowledge_base
from onnxdoctor.registry import BUILTIN_RULES, all_rules, get_rule
from onnxdoctor.rewrites import all_rewrites, get_rewrite
from onnxdoctor.rewrites.substitutions import REWRITES as SUBSTITUTION_REWRITES

RESOLVED = {code for rw in all_rewrites() for code in rw.resolves}


def test_every_resolves_entry_is_in_the_table():
    for rw in all_rewrites():
        for code in rw.resolves:
            assert rw.name in rule_fixes.RULE_FIXES.get(code, ()), f"{rw.name} resolves {code}; RULE_FIXES[{code!r}] lacks it"


def test_every_table_entry_is_a_resolves_entry():
    codes = {r.code for r in all_rules()}
    for code, names in rule_fixes.RULE_FIXES.items():
        assert code in codes, code
        assert names and len(set(names)) == len(names), code
        for name in names:
            assert code in get_rewrite(name).resolves, f"RULE_FIXES[{code!r}] names {name}, whose resolves lacks {code}"


def test_applicability_is_the_rewrites_own():
    assert set(rule_fixes.APPLICABILITY) == {rw.name for rw in all_rewrites() if rw.resolves}
    for rw in all_rewrites():
        if rw.resolves:
            assert rule_fixes.APPLICABILITY[rw.name] == rw.applicability, rw.name


def test_substitutions_are_the_rewrites_ops():
    by_op = {op: rw.name for rw in all_rewrites() for op in rw.ops}
    assert by_op and rule_fixes.SUBSTITUTIONS == by_op
    # the older substitution classes declare their op through op_type/domain
    assert all(rule_fixes.SUBSTITUTIONS[(cls.domain, cls.op_type)] == cls.name for cls in SUBSTITUTION_REWRITES
               if {"TRT101", "TRT102"} & set(cls.resolves))


def test_a_substitution_a_rule_does_not_resolve_is_not_named():
    """TRT113 on a UINT8 weight read only by DynamicQuantizeMatMul: that rewrite resolves TRT102,
    not TRT113, so the TRT113 finding names none (and nothing raises)."""
    assert rule_fixes.substitution_for("TRT102", "DynamicQuantizeMatMul", "com.microsoft").rewrite == \
        "dynamic-quantize-matmul-to-matmul"
    assert rule_fixes.substitution_for("TRT113", "DynamicQuantizeMatMul", "com.microsoft") is None
    assert rule_fixes.substitution_for("TRT113", "MatMulInteger").rewrite == "dynamic-quantization-to-float"


def _fix_by_calls(cls) -> set[str]:
    """The rewrite names a rule's module passes to `fix_by` literally."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.getmodule(cls))))
    return {call.args[0].value for call in ast.walk(tree)
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "fix_by"
            and call.args and isinstance(call.args[0], ast.Constant)}


def test_what_rules_emit_is_in_the_table():
    """The static check behind `fix_by`'s runtime one: a rule that names a rewrite the table does not
    list for it (the freeze-shapes drift of SHP206) fails here even when no case triggers it."""
    named = 0
    for cls in BUILTIN_RULES:
        for name in _fix_by_calls(cls):
            named += 1
            assert name in rule_fixes.RULE_FIXES.get(cls.code, ()), f"{cls.code} emits {name}"
    assert named >= 6  # GRF401 (x2), SHP204 (x2), SHP206, TRT141
    with pytest.raises(ValueError, match="SHP201 findings name rewrite 'freeze-shapes'"):
        get_rule("SHP201").fix_by("freeze-shapes")


def test_rules_make_no_fix_of_their_own():
    """Every Fix a rule's finding carries comes from the table: no module under checks/ builds one, and
    a rule class cannot declare one."""
    import onnxdoctor.checks as checks
    from pathlib import Path

    from onnxdoctor.rule import Rule

    root = Path(checks.__file__).parent
    built = [f"{p.relative_to(root)}:{call.lineno}" for p in sorted(root.rglob("*.py"))
             for call in ast.walk(ast.parse(p.read_text()))
             if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Fix"]
    assert not built, built
    with pytest.raises(TypeError, match="RULE_FIXES"):
        type("R", (Rule,), {"code": "XX001", "fix": Fix("cleanup")})


def test_constraint_fixes_are_in_the_table():
    kb = knowledge_base()
    rules = [r for r in all_rules() if isinstance(r, ConstraintRule) and not r.control_flow]
    seen = 0
    for v in kb.versions:
        for cs in kb.constraints_for(v).values():
            for c in cs:
                fix = c.params.get("fix")
                if fix is None:
                    continue
                seen += 1
                [owner] = [r for r in rules if c.kind in r.kinds]
                assert fix in rule_fixes.RULE_FIXES.get(owner.code, ()), (c.id, owner.code, fix)
    assert seen
    # constant-but-not-an-initializer inputs are folded (constraints.py)
    assert "fold-constants" in rule_fixes.RULE_FIXES["TRT122"]


@pytest.mark.parametrize("code", sorted(RESOLVED))
def test_a_resolved_rule_never_says_fix_none(code):
    rule = get_rule(code)
    assert rule.fixes, code
    page = docgen.rule_page(rule)
    assert "Fix: none" not in page and f"`{rule.fixes[0].rewrite}` ({rule.fixes[0].applicability})" in page
    assert explain(code).splitlines()[1] == "Fix: " + rule_fixes.describe(rule.fixes)


def test_rules_json_lists_the_fixes(run_cli):
    proc = run_cli("rules", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["code"]: r["fixes"] for r in json.loads(proc.stdout)["rules"]}
    for code in rows:
        want = [Fix.to_dict(f) for f in rule_fixes.fixes_for(code)]
        assert rows[code] == want, code
        assert bool(want) == (code in RESOLVED), code
    assert [f["rewrite"] for f in rows["SHP206"]] == ["freeze-shapes"]
    assert {"rewrite": "clamp-fp16-constants", "applicability": "unsafe"} in rows["PRC301"]


def test_rules_has_no_trt_flag(run_cli):
    """`rules --trt` said it showed the rules that can fire for a release and printed the same list
    for every release: the flag is gone (explain says which releases a rule applies to)."""
    proc = run_cli("rules", "--trt", "8.6")
    assert proc.returncode == 2 and "No such option" in proc.stderr


def test_freeze_shapes_resolves_the_expand_finding_it_is_named_by():
    model = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[batch,4] x, float[1,4] e) => (float[batch,4] z) { s = Shape(x) z = Expand(e, s) }
    """)
    res = fix_model(model, FixOptions(trt="10.15", shapes=("x:2x4",)))
    before = [f for f in res.before if f.code == "SHP206"]
    assert before and all(f.fix.rewrite == "freeze-shapes" for f in before)
    assert [s.rewrite for s in res.steps if s.status == "applied"][:1] == ["freeze-shapes"]
    assert not [f for f in res.after if f.code == "SHP206"]
    assert res.proof.passed


_CHECK_IMPORTS = r"""
import sys
from onnxdoctor import _onnx
_onnx.use_light()
from onnxdoctor.api import check
report = check(sys.argv[1], "8.6", config=False, jobs=1)
print([(f.code, f.fix.rewrite if f.fix else None) for f in report.findings])
print(sorted(m for m in sys.modules if m == "onnx" or m.startswith(("onnxdoctor.rewrites", "onnx.helper"))))
"""


def test_a_finding_with_a_substitution_imports_no_rewrite(tmp_path):
    """Naming the Hardmax substitution used to import every rewrite module and onnx (5x the CPU of
    checking a Relu model): the table needs neither."""
    path = tmp_path / "hardmax.onnx"
    path.write_bytes(onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2,5] x) => (float[2,5] y) { y = Hardmax<axis = 1>(x) }
    """).SerializeToString())
    proc = subprocess.run([sys.executable, "-c", _CHECK_IMPORTS, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    findings, modules = proc.stdout.splitlines()
    assert "('TRT101', 'hardmax-to-argmax-onehot')" in findings
    assert modules == "[]"
