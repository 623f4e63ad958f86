"""Output formats shared by `lint` and `replay`: full, concise, json, sarif (code scanning), github.

A location in a Jupyter notebook has a cell (`train.ipynb:cell 3:2:5`): code frames show that cell's
lines; SARIF and GitHub annotations, which count the lines of the file (its JSON), name the file
alone and put the cell position in front of the message."""

from __future__ import annotations

import hashlib
import json
import linecache
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import quote

from rich.console import Console
from rich.markup import escape

from . import __version__
from .findings import Finding, Location, RuleInfo

if TYPE_CHECKING:
    from rich.syntax import Syntax

FORMATS = ("full", "concise", "json", "sarif", "github")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
HOMEPAGE = "https://github.com/sfdoctor/sfdoctor"
SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow"}
FRAME_CONTEXT = 2  # lines shown around the reported ones in a code frame


def make_console(stream: IO[str] | None = None) -> Console:
    # Wide and without wrapping: finding lines are parsed by editors and CI.
    return Console(file=stream, highlight=False, soft_wrap=True)


def finding_line(finding: Finding, markup: bool = False) -> str:
    where = f"{finding.filename}:{finding.location}:"
    possible = "possible " if finding.possible else ""
    text = f"{finding.code} [{finding.severity}] {possible}{finding.message}"
    if not markup:
        return f"{where} {text}"
    style = SEVERITY_STYLE[finding.severity]
    return f"[bold]{escape(where)}[/] [{style}]{finding.code}[/] {escape(text[len(finding.code) + 1 :])}"


def source_line(filename: str, row: int, cell: int | None = None) -> str:
    lines = source_lines(filename, cell)
    return lines[row - 1] if 1 <= row <= len(lines) else ""


def source_lines(filename: str, cell: int | None = None) -> list[str]:
    """The file's lines, or those of a notebook's cell."""
    if cell is not None:
        # only a lint finding has a cell: replay and the guard never load the linter
        from .lint.files.cells import cell_source
        from .lint.files.source import source_lines as text_lines

        return text_lines(cell_source(filename, cell))
    # checkcache: a long-lived process (tests, an editor) may have cached an older file of that name
    linecache.checkcache(filename)
    return linecache.getlines(filename)


def code_frame(filename: str, first: int, last: int, cell: int | None = None) -> Syntax | None:
    from rich.syntax import Syntax  # pygments: loaded only by a run that prints code frames

    lines = source_lines(filename, cell)
    if not lines or first > len(lines):
        return None
    start = max(1, first - FRAME_CONTEXT)
    end = min(len(lines), last + FRAME_CONTEXT)
    return Syntax(
        "".join(lines[start - 1 : end]).rstrip("\n"),
        "python",
        line_numbers=True,
        start_line=start,
        highlight_lines=set(range(first, last + 1)),
        theme="ansi_dark",
        word_wrap=False,
    )


def print_full(findings: Sequence[Finding], console: Console) -> None:
    for finding in findings:
        console.print(finding_line(finding, markup=True))
        frame = code_frame(finding.filename, finding.location.row, finding.end_location.row, finding.location.cell)
        if frame is not None:
            console.print(frame)
        for related in finding.related:
            where = related.location
            source = source_line(related.filename, where.row, where.cell).strip()
            row = where.row if where.cell is None else f"cell {where.cell}:{where.row}"
            console.print(
                f"  [cyan]note:[/] {escape(related.message)} at "
                f"{escape(related.filename)}:{row}: [dim]{escape(source)}[/]"
            )
        for note in finding.notes:
            console.print(f"  [cyan]help:[/] {escape(note)}")
        if finding.fix is not None:
            console.print(f"  [green]fix ({finding.fix.applicability}):[/] {escape(finding.fix.message)}")
        console.print()


def print_concise(findings: Sequence[Finding], console: Console) -> None:
    for finding in findings:
        console.print(finding_line(finding, markup=True))


def findings_json(findings: Iterable[Finding]) -> list[dict]:
    return [f.to_json() for f in findings]


def print_json(findings: Sequence[Finding], stream: IO[str]) -> None:
    json.dump(findings_json(findings), stream, indent=2)
    stream.write("\n")


def print_statistics(findings: Sequence[Finding], console: Console) -> None:
    counts = Counter(f.code for f in findings)
    names = {f.code: f.rule.name for f in findings}
    fixable = Counter(f.code for f in findings if f.fix is not None)
    for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        marker = "*" if fixable[code] else " "
        console.print(f"{count:>5}  {code}  {marker} {names[code]}", highlight=False)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def summary_line(findings: Sequence[Finding], files_checked: int) -> str:
    if not findings:
        return f"All checks passed! ({plural(files_checked, 'file')} checked)"
    severities = Counter(f.severity for f in findings)
    parts = [plural(severities[s], s) for s in ("error", "warning") if severities[s]]
    return f"Found {plural(len(findings), 'finding')} ({', '.join(parts)}) in {plural(files_checked, 'file')} checked."


def repository_root() -> Path:
    """The git work tree that holds the current folder (a `.git` folder or file), else the current folder."""
    cwd = Path.cwd().resolve()
    return next((folder for folder in [cwd, *cwd.parents] if (folder / ".git").exists()), cwd)


def _repository_path(filename: str, root: Path) -> str | None:
    """`filename` relative to `root` with forward slashes, or None when it lies outside."""
    try:
        return Path(os.path.abspath(filename)).relative_to(root).as_posix()
    except ValueError:
        return None


def sarif_log(findings: Sequence[Finding], root: Path | None = None) -> dict:
    """A SARIF 2.1.0 log that GitHub code scanning accepts: one run, one rule per code found."""
    from .catalogue import all_rules  # the catalogue imports every rule: only SARIF needs it

    root = root or repository_root()
    catalogue = {info.code: info for info in all_rules()}
    rules: dict[str, RuleInfo] = {}
    for finding in findings:
        rules.setdefault(finding.code, catalogue.get(finding.code, finding.rule))
    index = {code: position for position, code in enumerate(rules)}
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "sfdoctor",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": HOMEPAGE,
                        "rules": [_sarif_rule(info) for info in rules.values()],
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": root.as_uri() + "/"}},
                "columnKind": "unicodeCodePoints",  # libcst columns count characters, not UTF-16 units
                "results": [_sarif_result(finding, index[finding.code], root) for finding in findings],
            }
        ],
    }


def _sarif_rule(info: RuleInfo) -> dict:
    from .catalogue import docs_folder

    path = docs_folder() / f"{info.code}.md"
    document = path.read_text(encoding="utf-8") if path.is_file() else ""
    what = re.search(r"^## What it does\n+(.*?)(?=^## |\Z)", document, re.MULTILINE | re.DOTALL)
    return {
        "id": info.code,
        "name": info.name,
        "shortDescription": {"text": info.summary},
        "fullDescription": {"text": what.group(1).strip() if what else info.summary},
        "help": {"text": document or info.summary, "markdown": document or info.summary},
        "helpUri": info.url,
        "defaultConfiguration": {"level": info.severity},
    }


def _sarif_location(filename: str, start: Location, end: Location | None, root: Path) -> dict:
    relative = _repository_path(filename, root)
    artifact = (
        {"uri": quote(relative), "uriBaseId": "%SRCROOT%"}
        if relative is not None
        else {"uri": Path(os.path.abspath(filename)).as_uri()}
    )
    if start.cell is not None:  # SARIF regions count the lines of the file: the cell goes in properties
        return {"physicalLocation": {"artifactLocation": artifact}, "properties": {"cell": start.cell, "line": start.row}}
    region = {"startLine": start.row, "startColumn": start.column}
    if end is not None:
        region.update(endLine=end.row, endColumn=end.column)
    return {"physicalLocation": {"artifactLocation": artifact, "region": region}}


def _sarif_result(finding: Finding, rule_index: int, root: Path) -> dict:
    location = _sarif_location(finding.filename, finding.location, finding.end_location, root)
    line = source_line(finding.filename, finding.location.row, finding.location.cell).strip()
    path = _repository_path(finding.filename, root) or finding.filename
    # Stable across runs and across edits elsewhere in the file: no line number in it.
    fingerprint = hashlib.sha256(f"{finding.code}\0{path}\0{line}".encode()).hexdigest()
    result = {
        "ruleId": finding.code,
        "ruleIndex": rule_index,
        "level": finding.severity,
        "message": {"text": _message(finding)},
        "locations": [location],
        "partialFingerprints": {"sfdoctor/v1": fingerprint},
    }
    if finding.related:
        result["relatedLocations"] = [
            {
                "id": number,
                "message": {"text": related.message},
                **_sarif_location(related.filename, related.location, None, root),
            }
            for number, related in enumerate(finding.related, 1)
        ]
    return result


def _message(finding: Finding) -> str:
    text = f"possible: {finding.message}" if finding.possible else finding.message
    if finding.location.cell is not None:
        text = f"{finding.location}: {text}"
    return "\n".join([text, *finding.notes])


def print_sarif(findings: Sequence[Finding], stream: IO[str], root: Path | None = None) -> None:
    json.dump(sarif_log(findings, root), stream, indent=2)
    stream.write("\n")


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(finding: Finding, root: Path) -> str:
    """A GitHub Actions workflow command that annotates the finding's lines in the pull request."""
    path = _repository_path(finding.filename, root) or finding.filename
    position = {
        "line": finding.location.row,
        "col": finding.location.column,
        "endLine": finding.end_location.row,
        "endColumn": finding.end_location.column,
    }
    # GitHub counts the lines of the file (a notebook's JSON): a cell position goes in the message
    properties = {"file": path, **(position if finding.location.cell is None else {}), "title": f"sfdoctor ({finding.code})"}
    rendered = ",".join(f"{key}={_escape_property(str(value))}" for key, value in properties.items())
    return f"::{finding.severity} {rendered}::{_escape_data(_message(finding))}"


def print_github(findings: Sequence[Finding], stream: IO[str], root: Path | None = None) -> None:
    root = root or repository_root()
    for finding in findings:
        stream.write(github_annotation(finding, root) + "\n")
