"""Findings in notebooks, placed in their cells: the analysis reports rows of `Notebook.text`, users
read `train.ipynb:cell 3:2:5`."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from ...findings import Edit, Finding, Location, Related
from .notebook import InvalidNotebook, Notebook, is_notebook
from .source import NotLintable, read_file


def in_cells(findings: list[Finding]) -> list[Finding]:
    """The findings with every location in a notebook given as (cell, line in the cell, column)."""
    return [_in_cells(finding) for finding in findings]


def cell_source(filename: str, cell: int) -> str:
    """The source of a notebook's cell as it is on disk now ("" if it cannot be read)."""
    notebook = _current(filename)
    return notebook.cell_source(cell) if notebook is not None else ""


def _in_cells(finding: Finding) -> Finding:
    if not any(is_notebook(name) for name in (finding.filename, *(r.filename for r in finding.related))):
        return finding
    place = _placer(finding.filename)
    fix = finding.fix
    if fix is not None:
        fix = replace(fix, edits=tuple(Edit(e.content, place(e.location), place(e.end_location)) for e in fix.edits))
    return replace(
        finding,
        location=place(finding.location),
        end_location=place(finding.end_location),
        related=tuple(Related(r.message, r.filename, _placer(r.filename)(r.location)) for r in finding.related),
        fix=fix,
    )


def _placer(filename: str) -> Callable[[Location], Location]:
    notebook = _current(filename) if is_notebook(filename) else None
    return notebook.place if notebook is not None else lambda location: location


def _current(filename: str) -> Notebook | None:
    try:
        status = os.stat(filename)
    except OSError:
        return None
    return _load(filename, status.st_mtime_ns, status.st_size)


@lru_cache(maxsize=8)
def _load(filename: str, modified: int, size: int) -> Notebook | None:
    """Read once per version of the file (a fix rewrites it), for all its findings and code frames."""
    try:
        return Notebook.parse(read_file(Path(filename)) or b"")
    except (OSError, NotLintable, InvalidNotebook):
        return None
