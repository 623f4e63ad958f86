"""Lint files as one project: prefilter, answer from the cache, lint the rest in parallel (`checker`)."""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..findings import Finding
from .cache import ResultCache
from .files.source import DEFAULT_MAX_FILE_SIZE, MEGABYTE, NotLintable, read_source, utf8_source
from .project.configs import configured_factories
from .project.facts import ModuleSummary
from .project.link import link
from .project.view import ProjectView

# Every finding needs a ScheduleFree optimizer or a `schedule_free_*` Trainer option in the file.
PREFILTER = re.compile(rb"schedule_?free", re.IGNORECASE)
# Below this many files, and this much code, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 16
PARALLEL_BYTES = 256 * 1024


@dataclass(frozen=True)
class Settings:
    select: tuple[str, ...] = ("SF",)
    ignore: tuple[str, ...] = ()
    factories: frozenset[str] = frozenset()  # qualified names of functions returning SF optimizers
    prefilter: bool = True
    max_file_size: int = DEFAULT_MAX_FILE_SIZE * MEGABYTE  # bytes; larger files are not parsed
    # what the other modules of the project define; None lints each file on its own
    project: ProjectView | None = field(default=None, compare=False)

    def enabled(self, code: str) -> bool:
        """Ruff's rule: the longest matching prefix decides; on a tie, ignore wins."""
        selected = max((len(p) for p in self.select if code.startswith(p)), default=-1)
        ignored = max((len(p) for p in self.ignore if code.startswith(p)), default=-1)
        return selected > ignored

    @cached_property
    def prefilter_pattern(self) -> re.Pattern[bytes]:
        """Built once per run, not per file."""
        names = sorted({f.rsplit(".", 1)[-1] for f in configured_factories(self.factories)})
        if not names:
            return PREFILTER
        return re.compile(PREFILTER.pattern + b"|" + b"|".join(re.escape(n.encode()) for n in names), re.IGNORECASE)


@dataclass
class FileResult:
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # internal errors, one line each
    lines: int = 0
    analysed: bool = False
    summary: ModuleSummary | None = None  # what the module tells the rest of the project
    summary_only: bool = False  # the rules did not run: the findings are still to come


@dataclass
class LintResult:
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    files: int = 0
    lines: int = 0
    analysed: int = 0
    project: ProjectView | None = None  # the view the files were linted with (fixes re-lint with it)


# Why a file is linted in a round: the prefilter picks it (""), it uses what another module exports
# ("uses"), or a training module calls its helpers and only its summary is wanted ("summary").
Job = tuple[Path, str, str]


def _lint_path(path: Path, display: str, settings: Settings, why: str = "") -> FileResult:
    wanted = settings.prefilter_pattern if settings.prefilter and not why else None
    try:
        data = read_source(path, settings.max_file_size, wanted)
    except OSError as error:
        return FileResult(errors=[f"{display}: cannot read: {error.strerror or error}"])
    except NotLintable as reason:
        return FileResult(errors=[f"{display}: not analysed: {reason}"])
    if data is None:
        return FileResult()
    from .checker import lint_source

    return lint_source(display, data, settings, force=bool(why), rules=why != "summary")


_worker_settings: Settings | None = None


def _init_worker(settings: Settings) -> None:
    global _worker_settings
    _worker_settings = settings


def _lint_in_worker(job: Job) -> FileResult:
    assert _worker_settings is not None
    return _lint_path(job[0], job[1], _worker_settings, job[2])


def _lint_round(jobs_list: list[Job], settings: Settings, jobs: int) -> list[FileResult]:
    """Lint (path, display name, why) jobs, in worker processes when there is enough work for them."""
    if not jobs_list:
        return []  # all answered from the cache: libcst is never loaded
    from . import checker  # noqa: F401 - loaded here, before the workers fork: each would load libcst again

    sizes = [_size(path) for path, _, _ in jobs_list]
    if jobs > 1 and len(jobs_list) > 1 and (len(jobs_list) >= PARALLEL_THRESHOLD or sum(sizes) >= PARALLEL_BYTES):
        # the largest files first, so that the workers finish together
        order = sorted(range(len(jobs_list)), key=lambda i: -sizes[i])
        # fork is cheap and keeps the imported rules; elsewhere use the platform default
        context = multiprocessing.get_context("fork") if sys.platform == "linux" else None
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(settings,)) as pool:
            chunks = max(1, min(64, len(jobs_list) // (jobs * 8)))
            done = pool.map(_lint_in_worker, [jobs_list[i] for i in order], chunksize=chunks)
            results: list[FileResult] = [FileResult()] * len(jobs_list)
            for position, result in zip(order, done):
                results[position] = result
            return results
    return [_lint_path(path, display, settings, why) for path, display, why in jobs_list]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # the lint reports it


def _cached_round(
    batch: list[Job], settings: Settings, jobs: int, cache: ResultCache
) -> list[FileResult]:
    """One round of the project lint: files the prefilter skips and files whose bytes, settings and
    project view are unchanged since the last run are answered here; the rest go to the workers."""
    assert settings.project is not None
    context = (
        settings.select, settings.ignore, sorted(settings.factories), settings.prefilter, settings.max_file_size,
        settings.project.digest(),
    )
    wanted = settings.prefilter_pattern if settings.prefilter else None
    answered: dict[str, FileResult] = {}
    keys: dict[str, str] = {}
    for path, display, why in batch:
        try:
            data = read_source(path, settings.max_file_size, None if why else wanted)
        except (OSError, NotLintable):
            continue  # the worker reports it
        if data is None:
            answered[display] = FileResult()  # over the size limit and no mention of schedulefree
            continue
        data = utf8_source(data)
        if settings.prefilter and not why and not settings.prefilter_pattern.search(data):
            answered[display] = FileResult(lines=data.count(b"\n"))
            continue
        keys[display] = cache.key(data, display, why, context)
        found = cache.get(keys[display])
        if found is not None:
            answered[display] = found
    misses = [job for job in batch if job[1] not in answered]
    for (_, display, _), result in zip(misses, _lint_round(misses, settings, jobs)):
        answered[display] = result
        if display in keys and not result.errors:
            cache.put(keys[display], result)
    return [answered[display] for _, display, _ in batch]


def lint_files(
    files: list[tuple[Path, str]], settings: Settings, jobs: int | None = None, cache_folder: Path | None = None
) -> LintResult:
    """Lint the files as one project: each file with what the others define (see `project.link`);
    with `cache_folder`, reuse the results of files that did not change."""
    jobs = jobs or os.cpu_count() or 1
    cache = ResultCache(cache_folder)
    results, project = link(files, settings, lambda batch, linked: _cached_round(batch, linked, jobs, cache))
    cache.save()
    total = LintResult(files=len(files), project=project)
    for result in results.values():
        total.findings.extend(result.findings)
        total.errors.extend(result.errors)
        total.lines += result.lines
        total.analysed += result.analysed
    total.findings.sort(key=Finding.sort_key)
    return total


__all__ = ["Settings", "lint_files"]
