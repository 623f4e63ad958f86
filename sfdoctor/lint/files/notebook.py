"""Jupyter notebooks (`.ipynb`): their code cells as one Python text, and back.

The analysis, the fixes and the findings work on `Notebook.text`: the code cells in order, each
followed by a boundary comment line (markdown and raw cells are left out, and so are cells of a
non-Python cell magic such as `%%bash`). Findings are then placed in their cell (`position`), and
a fixed text is split at the boundaries to rewrite the cells' sources, leaving the rest of the JSON
as it was (`with_text`).
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

from ...findings import Location

# Outputs (images, tables) make a notebook far larger than its code: a notebook file may be this many
# times the size limit on code before it is not read at all.
SIZE_FACTOR = 100
# Ends each code cell in `Notebook.text`: a comment, so the analysis ignores it; a fix never edits it.
BOUNDARY = "#%% sfdoctor: end of cell\n"
# Cell magics whose body is the notebook's own Python code; the body of any other (`%%bash`,
# `%%writefile`, `%%html`) is another language or another program: the cell is left out.
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug"})
CELL_MAGIC = re.compile(r"\s*%%(\w+)")
INDENT = re.compile(rb"\{\r?\n([ \t]+)\"")


class InvalidNotebook(ValueError):
    """Not a notebook sfdoctor can read; the message is one line."""


def is_notebook(path: Path | str) -> bool:
    return str(path).endswith(".ipynb")


@dataclass(frozen=True)
class Notebook:
    content: dict  # the whole JSON document
    cells: tuple[int, ...]  # the index of each code cell in `text`, in the notebook's cells
    sources: tuple[str, ...]  # their sources
    text: str
    first_rows: tuple[int, ...]  # the row of `text` where each of them starts

    @classmethod
    def parse(cls, data: bytes) -> Notebook:
        try:
            content = json.loads(data)
        except ValueError as error:  # bad JSON, or bytes that are not UTF-8/16/32
            raise InvalidNotebook(f"not a valid Jupyter notebook: invalid JSON: {error}") from None
        all_cells = content.get("cells") if isinstance(content, dict) else None
        if not isinstance(all_cells, list):
            raise InvalidNotebook('not a valid Jupyter notebook: no "cells" list (nbformat 4)')
        cells, sources, first_rows, parts, row = [], [], [], [], 1
        for index, cell in enumerate(all_cells if _is_python(content) else ()):
            if not isinstance(cell, dict):
                raise InvalidNotebook(f"not a valid Jupyter notebook: cell {index + 1} is not an object")
            if cell.get("cell_type") != "code":
                continue
            source = _joined(cell.get("source"), index)
            magic = CELL_MAGIC.match(source)
            if magic and magic.group(1) not in PYTHON_CELL_MAGICS:
                continue
            code = source if not source or source.endswith("\n") else source + "\n"
            cells.append(index)
            sources.append(source)
            first_rows.append(row)
            parts += [code, BOUNDARY]
            row += code.count("\n") + 1
        return cls(content, tuple(cells), tuple(sources), "".join(parts), tuple(first_rows))

    def position(self, row: int) -> tuple[int, int]:
        """(cell number, counting all cells from 1; line in that cell) of a row of `text`."""
        code_cell = max(0, bisect_right(self.first_rows, row) - 1)
        return self.cells[code_cell] + 1, row - self.first_rows[code_cell] + 1

    def place(self, location: Location) -> Location:
        """A location of `text` as (cell, line in the cell, column)."""
        if not self.cells or location.cell is not None:
            return location
        cell, row = self.position(location.row)
        return Location(row, location.column, cell)

    def cell_source(self, number: int) -> str:
        """The source of cell `number` (counting from 1), or "" when it is not a code cell in `text`."""
        return self.sources[self.cells.index(number - 1)] if number - 1 in self.cells else ""

    def split(self, text: str) -> list[str]:
        """The cell sources a (fixed) `text` holds, in the form of the original ones (last line break
        or not); InvalidNotebook when its cell boundaries are not those of `self.text`."""
        parts = text.split(BOUNDARY)
        if len(parts) != len(self.cells) + 1 or parts[-1]:
            raise InvalidNotebook("the fixes moved a cell boundary")
        return [
            part if original.endswith("\n") or not part.endswith("\n") else part[:-1]
            for part, original in zip(parts, self.sources)
        ]

    def with_text(self, text: str, data: bytes) -> str:
        """The notebook's JSON with the code cells of `text`: everything else as it was, in the
        indentation and escaping of the original file `data`."""
        cells = list(self.content["cells"])
        for index, original, source in zip(self.cells, self.sources, self.split(text)):
            if source != original:
                as_list = isinstance(cells[index]["source"], list)
                cells[index] = {**cells[index], "source": source.splitlines(keepends=True) if as_list else source}
        indent = INDENT.search(data)
        written = json.dumps(
            {**self.content, "cells": cells},
            indent=indent.group(1).decode() if indent else None,
            ensure_ascii=data.isascii(),
        )
        return written + "\n" if data.endswith(b"\n") else written


def _is_python(content: dict) -> bool:
    """A notebook with a Python kernel, or one that does not say (an R or Julia notebook is skipped)."""
    metadata = content.get("metadata")
    info = metadata.get("language_info") if isinstance(metadata, dict) else None
    name = info.get("name", "python") if isinstance(info, dict) else "python"
    return str(name).lower().startswith("python")


def _joined(source: object, index: int) -> str:
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        return "".join(source)
    raise InvalidNotebook(
        f"not a valid Jupyter notebook: the source of cell {index + 1} is not a string or a list of strings"
    )
