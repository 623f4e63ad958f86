"""Every fix on its fixtures, through the real CLI on real files.

`fixtures/fixes/<code>_<case>.py` is linted and fixed with `--fix --unsafe-fixes`. Where
`fixtures/fixes/expected/<code>_<case>.py` exists the result must equal it, parse, lint clean for
<code>, and a second `--fix` must change nothing. Where it does not exist, <code> must be reported
with no fix offered (a case the fix must leave alone) and the file must stay as it is.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import libcst as cst
import pytest
from cli_helpers import lint

FIXES = Path(__file__).resolve().parent.parent / "fixtures" / "fixes"
CASES = sorted(FIXES.glob("sf*.py"))


def findings(path: Path) -> list[dict]:
    result = lint("--isolated", "--output-format", "json", path)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def code_of(case: Path) -> str:
    return case.name.split("_", 1)[0].upper()


def test_every_fixable_rule_has_fixture_cases() -> None:
    fixed = {code_of(case) for case in CASES if (FIXES / "expected" / case.name).is_file()}
    left_alone = {code_of(case) for case in CASES if not (FIXES / "expected" / case.name).is_file()}
    fixable = {"SF102", "SF103", "SF104", "SF201", "SF202", "SF203", "SF205", "SF301", "SF302", "SF401"}
    assert fixed == fixable
    assert left_alone == fixable - {"SF401"}  # SF401's fix is offered wherever it reports


def test_every_expected_file_has_its_case() -> None:
    assert {path.name for path in (FIXES / "expected").glob("*.py")} <= {case.name for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.stem)
def test_fix(case: Path, tmp_path: Path) -> None:
    code = code_of(case)
    script = tmp_path / case.name
    shutil.copyfile(case, script)
    reported = [f for f in findings(script) if f["code"] == code]
    assert reported, f"{case.name} does not report {code}"
    expected_path = FIXES / "expected" / case.name

    if not expected_path.is_file():
        assert [f["fix"] for f in reported] == [None] * len(reported)
        lint("--isolated", "--fix", "--unsafe-fixes", script)
        assert script.read_text(encoding="utf-8") == case.read_text(encoding="utf-8")
        return

    applicabilities = {f["fix"]["applicability"] for f in reported if f["fix"]}
    assert applicabilities, f"{case.name}: no {code} finding offers a fix"
    if applicabilities == {"unsafe"}:  # a plain --fix leaves unsafe fixes alone
        lint("--isolated", "--fix", "--select", code, script)
        assert script.read_text(encoding="utf-8") == case.read_text(encoding="utf-8")

    result = lint("--isolated", "--fix", "--unsafe-fixes", script)
    assert result.exit_code in (0, 1), result.output
    fixed = script.read_text(encoding="utf-8")
    assert fixed == expected_path.read_text(encoding="utf-8")
    cst.parse_module(fixed)
    assert [f for f in findings(script) if f["code"] == code] == []

    written = os.stat(script).st_mtime_ns
    again = lint("--isolated", "--fix", "--unsafe-fixes", script)
    assert "Fixed" not in again.stdout, again.stdout
    assert os.stat(script).st_mtime_ns == written
