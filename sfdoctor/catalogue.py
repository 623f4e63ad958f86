"""All rule codes (lint and replay) and their documents."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .findings import RuleInfo


def all_rules() -> list[RuleInfo]:
    from .lint.analysis.dependencies import DEPENDENCY_RULES
    from .lint.checker import rule_infos
    from .replay.codes import REPLAY_RULES

    return sorted([*rule_infos(), *DEPENDENCY_RULES, *REPLAY_RULES], key=lambda info: info.code)


def docs_folder() -> Path:
    """The rule documents: inside the installed wheel, or `rules/` beside the package in a checkout."""
    packaged = resources.files("sfdoctor") / "rule_docs"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "rules"


def rule_document(code: str) -> str:
    path = docs_folder() / f"{code}.md"
    if not path.is_file():
        return f"{code}: no document found at {path}"
    return path.read_text(encoding="utf-8")
