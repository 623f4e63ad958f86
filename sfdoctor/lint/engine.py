"""Lint files as one project: prefilter, answer from the cache, lint the rest in parallel (`checker`)."""

from __future__ import annotations

import gc
import multiprocessing
import os
import re
import sys
from dataclasses import dataclass, field
from functools import cached_property
from multiprocessing.connection import Connection
from pathlib import Path

from ..findings import Finding
from .cache import ResultCache
from .files.source import DEFAULT_MAX_FILE_SIZE, MEGABYTE, NotLintable, read_source, utf8_source
from .project.configs import configured_factories
from .project.facts import ModuleSummary
from .project.link import Job, link
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


@dataclass
class LintResult:
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    files: int = 0
    lines: int = 0
    analysed: int = 0
    project: ProjectView | None = None  # the view the files were linted with (fixes re-lint with it)


def _lint_job(job: Job, settings: Settings) -> FileResult:
    wanted = settings.prefilter_pattern if settings.prefilter and not job.why else None
    try:
        data = read_source(job.path, settings.max_file_size, wanted)
    except OSError as error:
        return FileResult(errors=[f"{job.display}: cannot read: {error.strerror or error}"])
    except NotLintable as reason:
        return FileResult(errors=[f"{job.display}: not analysed: {reason}"])
    if data is None:
        return FileResult()
    from .checker import lint_source

    return lint_source(job.display, data, settings, force=bool(job.why), rules=job.rules, keep=not job.rules)


def _serve(connection: Connection) -> None:
    """A worker: lint each batch of jobs sent, until None comes."""
    while (message := connection.recv()) is not None:
        settings, batch = message
        connection.send([_lint_job(job, settings) for job in batch])


class Workers:
    """Worker processes kept for the whole run, each file always sent to the same one: it keeps the
    files it parsed for a summary (`lint_source(keep=True)`), so a file summarised in a round and checked
    by the rules at the end is parsed once. Started on the first batch with enough work for them."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._connections: list[Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._owner: dict[str, int] = {}
        self._busy: set[int] = set()  # workers sent a batch whose results were not read yet

    def run(self, batch: list[Job], settings: Settings) -> list[FileResult]:
        if not batch:
            return []  # all answered from the cache: libcst is never loaded
        from . import checker  # noqa: F401 - loaded here, before the workers fork: each would load libcst again

        sizes = [_size(job.path) for job in batch]
        if not self._connections and not (
            self.count > 1 and len(batch) > 1 and (len(batch) >= PARALLEL_THRESHOLD or sum(sizes) >= PARALLEL_BYTES)
        ):
            return [_lint_job(job, settings) for job in batch]
        self._start()
        shares: list[list[int]] = [[] for _ in self._connections]
        load = [0] * len(shares)
        # a file goes to the worker that holds it; the others, largest first, to the least loaded
        for position in sorted(range(len(batch)), key=lambda i: (batch[i].display not in self._owner, -sizes[i])):
            owner = self._owner.setdefault(batch[position].display, min(range(len(load)), key=load.__getitem__))
            shares[owner].append(position)
            load[owner] += sizes[position]
        for worker, share in enumerate(shares):
            try:
                self._connections[worker].send((settings, [batch[i] for i in share]))
                self._busy.add(worker)
            except OSError:
                pass  # it died in an earlier batch
        results: list[FileResult] = [FileResult()] * len(batch)
        for worker, share in enumerate(shares):
            done = None
            if worker in self._busy:
                try:
                    done = self._connections[worker].recv()
                except EOFError:
                    pass  # it died (out of memory, killed)
                self._busy.discard(worker)
            if done is None:  # a dead worker's share is linted here
                done = [_lint_job(batch[i], settings) for i in share]
            for position, result in zip(share, done):
                results[position] = result
        return results

    def _start(self) -> None:
        if self._connections:
            return
        # fork is cheap and keeps the imported rules; elsewhere use the platform default
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
        for _ in range(self.count):
            ours, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs,), daemon=True)
            process.start()
            theirs.close()
            self._connections.append(ours)
            self._processes.append(process)

    def close(self) -> None:
        """Idle workers stop; one still busy (the run was interrupted) is stopped."""
        for worker, (connection, process) in enumerate(zip(self._connections, self._processes)):
            if worker in self._busy:
                process.terminate()
                continue
            try:
                connection.send(None)
            except OSError:
                pass  # it died already
        for process in self._processes:
            process.join()
        if "sfdoctor.lint.checker" in sys.modules:
            sys.modules["sfdoctor.lint.checker"].forget_parsed()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # the lint reports it


def _cached_round(batch: list[Job], settings: Settings, workers: Workers, cache: ResultCache) -> list[FileResult]:
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
    for job in batch:
        display = job.display
        try:
            data = read_source(job.path, settings.max_file_size, None if job.why else wanted)
        except (OSError, NotLintable):
            continue  # the worker reports it
        if data is None:
            answered[display] = FileResult()  # over the size limit and no mention of schedulefree
            continue
        data = utf8_source(data)
        if settings.prefilter and not job.why and not settings.prefilter_pattern.search(data):
            answered[display] = FileResult(lines=data.count(b"\n"))
            continue
        keys[display] = cache.key(data, display, job.why, job.rules, context)
        found = cache.get(keys[display])
        if found is not None:
            answered[display] = found
    misses = [job for job in batch if job.display not in answered]
    for display, result in zip((job.display for job in misses), workers.run(misses, settings)):
        answered[display] = result
        if display in keys and not result.errors:
            cache.put(keys[display], result)
    return [answered[job.display] for job in batch]


def lint_files(
    files: list[tuple[Path, str]], settings: Settings, jobs: int | None = None, cache_folder: Path | None = None
) -> LintResult:
    """Lint the files as one project: each file with what the others define (see `project.link`);
    with `cache_folder`, reuse the results of files that did not change."""
    cache = ResultCache(cache_folder)
    workers = Workers(jobs or os.cpu_count() or 1)
    # The parser makes millions of small objects that live as long as their file's analysis, and the
    # parsed files are kept for the run: at the default thresholds the collector walks them again and
    # again (a fifth of the run). Collections stay on, just rarer; the workers inherit it.
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        results, project = link(files, settings, lambda batch, linked: _cached_round(batch, linked, workers, cache))
    finally:
        workers.close()
        gc.set_threshold(*thresholds)
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
