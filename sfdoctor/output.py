"""Output formats shared by `lint` and `replay`: full, concise, json (sarif and github join later)."""

from __future__ import annotations

import json
import linecache
from collections import Counter
from typing import IO, Iterable, Sequence

from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax

from .findings import Finding

FORMATS = ("full", "concise", "json")
SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow"}
FRAME_CONTEXT = 2  # lines shown around the reported ones in a code frame


def make_console(stream: IO[str] | None = None) -> Console:
    # Wide and without wrapping: finding lines are parsed by editors and CI.
    return Console(file=stream, highlight=False, soft_wrap=True)


def finding_line(finding: Finding, markup: bool = False) -> str:
    where = f"{finding.filename}:{finding.location.row}:{finding.location.column}:"
    possible = "possible " if finding.possible else ""
    text = f"{finding.code} [{finding.severity}] {possible}{finding.message}"
    if not markup:
        return f"{where} {text}"
    style = SEVERITY_STYLE[finding.severity]
    return f"[bold]{escape(where)}[/] [{style}]{finding.code}[/] {escape(text[len(finding.code) + 1:])}"


def code_frame(filename: str, first: int, last: int) -> Syntax | None:
    lines = linecache.getlines(filename)
    if not lines or first > len(lines):
        return None
    start = max(1, first - FRAME_CONTEXT)
    end = min(len(lines), last + FRAME_CONTEXT)
    return Syntax(
        "".join(lines[start - 1 : end]),
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
        frame = code_frame(finding.filename, finding.location.row, finding.end_location.row)
        if frame is not None:
            console.print(frame)
        for related in finding.related:
            source = linecache.getline(related.filename, related.location.row).strip()
            console.print(
                f"  [cyan]note:[/] {escape(related.message)} at "
                f"{escape(related.filename)}:{related.location.row}: [dim]{escape(source)}[/]"
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


def summary_line(findings: Sequence[Finding], files_checked: int) -> str:
    if not findings:
        return f"All checks passed! ({files_checked} files checked)"
    severities = Counter(f.severity for f in findings)
    parts = [f"{severities[s]} {s}{'s' if severities[s] != 1 else ''}" for s in ("error", "warning") if severities[s]]
    return f"Found {len(findings)} finding{'s' if len(findings) != 1 else ''} ({', '.join(parts)}) in {files_checked} files checked."
