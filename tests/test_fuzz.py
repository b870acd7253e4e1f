"""A short, seeded run of the fuzz harness (bench/fuzz.py) in the test suite: mutated fixtures,
structurally hostile models and random compositions through the installed CLI, each judged on the
whole contract (no traceback, exit 2 with one line naming the file, no hang, bounded memory, inputs
byte-identical, no write outside the output path, no terminal escapes). The long run is by hand:
`python bench/fuzz.py --minutes 30 --seed S` (docs/robustness.md)."""

from __future__ import annotations

import sys

from .conftest import REPO, onnxdoctor_exe

sys.path.insert(0, str(REPO / "bench"))
import fuzz  # noqa: E402

SEED = 13


def test_short_fuzz_campaign_finds_no_contract_violation(tmp_path):
    failures: list[str] = []
    summary = fuzz.campaign(SEED, 30, onnxdoctor_exe(), timeout=25, max_rss_mb=3000, max_as_mb=12000,
                            root=tmp_path, log=failures.append, save_failures=False)
    assert summary["cases"] >= 5, summary  # the machine ran a real campaign, not nothing
    assert summary["violations"] == 0, "\n".join(failures)
