"""Lint files: prefilter, parse, run the selected rules, apply suppressions; in parallel."""

from __future__ import annotations

import ast
import multiprocessing
import os
import re
import sys
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import libcst as cst

from ..findings import Finding, Location, RuleInfo
from .analysis.values import configured_factories
from .cache import ResultCache
from .files.magics import without_magics
from .files.source import DEFAULT_MAX_FILE_SIZE, MEGABYTE, NotLintable, read_source, utf8_source
from .project.facts import ModuleSummary
from .project.link import link
from .project.summary import summarise
from .project.view import ProjectView
from .rule import FileContext, Rule, discover_rules, source_lines

SYNTAX_ERROR = RuleInfo("SF000", "syntax-error", "error", "A file that does not parse.")
# Every finding needs a ScheduleFree optimizer or a `schedule_free_*` Trainer option in the file.
PREFILTER = re.compile(rb"schedule_?free", re.IGNORECASE)
NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
IGNORE_NEXT = re.compile(r"^\s*#\s*sfdoctor:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)
TOO_DEEP = "the code nests too deeply for the analysis (Python's recursion limit)"
PARSER_LIMIT = "Python parses it but libcst, the parser sfdoctor uses, does not (one of its limits)"
# Below this many files, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 16


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


def lint_source(filename: str, data: bytes, settings: Settings, force: bool = False, rules: bool = True) -> FileResult:
    """Lint one file's bytes (`force`: even when the prefilter finds nothing in it, because it uses
    what another module defines; without `rules`, only its project summary is wanted: a module whose
    helpers a training module calls). Never raises: a crashing rule becomes an internal error line."""
    data = without_magics(utf8_source(data))  # IPython lines (notebooks and their exports) read as blank
    result = FileResult(lines=data.count(b"\n"))
    if settings.prefilter and not force and not settings.prefilter_pattern.search(data):
        return result
    result.analysed = True
    result.summary_only = not rules
    try:
        module = cst.parse_module(data)
    except cst.ParserSyntaxError as error:
        finding = _python_syntax_error(filename, data, error)
        if finding is None:
            result.errors.append(f"{filename}: not analysed: {PARSER_LIMIT}")
        else:
            result.findings.append(finding)
        return result
    except (UnicodeDecodeError, LookupError, SyntaxError, ValueError) as error:
        result.findings.append(_syntax_error(filename, 1, 1, f"cannot decode the file: {error}"))
        return result
    try:
        # a file linted on its own is a project of one module: the same analysis as in a run
        project = settings.project or ProjectView({filename: Path(filename).stem})
        context = FileContext(filename, module, settings.factories, project)
    except RecursionError:
        result.errors.append(f"{filename}: not analysed: {TOO_DEEP}")
        return result
    gave_up = []
    for rule_class in discover_rules() if rules else ():
        if not settings.enabled(rule_class.info.code):
            continue
        try:
            rule_class(context).check()
        except RecursionError:  # bounded by Python's recursion limit: the file is reported, not the run
            gave_up.append(rule_class.info.code)
        except Exception as error:  # noqa: BLE001 - one rule's bug must not take the run down
            where = traceback.extract_tb(error.__traceback__)[-1]
            result.errors.append(
                f"{filename}: internal error in {rule_class.info.code}: {type(error).__name__}: {error} "
                f"({Path(where.filename).name}:{where.lineno})"
            )
    if context.findings:
        result.findings = _unsuppressed(context, data)
    if settings.project is not None and filename in settings.project.modules:
        try:
            result.summary = summarise(context, settings.project.modules[filename])
        except RecursionError:
            gave_up.append("the project summary")
        except Exception as error:  # noqa: BLE001 - the file's own findings still count
            result.errors.append(f"{filename}: internal error in the project summary: {type(error).__name__}: {error}")
    if gave_up:
        result.errors.append(f"{filename}: not analysed by {', '.join(gave_up)}: {TOO_DEEP}")
    return result


def _python_syntax_error(filename: str, data: bytes, error: cst.ParserSyntaxError) -> Finding | None:
    """Python's own message and position where it has one: libcst's can point a line too far.
    None when Python parses the file: libcst's parser has limits that Python's has not."""
    try:
        compile(data, filename, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as python_error:
        return _syntax_error(filename, python_error.lineno or 1, python_error.offset or 1, python_error.msg)
    except ValueError:  # null bytes
        return _syntax_error(filename, error.raw_line, error.raw_column + 1, error.message)
    return None


def _syntax_error(filename: str, row: int, column: int, message: str) -> Finding:
    location = Location(max(row, 1), max(column, 1))
    return Finding(SYNTAX_ERROR, f"cannot parse: {message}", filename, location, location)


def _unsuppressed(context: FileContext, data: bytes) -> list[Finding]:
    lines = source_lines(data.decode(context.module.encoding, errors="replace"))
    covered = _ignore_comment_ranges(context, lines)
    kept = []
    for finding in context.findings:
        row = finding.location.row
        line = lines[row - 1] if row <= len(lines) else ""
        if _codes_match(NOQA.search(line), finding.code):
            continue
        if any(first <= row <= last and _codes_match(match, finding.code) for first, last, match in covered):
            continue
        kept.append(finding)
    return kept


def _codes_match(match: re.Match[str] | None, code: str) -> bool:
    if match is None:
        return False
    codes = match.group("codes")
    return codes is None or code in re.findall(r"[A-Z]+[0-9]+", codes.upper())


def _ignore_comment_ranges(context: FileContext, lines: list[str]) -> list[tuple[int, int, re.Match[str]]]:
    """`# sfdoctor: ignore[...]` on the line before a statement covers all of its lines."""
    comments = {row: m for row, line in enumerate(lines, 1) if (m := IGNORE_NEXT.match(line))}
    if not comments:
        return []
    starts: dict[int, int] = {}
    for statement in context.index.parent_statement:
        code_range = context.position(statement)
        starts[code_range.start.line] = max(starts.get(code_range.start.line, 0), code_range.end.line)
    ranges = []
    for row, match in comments.items():
        target = row + 1
        while target <= len(lines) and (not lines[target - 1].strip() or lines[target - 1].lstrip().startswith("#")):
            target += 1
        if target in starts:
            ranges.append((target, starts[target], match))
    return ranges


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
    return FileResult() if data is None else lint_source(display, data, settings, force=bool(why), rules=why != "summary")


_worker_settings: Settings | None = None


def _init_worker(settings: Settings) -> None:
    global _worker_settings
    _worker_settings = settings


def _lint_in_worker(job: Job) -> FileResult:
    assert _worker_settings is not None
    return _lint_path(job[0], job[1], _worker_settings, job[2])


def _lint_round(jobs_list: list[Job], settings: Settings, jobs: int) -> list[FileResult]:
    """Lint (path, display name, why) jobs, in worker processes when there are enough of them."""
    if jobs > 1 and len(jobs_list) >= PARALLEL_THRESHOLD:
        # fork is cheap and keeps the imported rules; elsewhere use the platform default
        context = multiprocessing.get_context("fork") if sys.platform == "linux" else None
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(settings,)) as pool:
            chunks = max(1, min(64, len(jobs_list) // (jobs * 8)))
            return list(pool.map(_lint_in_worker, jobs_list, chunksize=chunks))
    return [_lint_path(path, display, settings, why) for path, display, why in jobs_list]


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


def rule_infos() -> list[RuleInfo]:
    return [SYNTAX_ERROR, *(rule.info for rule in discover_rules())]


__all__ = ["Rule", "Settings", "lint_files", "lint_source", "rule_infos"]
