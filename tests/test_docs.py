"""Rule documentation: every rule carries the required sections, and the generated pages are current."""

from __future__ import annotations

from pathlib import Path

import pytest

from onnxdoctor.docgen import generate
from onnxdoctor.registry import all_rules
from onnxdoctor.rule import DOC_HEADINGS

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.code)
def test_rule_doc_has_every_heading(rule):
    sections = rule.doc_sections()
    missing = [h for h in DOC_HEADINGS if not sections.get(h)]
    assert not missing, f"{rule.code} docstring lacks sections {missing}"
    assert rule.doc().splitlines()[0].strip(), "first line is the one-sentence summary"


def test_rule_identities_match():
    """UnsupportedOperator / unsupported_operator.py / unsupported-operator (STYLE.md)."""
    import re
    import sys

    for rule in all_rules():
        cls = type(rule)
        module = sys.modules[cls.__module__].__file__
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.name), rule.name
        assert re.fullmatch(r"[A-Z]{2,3}\d{3}", rule.code), rule.code
        assert "".join(p.capitalize() for p in rule.name.split("-")) == cls.__name__, (rule.name, cls.__name__)
        assert Path(module).stem.replace("_", "-") == rule.name, (rule.name, module)


def test_generated_docs_are_current():
    stale = [rel for rel, text in generate().items() if not (DOCS / rel).exists() or (DOCS / rel).read_text() != text]
    assert not stale, f"stale generated docs, run `python -m onnxdoctor.docgen docs`: {stale}"


def _rewrites():
    from onnxdoctor.rewrites import all_rewrites

    return all_rewrites()


@pytest.mark.parametrize("rewrite", _rewrites(), ids=lambda r: r.name)
def test_rewrite_doc_has_every_heading(rewrite):
    from onnxdoctor.rewrites.base import DOC_HEADINGS as RW_HEADINGS

    sections = rewrite.doc_sections()
    missing = [h for h in RW_HEADINGS if not sections.get(h)]
    assert not missing, f"{rewrite.name} docstring lacks sections {missing}"
    import re

    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rewrite.name)


def test_every_fix_names_an_existing_rewrite():
    """A rule's `fix` must name a rewrite that exists (else fix silently does nothing)."""
    import ast
    import inspect

    import onnxdoctor.checks as checks_pkg

    names = {r.name for r in _rewrites()}
    root = Path(inspect.getfile(checks_pkg)).parent
    missing = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Fix" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value not in names:
                    missing.add((path.name, arg.value))
    assert not missing, f"fixes naming no rewrite: {sorted(missing)}"
