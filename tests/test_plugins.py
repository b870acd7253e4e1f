"""Third-party rules through the `onnxdoctor.rules` entry-point group, and the cheap scan that skips
importlib.metadata when no installed distribution declares one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from ._fixtures import MODELS

PLUGIN = textwrap.dedent('''
    from onnxdoctor.findings import Severity
    from onnxdoctor.rule import Rule


    class GraphInputCount(Rule):
        """Counts graph inputs (a test plugin).

        ## What it does
        Reports the number of graph inputs.
        """

        code = "XTP001"
        name = "graph-input-count"
        severity = Severity.INFO
        summary = "number of graph inputs"

        def check(self, ctx):
            yield self.finding(ctx, f"{len(ctx.model.main.inputs)} graph input(s)")


    RULES = (GraphInputCount,)
''')


def _install_plugin(folder):
    (folder / "od_test_plugin.py").write_text(PLUGIN)
    info = folder / "od_test_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: od-test-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[onnxdoctor.rules]\ntest = od_test_plugin:RULES\n")


def _run(env_path, *args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(env_path), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)


def test_plugin_rule_is_listed_and_runs(tmp_path):
    _install_plugin(tmp_path)
    listed = _run(tmp_path, "-m", "onnxdoctor", "rules")
    assert listed.returncode == 0, listed.stderr
    assert "XTP001" in listed.stdout and "graph-input-count" in listed.stdout
    checked = _run(tmp_path, "-m", "onnxdoctor", "check", str(MODELS / "clean.onnx"), "--format", "json", "--isolated")
    assert checked.returncode == 0, checked.stderr
    findings = json.loads(checked.stdout)["models"][0]["findings"]
    assert [f["message"] for f in findings if f["code"] == "XTP001"] == ["1 graph input(s)"]


_SCAN = (
    "from importlib.metadata import entry_points; from onnxdoctor import registry;"
    "print(registry._may_declare_plugins(), bool(list(entry_points(group='onnxdoctor.rules'))))"
)


def test_scan_sees_every_declared_plugin(tmp_path):
    # The scan may say "maybe" when there is none, never "none" when there is one.
    _install_plugin(tmp_path)
    assert _run(tmp_path, "-c", _SCAN).stdout.split() == ["True", "True"]
    empty = tmp_path / "empty"
    empty.mkdir()
    scan, real = _run(empty, "-c", _SCAN).stdout.split()
    assert real == "True" or scan == "False"  # without plugins installed here, no importlib.metadata
