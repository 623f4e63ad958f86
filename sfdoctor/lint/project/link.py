"""Phase 2 of the project analysis: link the summaries and lint the files that use them.

Round 0 lints the files the prefilter picks (they name ScheduleFree or a configured factory) and
collects their summaries. Each later round links the summaries into a new `ProjectView` and lints
again the files that import a module whose exports changed — and, for the first time, files that
never name ScheduleFree but import such a module (a trainer that gets its optimizer from
`library.train_util`). Rounds stop when no module's exports change.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .facts import ModuleSummary
from .view import ProjectView, module_names

if TYPE_CHECKING:
    from ..engine import FileResult, Settings

Job = tuple[Path, str, bool]
MAX_ROUNDS = 4


def link(
    files: list[tuple[Path, str]],
    settings: Settings,
    run: Callable[[list[Job], Settings], list[FileResult]],
) -> tuple[dict[str, FileResult], ProjectView]:
    """Lint `files` with `run` (one batch of jobs under one view), round by round: the last result per
    file, and the view they were linted with."""
    view = ProjectView(module_names(files))
    paths = dict((display, path) for path, display in files)
    batch = [(path, display, False) for path, display in files]
    results: dict[str, FileResult] = {}
    exported: dict[str, object] = {}
    for _ in range(MAX_ROUNDS):
        current = replace(settings, project=view)
        results.update(zip((display for _, display, _ in batch), run(batch, current)))
        summaries = {d: r.summary for d, r in results.items() if r.summary is not None}
        view = view.with_summaries(summaries)
        changed = {
            s.module for d, s in summaries.items() if s.exports_optimizers and exported.get(d) != _exports(s)
        }
        exported.update({d: _exports(s) for d, s in summaries.items()})
        if not changed:
            break
        batch = [(paths[d], d, True) for d in _importers(view, results, paths, changed)]
        if not batch:
            break
    return results, view


def _exports(summary: ModuleSummary) -> tuple:
    return (summary.built, {n: (c.schedulefree, c.attributes) for n, c in summary.classes.items()})


def _importers(
    view: ProjectView, results: dict[str, FileResult], paths: dict[str, Path], modules: set[str]
) -> list[str]:
    """Files that name one of `modules` (by any of its names) and something it exports."""
    exporting = [s for s in view.summaries.values() if s.module in modules]
    stems = {s.module.rsplit(".", 1)[-1] for s in exporting}
    names = {n.split(".")[0] for s in exporting for n in s.built}
    names |= {n for s in exporting for n, c in s.classes.items() if c.schedulefree or c.attributes}
    mentions = [_words(stems), _words(names)]
    found = []
    for display, result in results.items():
        summary = result.summary
        if summary is not None and (
            summary.module in modules
            or not any(_names_module(view, display, target, modules) for target in summary.imports.values())
        ):
            continue
        if summary is None and result.analysed:
            continue  # parsed and failed (SF000): nothing to add
        try:
            data = paths[display].read_bytes()
        except OSError:
            continue
        if all(pattern.search(data) for pattern in mentions):
            found.append(display)
    return found


def _words(words: set[str]) -> re.Pattern[bytes]:
    return re.compile(rb"\b(?:" + b"|".join(re.escape(w.encode()) for w in sorted(words)) + rb")\b")


def _names_module(view: ProjectView, importer: str, target: str, modules: set[str]) -> bool:
    """`library.train_util` or `library.train_util.get_optimizer` imported in `importer` is one of `modules`."""
    found = view.module_of(importer, target)
    return found is not None and found.module in modules
