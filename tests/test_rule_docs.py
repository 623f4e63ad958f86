"""Rule documents: their shape, and their examples run through the real linter so they cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sfdoctor.lint.analysis.dependencies import DEPENDENCY_RULES
from sfdoctor.lint.checker import lint_source, rule_infos
from sfdoctor.lint.engine import Settings
from sfdoctor.lint.fixes.fix import fixed_text

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
SECTIONS = ["What it does", "Why is this bad?", "Example", "Use instead", "Fix safety", "References"]
# SF5xx documents describe replay findings: their code blocks are not lint input. SF001/SF002 examples
# are dependency files, checked by test_dependencies.py.
LINT_CODE = re.compile(r"SF[0-4][0-9]{2}")
DEPENDENCY_CODES = {info.code for info in DEPENDENCY_RULES}
LINT_DOCS = sorted(
    path for path in RULES_DIR.glob("SF*.md") if LINT_CODE.fullmatch(path.stem) and path.stem not in DEPENDENCY_CODES
)
FIX_LINE = re.compile(r"^\*\*Fix:\*\* (.*)$", re.MULTILINE)
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+?)[ \t]*$", text, flags=re.MULTILINE)
    return {title: body for title, body in zip(parts[1::2], parts[2::2])}


def python_block(doc: Path, section: str) -> str:
    body = sections(doc.read_text(encoding="utf-8")).get(section)
    assert body is not None, f"{doc.name} has no '## {section}' section"
    blocks = PYTHON_BLOCK.findall(body)
    assert len(blocks) == 1, f"{doc.name}: '## {section}' must hold exactly one python block, found {len(blocks)}"
    return blocks[0]


def findings(doc: Path, section: str) -> list[tuple[str, int, str]]:
    result = lint_source(f"{doc.name} ({section})", python_block(doc, section).encode(), Settings())
    assert not result.errors, result.errors
    return [(f.code, f.location.row, f.message) for f in result.findings]


def test_lint_documents_exist() -> None:
    assert len(LINT_DOCS) >= 13, [path.name for path in LINT_DOCS]


@pytest.mark.parametrize("doc", LINT_DOCS, ids=lambda path: path.stem)
def test_document_shape(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert re.fullmatch(rf"# {doc.stem} [a-z0-9]+(-[a-z0-9]+)*", text.splitlines()[0]), text.splitlines()[0]
    assert re.search(r"^\*\*Severity:\*\* (error|warning)\b", text, re.MULTILINE)
    assert re.search(r"^\*\*Fix:\*\* \S", text, re.MULTILINE)
    assert list(sections(text)) == SECTIONS


@pytest.mark.parametrize("doc", LINT_DOCS, ids=lambda path: path.stem)
def test_example_produces_the_rule(doc: Path) -> None:
    found = findings(doc, "Example")
    assert doc.stem in [code for code, _, _ in found], found


@pytest.mark.parametrize("doc", LINT_DOCS, ids=lambda path: path.stem)
def test_use_instead_is_clean(doc: Path) -> None:
    assert findings(doc, "Use instead") == []


@pytest.mark.parametrize("doc", LINT_DOCS, ids=lambda path: path.stem)
def test_fix_line_tells_what_the_example_is_offered(doc: Path) -> None:
    """`**Fix:** not available` <-> no fix on the Example; otherwise the line names each applicability
    offered, and applying the fixes removes the finding."""
    line = FIX_LINE.search(doc.read_text(encoding="utf-8")).group(1)
    example = python_block(doc, "Example")
    reported = [f for f in lint_source(doc.name, example.encode(), Settings()).findings if f.code == doc.stem]
    offered = {f.fix.applicability for f in reported if f.fix is not None}
    if line.startswith("not available"):
        assert offered == set()
        return
    assert re.match(r"(safe|unsafe)\b", line), line
    assert offered, f"{doc.name} says '{line}' but its Example is offered no fix"
    assert all(re.search(rf"\b{applicability}\b", line) for applicability in offered), (line, offered)
    fixed, applied, remaining, errors = fixed_text(doc.name, example, "utf-8", Settings(), lambda f: True)
    assert not errors and applied
    assert doc.stem not in [f.code for f in remaining], fixed


@pytest.mark.parametrize("info", [*rule_infos(), *DEPENDENCY_RULES], ids=lambda info: info.code)
def test_every_rule_has_its_document(info) -> None:
    doc = RULES_DIR / f"{info.code}.md"
    assert doc.is_file(), f"{info.code} has no document at {doc}"
    text = doc.read_text(encoding="utf-8")
    assert text.splitlines()[0] == f"# {info.code} {info.name}"
    assert re.search(rf"^\*\*Severity:\*\* {info.severity}\b", text, re.MULTILINE)


def test_readme_rule_table_is_the_catalogue() -> None:
    """README's table under "## Rules" is `sfdoctor rule`'s output, so a new rule cannot be left out."""
    from click.testing import CliRunner

    from sfdoctor.cli import cli

    listed = CliRunner().invoke(cli, ["rule"]).output
    readme = (RULES_DIR.parent / "README.md").read_text(encoding="utf-8").split("## Rules\n", 1)[1]
    assert f"```\n{listed}```\n" in readme
