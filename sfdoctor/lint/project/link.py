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

from ..source import NotLintable, read_source
from .facts import ModuleSummary
from .view import ProjectView, module_names

if TYPE_CHECKING:
    from ..engine import FileResult, Settings

Job = tuple[Path, str, bool]


class _NotLinted:
    analysed = False


_NONE = _NotLinted()
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
        changed = {s.module for d, s in summaries.items() if exported.get(d) != _exports(s) and any(_exports(s))}
        exported.update({d: _exports(s) for d, s in summaries.items()})
        wanted = _packages_and_callees(view, results, paths) | set(_importers(view, results, paths, changed))
        if not wanted:
            break
        batch = [(paths[d], d, True) for d in sorted(wanted)]
    return results, view


def _exports(summary: ModuleSummary) -> tuple:
    """What other modules learn from this one: optimizers it builds, and helpers that save, evaluate
    or switch a mode."""
    return (
        summary.built,
        {n: (c.schedulefree, c.attributes) for n, c in summary.classes.items() if c.schedulefree or c.attributes},
        {n: h for n, h in summary.helpers.items() if h.saves or h.evaluates or h.modes or h.handles_mode},
        # a package's re-exports: importers of the package learn its modules' factories through them
        summary.imports if summary.filename.endswith("__init__.py") else {},
    )


def _packages_and_callees(view: ProjectView, results: dict[str, FileResult], paths: dict[str, Path]) -> set[str]:
    """Files not summarised yet that a summarised one needs: the `__init__.py` of the packages around a
    module that builds optimizers (they may re-export its factories), and the project modules that a
    module which trains with a ScheduleFree optimizer imports (its helpers may save or evaluate)."""
    wanted = set()
    by_module = {s.module: d for d, s in view.summaries.items()}
    for display, summary in view.summaries.items():
        if summary.built or any(c.schedulefree or c.attributes for c in summary.classes.values()):
            package = display.rsplit("/", 1)[0] if "/" in display else ""
            while package:
                wanted.add(f"{package}/__init__.py")
                package = package.rsplit("/", 1)[0] if "/" in package else ""
        if summary.trains:
            for target in summary.imports.values():
                callee = view.module_file(display, target)
                if callee is not None and callee not in by_module.values():
                    wanted.add(callee)
    return {d for d in wanted if d in paths and d not in view.summaries and not results.get(d, _NONE).analysed}


def _importers(
    view: ProjectView, results: dict[str, FileResult], paths: dict[str, Path], modules: set[str]
) -> list[str]:
    """Files that name one of `modules` (by any of its names) and something it exports."""
    exporting = [s for s in view.summaries.values() if s.module in modules]
    stems = {s.module.rsplit(".", 1)[-1] for s in exporting}
    stems |= {part for s in exporting for part in s.module.split(".")}  # packages that re-export it
    names = {n.split(".")[0] for s in exporting for part in _exports(s) for n in part}
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
            data = read_source(paths[display]) or b""
        except (OSError, NotLintable):  # a FIFO would block
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
