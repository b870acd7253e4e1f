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
    """One rule, three matching identities: UnsupportedOperator / unsupported_operator.py / unsupported-operator."""
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
    """Every rewrite a finding can name exists (else fix silently does nothing). Rules take their
    fixes from rule_fixes' table (tests/test_rule_fixes.py: none builds a Fix of its own)."""
    from onnxdoctor import rule_fixes

    names = {r.name for r in _rewrites()}
    named = {n for ns in rule_fixes.RULE_FIXES.values() for n in ns} | set(rule_fixes.SUBSTITUTIONS.values())
    assert len(named) > 20
    assert named <= names, f"fixes naming no rewrite: {sorted(named - names)}"


def _python_examples(text: str) -> list[tuple[str, str | None]]:
    """(code, the output shown after it or None) for each ```python block of `text`."""
    import re

    blocks = [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w+)\n(.*?)```", text, re.S)]
    out = []
    for k, (lang, body) in enumerate(blocks):
        if lang == "python":
            nxt = blocks[k + 1] if k + 1 < len(blocks) else None
            shown = nxt[1] if nxt is not None and nxt[0] == "text" and text.index(body) < text.index(nxt[1]) else None
            out.append((body, shown))
    return out


def test_python_api_examples_run_and_print_what_the_doc_shows(tmp_path, monkeypatch):
    """docs/usage.md's Python API section: each example runs (in order, in one namespace, in an empty
    folder) and prints exactly the output shown after it."""
    import contextlib
    import io

    section = (DOCS / "usage.md").read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    examples = _python_examples(section)
    assert len(examples) >= 6 and sum(shown is not None for _, shown in examples) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code, shown in examples:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "docs/usage.md", "exec"), namespace)  # noqa: S102 - the documentation's own code
        if shown is not None:
            assert printed.getvalue() == shown, code
    assert (tmp_path / "fixed.onnx").is_file()


def test_the_phase_list_names_every_phase():
    """rewrites/base.py's comment on `phase` lists the phases; a rewrite in an unlisted phase fails."""
    import re

    import onnxdoctor.rewrites.base as base

    source = Path(base.__file__).read_text()
    comment = source.split("# When the pipeline runs it within one iteration:", 1)[1].split("phase: ClassVar", 1)[0]
    listed = {int(n) for n in re.findall(r"\b(\d+) [A-Za-z]", comment)}
    used = {r.phase for r in _rewrites()}
    assert len(used) >= 8 and used <= listed, sorted(used - listed)


@pytest.mark.parametrize("command,pages", [("check", ["usage.md"]), ("fix", ["fix.md", "precision.md"]),
                                           ("verify", ["verify.md"])])
def test_synopsis_lists_every_option_of_the_command(command, pages):
    """The synopses of a command's pages name every option `--help` shows (the shared option groups
    of cli.py included), by its long or short name, so the pages cannot fall behind the code."""
    import re

    import click

    from onnxdoctor.cli import main

    synopses = ""
    for page in pages:
        text = (Path(__file__).resolve().parents[1] / "docs" / page).read_text()
        found = re.search(rf"```text\nonnxdoctor {command} (.*?)```", text, re.S)
        assert found, f"docs/{page} has no `onnxdoctor {command}` synopsis"
        synopses += found.group(1)
    cmd = main.commands[command]
    names = [p.opts + p.secondary_opts for p in cmd.params if isinstance(p, click.Option) and p.name != "help"]
    missing = [opts[0] for opts in names if not any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", synopses) for o in opts)]
    assert not missing, f"the synopses in {pages} lack {missing}"
