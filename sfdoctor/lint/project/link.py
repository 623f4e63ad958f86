"""Phase 2 of the project analysis: link the summaries, then run the rules with the linked view.

Round 0 summarises the files the prefilter picks (they name ScheduleFree or a configured factory).
Each later round links the summaries into a new `ProjectView` and summarises what the new view may
change: files that import a module whose exports changed (among them files that never name
ScheduleFree: a trainer that gets its optimizer from `library.train_util`), and the project modules a
training module calls. Rounds stop when no module's exports change; then the rules run once, with the
final view, on every file whose findings count.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..files.source import NotLintable, read_source
from .configs import configured_optimizers
from .facts import ModuleSummary
from .view import ProjectView, module_names

if TYPE_CHECKING:
    from ..engine import FileResult, Settings

MAX_ROUNDS = 8  # each round summarises only what the previous one changed


@dataclass(frozen=True)
class Job:
    """One file to lint, and why: the prefilter picks it (""), it uses what another module exports
    ("uses"), or a training module calls its helpers ("summary"). The rules run at the end, with the
    final view; in the linking rounds only the file's summary is wanted (`rules` false)."""

    path: Path
    display: str
    why: str = ""
    rules: bool = True


def link(
    files: list[tuple[Path, str]],
    settings: Settings,
    run: Callable[[list[Job], Settings], list[FileResult]],
) -> tuple[dict[str, FileResult], ProjectView]:
    """Lint `files` with `run` (one batch of jobs under one view): the last result per file, and the
    view they were linted with."""
    view = ProjectView(module_names(files), configured=configured_optimizers(files))
    paths = {display: path for path, display in files}
    if not settings.prefilter:  # a benchmark of the analysis itself: every file linted once, on its own
        batch = [Job(path, display) for path, display in files]
        return dict(zip(paths, run(batch, replace(settings, project=view)))), view
    words = SourceWords(paths)
    batch = [Job(path, display, "uses" if _builds_from_config(view, path) else "", False) for path, display in files]
    results: dict[str, FileResult] = {}
    exported: dict[str, tuple] = {}
    checked: set[str] = set()  # files whose findings count: the prefilter's, and files using another's exports
    for _ in range(MAX_ROUNDS):
        results.update(zip((job.display for job in batch), run(batch, replace(settings, project=view))))
        checked |= {job.display for job in batch if job.why != "summary" and results[job.display].analysed}
        summaries = {d: r.summary for d, r in results.items() if r.summary is not None}
        view = view.with_summaries(summaries)
        builders, handed = set(), set()
        for display, summary in summaries.items():
            before = exported.get(display, ((), ()))
            now = exported[display] = (_optimizer_exports(summary, view), _received(summary, view))
            if now[0] != before[0] and any(now[0]):
                builders.add(summary.module)
            if now[1] != before[1] and now[1]:
                handed.add(display)  # another module now hands its functions a ScheduleFree optimizer
        # their summaries may change (what they build, hand on, train): summarised again next round
        changed = handed | set(_importers(view, results, words, builders))
        checked |= changed
        callees = _packages_and_callees(view, results, paths, exported) - changed
        if not callees and not changed:
            break
        batch = [Job(paths[d], d, "summary", False) for d in sorted(changed | callees)]
    final = [Job(paths[d], d, "uses", True) for d in sorted(checked)]
    results.update(zip((job.display for job in final), run(final, replace(settings, project=view))))
    return results, view


BUILDS_FROM_CONFIG = re.compile(rb"\b(?:instantiate|get_class)\s*\(\s*[\w.\[\]\"']*optim")


def _builds_from_config(view: ProjectView, path: Path) -> bool:
    """A file that builds an optimizer from a config (`instantiate(cfg.optimizer, ...)`), in a project
    whose configs name a ScheduleFree optimizer: linted although it never names ScheduleFree."""
    if not view.configured:
        return False
    try:
        return BUILDS_FROM_CONFIG.search(read_source(path) or b"") is not None
    except (OSError, NotLintable):
        return False


def _optimizer_exports(summary: ModuleSummary, view: ProjectView) -> tuple:
    """The optimizers other modules get from this one: factories, ScheduleFree classes, `self.x` of
    its classes, LightningModules that train with one (subclasses inherit it), and a package's
    re-exports of those (importers of the package reach them)."""
    reexports = {}
    if summary.filename.endswith("__init__.py"):
        reexports = {n: t for n, t in summary.imports.items()
                     if view.built(summary.filename, t) or view.lightning_named(summary.filename, t)}
    classes = {n: (c.schedulefree, c.attributes, view.lightning(summary.filename, n, summary.classes))
               for n, c in summary.classes.items()}
    return summary.built, {n: c for n, c in classes.items() if any(c)}, reexports


def _received(summary: ModuleSummary, view: ProjectView) -> tuple:
    """The optimizers other modules hand to this module's functions."""
    return tuple((name, tuple(passed)) for name in summary.helpers if (passed := view.passed_to(summary.filename, name)))


def _helper_exports(summary: ModuleSummary) -> dict:
    """Its functions that save, evaluate or switch a mode when called."""
    return {n: h for n, h in summary.helpers.items() if h.saves or h.evaluates or h.modes or h.handles_mode}


def _packages_and_callees(
    view: ProjectView, results: dict[str, FileResult], paths: dict[str, Path], exported: dict[str, tuple]
) -> set[str]:
    """Files not summarised yet that a summarised one needs: the `__init__.py` of the packages around a
    module that builds optimizers (they may re-export its factories), the project modules that a
    module which trains with a ScheduleFree optimizer imports (its helpers may save or evaluate), and
    the modules of the base classes of a class with Lightning hooks or configure_optimizers."""
    wanted = set()
    for display, summary in view.summaries.items():
        if summary.built or exported[display][0][1]:  # this round's `_optimizer_exports`: its classes
            package = display.rsplit("/", 1)[0] if "/" in display else ""
            while package:
                wanted.add(f"{package}/__init__.py")
                package = package.rsplit("/", 1)[0] if "/" in package else ""
        for passed in summary.passes:  # a module whose function is handed a ScheduleFree optimizer
            wanted.add(view.module_file(display, passed.callee))
        for name, facts in summary.classes.items():
            if facts.optimizer or facts.methods or view.subclassed(display, name):
                # a LightningModule's base classes (and theirs) may define its hooks or configure_optimizers
                wanted.update(view.module_file(display, base) for base in facts.bases)
        if summary.trains:
            for target in (*summary.imports.values(), *summary.uses):  # uses: `import pkg.mod` then `pkg.mod.f()`
                wanted.add(view.module_file(display, target))
    # a file parsed before (it failed: SF000) has nothing to add
    return {d for d in wanted if d in paths and d not in view.summaries and not (d in results and results[d].analysed)}


def _importers(
    view: ProjectView,
    results: dict[str, FileResult],
    words: SourceWords,
    modules: set[str],
) -> list[str]:
    """Files that import one of `modules`: summarised ones by the exports they call, others by an
    import line naming the module and a word naming something it exports."""
    if not modules:
        return []
    exporting = [s for s in view.summaries.values() if s.module in modules]
    stems = {s.module.rsplit(".", 1)[-1] for s in exporting}
    exports = [(*_optimizer_exports(s, view), _helper_exports(s)) for s in exporting]
    names = {n.split(".")[0] for parts in exports for part in parts for n in part}
    found = []
    for display, result in results.items():
        summary = result.summary
        if summary is not None:
            if summary.module not in modules and any(_calls_export(view, display, used, modules, names)
                                                     for used in summary.uses):
                found.append(display)
            continue
        if result.analysed:
            continue  # analysed but not summarised (SF000, an internal error): nothing to add
        if words.imports(display, stems, names):
            found.append(display)
    return found


IMPORT_LINE = re.compile(r"(?m)^[ \t]*(?:from|import)\s[^\n]*")
WORD = re.compile(r"\w+")


class SourceWords:
    """The words of the import lines of the files no summary describes, read once per run (each round
    asks again); a file's other words are read only for a file whose imports match."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths
        self.imported: dict[str, frozenset[str]] = {}

    def _text(self, display: str) -> str:
        try:
            return (read_source(self.paths[display]) or b"").decode("utf-8", errors="replace")
        except (OSError, NotLintable):  # a FIFO would block
            return ""

    def imports(self, display: str, modules: set[str], names: set[str]) -> bool:
        """An import line names one of `modules`, and a word of the file one of `names`."""
        if display not in self.imported:
            self.imported[display] = frozenset(WORD.findall(" ".join(IMPORT_LINE.findall(self._text(display)))))
        return bool(self.imported[display] & modules) and not names.isdisjoint(WORD.findall(self._text(display)))


def _calls_export(view: ProjectView, importer: str, used: str, modules: set[str], names: set[str]) -> bool:
    """`importer` calls `used` (`library.train_util.get_optimizer`), which one of `modules` exports."""
    found = view.locate(importer, used)
    return found is not None and found[0].module in modules and found[1].split(".")[0] in names
