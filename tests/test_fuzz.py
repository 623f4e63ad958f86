"""Fuzz: generated training scripts (seeded mutations of the shapes in fixtures/) through lint and
autofix. `bench/fuzz.py` runs thousands of them on demand; this runs a few hundred."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from cli_helpers import lint
from mutation import check, programs

from sfdoctor.lint.checker import lint_source
from sfdoctor.lint.engine import Settings

SEED = 20261202
PROGRAMS = 150


def test_generated_programs_lint_and_fix_with_no_internal_error_and_fixes_that_settle() -> None:
    problems, codes, fixes = [], Counter(), 0
    for name, source in programs(SEED, PROGRAMS):
        checked = check(name, source)  # a traceback fails the test
        problems += checked.problems
        codes.update(checked.codes)
        fixes += checked.fixes
    assert problems == []
    # the programs reach the analysis and the fixes, not only the parser (the programs are mutations of the
    # fixture files, so the figures move as fixtures are added: 45-49 fixes over seeds 1-3 and this one)
    assert len(set(codes) - {"SF000"}) >= 20 and fixes >= 30, (codes, fixes)


@pytest.mark.usefixtures("in_tmp_path")
@pytest.mark.parametrize("output_format", ["json", "sarif"])
def test_generated_programs_in_one_run_give_a_valid_report(output_format: str) -> None:
    expected = 0
    for name, source in programs(SEED, 30):
        Path(name).write_text(source, encoding="utf-8")
        expected += len(lint_source(name, source.encode(), Settings()).findings)
    result = lint("--isolated", "--output-format", output_format, ".")
    assert (result.exit_code, result.stderr) == (1, "")
    report = json.loads(result.stdout)
    assert len(report if output_format == "json" else report["runs"][0]["results"]) == expected
