"""The one finding type shared by `lint` and `replay`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]
DOCS_URL = "https://github.com/sfdoctor/sfdoctor/blob/main/rules/{code}.md"


@dataclass(frozen=True)
class RuleInfo:
    """A rule's public identity: code, name and severity are a public interface (RULES.md)."""

    code: str
    name: str
    severity: Severity
    summary: str

    @property
    def url(self) -> str:
        return DOCS_URL.format(code=self.code)


@dataclass(frozen=True)
class Location:
    row: int  # 1-based
    column: int  # 1-based
    cell: int | None = None  # in a notebook: the cell (1-based, all cells counted), `row` is in that cell

    def __str__(self) -> str:
        """As it follows the file name in `FILE:ROW:COL` (`FILE:cell 3:ROW:COL` in a notebook)."""
        return f"{self.row}:{self.column}" if self.cell is None else f"cell {self.cell}:{self.row}:{self.column}"


@dataclass(frozen=True)
class Related:
    message: str
    filename: str
    location: Location


@dataclass(frozen=True)
class Edit:
    """Replace the text between two locations (end exclusive) by `content`."""

    content: str
    location: Location
    end_location: Location


@dataclass(frozen=True)
class Fix:
    message: str
    applicability: Literal["safe", "unsafe"]
    edits: tuple[Edit, ...] = ()


@dataclass(frozen=True)
class Finding:
    rule: RuleInfo
    message: str
    filename: str
    location: Location
    end_location: Location
    possible: bool = False
    related: tuple[Related, ...] = ()
    fix: Fix | None = None
    # Replay only: where in the run the finding was observed.
    step: int | None = None
    optimizer: int | None = None
    group: int | None = None
    # Extra lines shown under the message (e.g. the suggested replacement code).
    notes: tuple[str, ...] = field(default=())

    @property
    def code(self) -> str:
        return self.rule.code

    @property
    def severity(self) -> Severity:
        """A finding that depends on an unknown value is reported as a warning."""
        return "warning" if self.possible else self.rule.severity

    def sort_key(self) -> tuple:
        return (self.filename, self.location.cell or 0, self.location.row, self.location.column, self.code)

    def to_json(self) -> dict:
        data = {
            "code": self.code,
            "name": self.rule.name,
            "severity": self.severity,
            "possible": self.possible,
            "message": self.message,
            "filename": self.filename,
            "location": _location(self.location),
            "end_location": _location(self.end_location),
            "fix": _fix(self.fix),
            "url": self.rule.url,
            "related": [
                {"message": r.message, "filename": r.filename, "location": _location(r.location)}
                for r in self.related
            ],
            "notes": list(self.notes),
        }
        if self.location.cell is not None:
            data["cell"] = self.location.cell  # as ruff: the cell, and `location` in that cell
        for key in ("step", "optimizer", "group"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


def _location(location: Location) -> dict:
    cell = {} if location.cell is None else {"cell": location.cell}
    return {"row": location.row, "column": location.column, **cell}


def _fix(fix: Fix | None) -> dict | None:
    if fix is None:
        return None
    return {
        "message": fix.message,
        "applicability": fix.applicability,
        "edits": [
            {
                "content": e.content,
                "location": _location(e.location),
                "end_location": _location(e.end_location),
            }
            for e in fix.edits
        ],
    }
