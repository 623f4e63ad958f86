"""The SF5xx identities (RULES.md) and their documents."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sfdoctor.replay.codes import REPLAY_RULES

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
SECTIONS = ["What it does", "Why is this bad?", "Example", "Use instead", "Fix safety", "References"]
EXPECTED = {
    "SF501": ("zero-weight-sum", "error"), "SF502": ("non-finite-average", "error"),
    "SF503": ("group-never-moved", "error"), "SF504": ("lr-changed-outside", "warning"),
    "SF505": ("momentum-changed", "error"), "SF506": ("step-in-eval-mode", "error"),
    "SF507": ("eval-did-not-move", "warning"), "SF508": ("zero-grad-moved", "error"),
    "SF509": ("rank-divergence", "error"), "SF510": ("negative-lr-at-step", "error"),
    "SF512": ("low-precision-average", "warning"), "SF513": ("saved-at-y", "warning"),
}


def test_codes_match_the_catalogue() -> None:
    assert {info.code: (info.name, info.severity) for info in REPLAY_RULES} == EXPECTED
    assert all(info.summary for info in REPLAY_RULES)


def test_codes_do_not_import_torch() -> None:
    code = "import sys, sfdoctor.replay.codes; print('torch' in sys.modules)"
    process = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert process.stdout.strip() == "False"


@pytest.mark.parametrize("info", REPLAY_RULES, ids=lambda info: info.code)
def test_document(info) -> None:
    text = (RULES_DIR / f"{info.code}.md").read_text(encoding="utf-8")
    assert text.splitlines()[0] == f"# {info.code} {info.name}"
    assert re.search(rf"^\*\*Severity:\*\* {info.severity}\b", text, re.MULTILINE)
    assert re.findall(r"^## (.+?)\s*$", text, re.MULTILINE) == SECTIONS
    assert "no autofix" in text.split("## Fix safety")[1].lower()
