"""Autofix: apply the findings' edits, re-parse and re-lint until nothing changes, write atomically.

A notebook is fixed as its `Notebook.text` (the code cells) and written back cell by cell. No edit
may touch an IPython line (`!pip install ...`) or a cell boundary of that text."""

from __future__ import annotations

import difflib
import os
import re
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from ...findings import Edit, Finding
from ..checker import lint_source
from ..engine import Settings
from ..files.magics import blank_magic_lines, magic_rows
from ..files.notebook import BOUNDARY, InvalidNotebook, Notebook, is_notebook
from ..files.source import NotLintable, read_file, source_encoding, source_lines

MAX_ROUNDS = 16  # a fix that keeps producing new fixes is a rule bug: stop instead of looping
# The mode rules' fixes each change the modes that the others were found with: one per round.
MODE_RULES = ("SF201", "SF202", "SF203")
LINE_END = re.compile(r"\r\n|\r|\n")
Span = tuple[int, int, str]  # an edit as (start, end, content) offsets in the text


@dataclass
class FileFix:
    """What fixing one file did. `fixed == original` when nothing was (or could be) applied."""

    display: str
    original: str = ""
    fixed: str = ""
    applied: list[Finding] = field(default_factory=list)
    remaining: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notebook: Notebook | None = None  # the notebook the texts are the code cells of

    def diff(self) -> str:
        """A unified diff; for a notebook, one per changed cell (`a/train.ipynb:cell 3`)."""
        if self.notebook is None:
            return _diff(self.original, self.fixed, self.display)
        pairs = zip(self.notebook.cells, self.original.split(BOUNDARY), self.fixed.split(BOUNDARY))
        return "".join(_diff(old, new, f"{self.display}:cell {index + 1}") for index, old, new in pairs)


def _diff(original: str, fixed: str, name: str) -> str:
    lines = difflib.unified_diff(source_lines(original), source_lines(fixed), f"a/{name}", f"b/{name}")
    return "".join(line if LINE_END.search(line[-1:]) else line + "\n" for line in lines)


def fix_file(
    path: Path, display: str, settings: Settings, applicable: Callable[[Finding], bool], write: bool
) -> FileFix:
    """Fix one file; with `write`, replace it on disk unless it changed since it was read."""
    outcome = FileFix(display)
    path = path.resolve()  # write through a symlink, not over it
    try:
        data = read_file(path) or b""
        outcome.notebook = Notebook.parse(data) if is_notebook(path) else None
        encoding = "utf-8" if outcome.notebook else source_encoding(data)
        outcome.original = outcome.notebook.text if outcome.notebook else data.decode(encoding)
    except (OSError, NotLintable, InvalidNotebook, SyntaxError, UnicodeDecodeError, LookupError) as error:
        outcome.errors.append(
            f"{display}: cannot fix: cannot read: {getattr(error, 'strerror', None) or error}"
        )
        return outcome
    if outcome.notebook is None and outcome.original.encode(encoding) != data:  # a UTF-16 file of the other byte order
        outcome.errors.append(f"{display}: cannot fix: it would not be written back as the same {encoding} bytes")
        outcome.fixed, outcome.remaining = outcome.original, lint_source(display, data, settings, force=True).findings
        return outcome
    outcome.fixed, outcome.applied, outcome.remaining, outcome.errors = fixed_text(
        display, outcome.original, encoding, settings, applicable, outcome.notebook
    )
    if write and outcome.fixed != outcome.original:
        problem = _write(path, data, outcome, encoding)
        if problem is not None:
            outcome.errors.append(f"{display}: fixes not written: {problem}")
            outcome.fixed, outcome.applied = outcome.original, []
            outcome.remaining = lint_source(display, outcome.original.encode(encoding), settings, force=True).findings
    return outcome


def _write(path: Path, data: bytes, outcome: FileFix, encoding: str) -> str | None:
    """Write the fixed file (a notebook: its JSON with the fixed cells, each of which must parse)."""
    if outcome.notebook is None:
        return _replace(path, data, outcome.fixed, encoding)
    try:
        cells = outcome.notebook.split(outcome.fixed)
    except InvalidNotebook as error:
        return str(error)
    for index, original, fixed in zip(outcome.notebook.cells, outcome.notebook.sources, cells):
        if fixed != original and not _parses(fixed):  # a cell runs on its own in Jupyter
            return f"cell {index + 1} would not parse on its own"
    return _replace(path, data, outcome.notebook.with_text(outcome.fixed, data), encoding)


def fixed_text(
    display: str,
    text: str,
    encoding: str,
    settings: Settings,
    applicable: Callable[[Finding], bool],
    notebook: Notebook | None = None,
) -> tuple[str, list[Finding], list[Finding], list[str]]:
    """(fixed text, applied findings, findings left in the fixed text, errors).

    Fixes that do not settle (applied again in every round, or undone by another rule's fix) are
    dropped, each with an error, and the others are applied again from the original text.
    """
    unsettled: dict[tuple, Finding] = {}
    while True:
        rounds = _Rounds(display, encoding, settings, applicable, set(unsettled), notebook)
        fixed = rounds.run(text)
        errors = [f"{_where(f, notebook)}: {f.code} fix dropped: it did not settle" for f in unsettled.values()]
        if fixed is not None:
            return fixed, rounds.applied, rounds.remaining, errors + rounds.errors
        if not rounds.unsettled:
            errors.append(f"{display}: fixes did not settle after {MAX_ROUNDS} rounds; the file is left as it was")
            return text, [], rounds.first_findings, errors + rounds.errors
        unsettled.update({key: rounds.first[key] for key in rounds.unsettled})


class _Rounds:
    """Fix, re-lint, fix again until no fix applies; `run` gives None when that does not happen."""

    def __init__(
        self,
        display: str,
        encoding: str,
        settings: Settings,
        applicable: Callable[[Finding], bool],
        rejected: set[tuple],
        notebook: Notebook | None,
    ) -> None:
        self.display, self.encoding, self.settings, self.applicable = display, encoding, settings, applicable
        self.notebook = notebook
        self.rejected = rejected  # fixes that broke the syntax or changed nothing: never retried
        self.applied: list[Finding] = []
        self.remaining: list[Finding] = []
        self.errors: list[str] = []
        self.first_findings: list[Finding] = []  # in the original text
        self.first: dict[tuple, Finding] = {}  # each fix's finding where it was first seen
        self.unsettled: set[tuple] = set()  # when `run` gives None: the fixes to blame, if known

    def run(self, text: str) -> str | None:
        texts = [text]  # the text before each round, and the fixes applied in it
        applied_in: list[set[tuple]] = []
        for number in range(MAX_ROUNDS):
            result = lint_source(self.display, text.encode(self.encoding), self.settings, force=True)
            if number == 0:
                self.first_findings = result.findings
            candidates = [
                f
                for f in result.findings
                if f.fix is not None and self.applicable(f) and _key(f) not in self.rejected
            ]
            if not candidates:
                self.remaining = result.findings
                return text
            chosen = self._choose(text, candidates)
            new_text = _apply(text, [span for _, spans in chosen for span in spans])
            if new_text == text:
                self.rejected.update(_key(finding) for finding, _ in chosen)
                continue
            for finding, _ in chosen:
                self.first.setdefault(_key(finding), finding)
            applied_in.append({_key(finding) for finding, _ in chosen})
            if new_text in texts:  # back to an earlier text: the fixes since then undo each other
                self.unsettled = set().union(*applied_in[texts.index(new_text) :])
                return None
            if len(new_text) > 2 * len(texts[0]) + 1000:
                break  # fixes add a few lines: one that multiplies itself would grow the file exponentially
            texts.append(new_text)
            text = new_text
            self.applied += [finding for finding, _ in chosen]
        # a fix applied again and again (each round adds the same lines): the others settled
        self.unsettled = {key for key in self.first if sum(key in keys for keys in applied_in) > 1}
        return None

    def _choose(self, text: str, candidates: list[Finding]) -> list[tuple[Finding, list[Span]]]:
        """The fixes to apply together this round: no overlaps, and a result that parses."""
        chosen: list[tuple[Finding, list[Span]]] = []
        taken: list[Span] = []
        mode_fix_taken = False
        kept = _kept_lines(text)
        for finding in candidates:
            spans = _spans(text, finding.fix.edits)  # type: ignore[union-attr]
            if spans is None:
                self.rejected.add(_key(finding))
                self.errors.append(
                    f"{_where(finding, self.notebook)}: {finding.code} fix dropped: its edits lie outside the file"
                )
            elif any(_changes(span, line) for span in spans for line in kept):
                self.rejected.add(_key(finding))
                self.errors.append(
                    f"{_where(finding, self.notebook)}: {finding.code} fix dropped: "
                    "it would change an IPython line or a notebook cell boundary"
                )
            elif finding.code.startswith(MODE_RULES) and mode_fix_taken:
                continue  # computed from modes that the mode fix taken already changes: next round
            elif not any(_overlaps(span, other) for span in spans for other in taken):
                mode_fix_taken = mode_fix_taken or finding.code.startswith(MODE_RULES)
                chosen.append((finding, spans))  # an overlapping fix waits for the next round's text
                taken += spans
        if _parses(_apply(text, taken)):
            return chosen
        parsing = []  # find the culprits: one parse per fix, only when needed
        for finding, spans in chosen:
            if _parses(_apply(text, spans)):
                parsing.append((finding, spans))
            else:
                self.rejected.add(_key(finding))
                self.errors.append(
                    f"{_where(finding, self.notebook)}: {finding.code} fix dropped: the result would not parse"
                )
        return parsing[:1]  # these parse alone; together they may not: one per round


def _key(finding: Finding) -> tuple:
    """A fix's identity that survives the line shifts of earlier fixes."""
    return (finding.code, finding.fix.message, tuple(edit.content for edit in finding.fix.edits))


def _where(finding: Finding, notebook: Notebook | None) -> str:
    return f"{finding.filename}:{finding.location if notebook is None else notebook.place(finding.location)}"


def _kept_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the lines no fix may change: IPython lines and notebook cell boundaries."""
    lines = source_lines(text)
    kept, start = [], 0
    rows = magic_rows(text)
    for row, line in enumerate(lines, 1):
        if row in rows or line == BOUNDARY:
            kept.append((start, start + len(line)))
        start += len(line)
    return kept


def _changes(span: Span, line: tuple[int, int]) -> bool:
    """Whether an edit changes a line: replaces some of it, or inserts inside it (not before or after)."""
    start, end, _ = span
    return start < line[1] and line[0] < end if start < end else line[0] < start < line[1]


def _spans(text: str, edits: tuple[Edit, ...]) -> list[tuple[int, int, str]] | None:
    """Edits as (start, end, content) offsets, content in the file's line endings; None if out of range."""
    starts = [0] + [match.end() for match in LINE_END.finditer(text)]
    line_end = LINE_END.search(text)
    newline = line_end.group() if line_end else "\n"

    def offset(row: int, column: int) -> int | None:
        if row == len(starts) + 1 and column == 1:
            return len(text)  # the end of a last line that has no line break
        if not 1 <= row <= len(starts) or column < 1:
            return None
        limit = starts[row] if row < len(starts) else len(text)
        position = starts[row - 1] + column - 1
        return position if position <= limit else None

    spans = []
    for edit in edits:
        start = offset(edit.location.row, edit.location.column)
        end = offset(edit.end_location.row, edit.end_location.column)
        if start is None or end is None or end < start:
            return None
        spans.append((start, end, LINE_END.sub(newline, edit.content)))
    return spans


def _overlaps(a: tuple[int, int, str], b: tuple[int, int, str]) -> bool:
    return (a[0] < b[1] and b[0] < a[1]) or a[0] == b[0]  # two insertions at one place clash too


def _apply(text: str, spans: list[tuple[int, int, str]]) -> str:
    for start, end, content in sorted(spans, key=lambda span: span[0], reverse=True):
        text = text[:start] + content + text[end:]
    return text


def _parses(text: str) -> bool:
    try:
        cst.parse_module(blank_magic_lines(text))
    except (cst.ParserSyntaxError, SyntaxError, ValueError):
        return False
    return True


def _replace(path: Path, original: bytes, text: str, encoding: str) -> str | None:
    """Write `text` over `path` atomically, keeping its permissions; the reason it was not, or None."""
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError as error:
        return f"the fixed text cannot be encoded as {encoding}: {error.reason}"
    try:
        mode = path.stat().st_mode
        # root may write anywhere: a file without write bits is read-only on purpose
        if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(path, os.W_OK):
            return "the file is read-only"
        if path.read_bytes() != original:
            return "the file changed on disk since it was read"
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".sfdoctor", dir=path.parent)
    except OSError as error:
        return error.strerror or str(error)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, stat.S_IMODE(mode))
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        return error.strerror or str(error)
    return None
