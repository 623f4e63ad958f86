"""What the fixture tables do not show: which findings are *possible*, and messages that must say
the right thing for the case at hand."""

from __future__ import annotations

import textwrap
from pathlib import Path

from sfdoctor.lint.engine import Settings, lint_source

ROOT = Path(__file__).resolve().parent.parent


def lint(source: str, name: str = "snippet.py") -> list:
    result = lint_source(name, textwrap.dedent(source).encode(), Settings())
    assert not result.errors, result.errors
    return result.findings


def rows(source: str) -> list[tuple[str, int, bool]]:
    return [(f.code, f.location.row, f.possible) for f in lint(source)]


def fixture_rows(path: str) -> list[tuple[str, int, bool]]:
    return rows((ROOT / path).read_text(encoding="utf-8"))


def test_low_precision_dtype_from_a_flag_is_possible() -> None:
    assert fixture_rows("fixtures/lint/bad_half_model.py") == [("SF115", 18, False), ("SF115", 22, True)]


def test_fraction_passed_raw_is_possible() -> None:
    assert fixture_rows("fixtures/lint/bad_warmup_fraction_passed_raw.py") == [("SF112", 22, True)]
