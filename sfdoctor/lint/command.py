"""The `sfdoctor lint` command."""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click
from rich.console import Console

from ..config import Config, ConfigError, load_config
from ..errors import FatalError
from ..findings import Finding
from ..output import (
    FORMATS,
    make_console,
    plural,
    print_concise,
    print_full,
    print_github,
    print_json,
    print_sarif,
    print_statistics,
    summary_line,
)
from .analysis.dependencies import (
    DEPENDENCY_RULES,
    accelerate_deepspeed_evidence,
    is_dependency_file,
    lint_dependency_file,
    never_calls_optimizer_train,
)
from .cache import CACHE_FOLDER
from .engine import Settings, lint_files
from .files.cells import in_cells
from .files.discover import DEFAULT_EXCLUDE, PathPatterns, changed_files, discover
from .files.source import DEFAULT_MAX_FILE_SIZE, MEGABYTE

if TYPE_CHECKING:
    from .fixes.fix import FileFix

Files = list[tuple[Path, str]]


def _codes(values: Sequence[str], source: str) -> tuple[str, ...]:
    """`SF1,SF201` / ["SF1", "SF201"] -> ("SF1", "SF201"), checked against the lint rules."""
    codes = tuple(c.strip().upper() for value in values for c in value.split(",") if c.strip())
    for code in codes:
        if code not in ("ALL", "SF") and not any(k.startswith(code) for k in _known_codes()):
            raise FatalError(f"{source}: {code!r} matches no rule; `sfdoctor rule` lists them")
    return tuple("SF" if c == "ALL" else c for c in codes)


def _known_codes() -> tuple[str, ...]:
    from .checker import rule_infos  # loads libcst and the rules: only when a code needs checking

    return tuple(info.code for info in (*rule_infos(), *DEPENDENCY_RULES))


def _settings(
    config: Config, select, extend_select, ignore, prefilter: bool, max_file_size: int | None
) -> Settings:
    where = f"in {config.path}"
    megabytes = max_file_size or config.lint.get("max-file-size", DEFAULT_MAX_FILE_SIZE)
    chosen = _codes(select, "--select") or _codes(config.lint.get("select", ["SF"]), f"'select' {where}")
    return Settings(
        select=chosen
        + _codes(config.lint.get("extend-select", ()), f"'extend-select' {where}")
        + _codes(extend_select, "--extend-select"),
        ignore=_codes(ignore, "--ignore") + _codes(config.lint.get("ignore", ()), f"'ignore' {where}"),
        factories=frozenset(config.lint.get("optimizer-factories", ())),
        prefilter=prefilter,
        max_file_size=megabytes * MEGABYTE,
    )


def _per_file_ignores(config: Config, files: Files) -> dict[str, tuple[str, ...]]:
    """Display name -> ignored code prefixes, for the files that have any."""
    table = [
        (
            PathPatterns.from_patterns([pattern], config.root),
            _codes(codes, f"'per-file-ignores' in {config.path}"),
        )
        for pattern, codes in config.lint.get("per-file-ignores", {}).items()
    ]
    ignored = {}
    for path, display in files:
        codes = tuple(code for patterns, codes in table if patterns.match(path) for code in codes)
        if codes:
            ignored[display] = codes
    return ignored


def _lint_dependencies(
    files: Files, python_files: Files, settings: Settings
) -> tuple[list[Finding], list[str]]:
    if not any(settings.enabled(info.code) for info in DEPENDENCY_RULES):
        return [], []
    never_calls_train = cache(
        lambda: settings.enabled("SF002") and never_calls_optimizer_train(path for path, _ in python_files)
    )
    deepspeed_evidence = cache(
        lambda: accelerate_deepspeed_evidence(path for path, _ in python_files) if settings.enabled("SF003") else None
    )
    findings, errors = [], []
    for path, display in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            errors.append(f"{display}: cannot read: {error.strerror or error}")
            continue
        findings += [
            f for f in lint_dependency_file(display, text, never_calls_train, deepspeed_evidence) if settings.enabled(f.code)
        ]
    return findings, errors


@click.command()
@click.argument("paths", nargs=-1)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read [tool.sfdoctor] from this file instead of the nearest pyproject.toml.",
)
@click.option("--isolated", is_flag=True, help="Ignore all configuration files.")
@click.option("--output-format", type=click.Choice(FORMATS), default=None, help="How findings are printed.")
@click.option(
    "-o",
    "--output-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the findings to this file instead of standard output.",
)
@click.option("--select", multiple=True, help="Rule codes or prefixes to enable (e.g. SF1,SF301).")
@click.option(
    "--extend-select", multiple=True, help="Rule codes or prefixes to enable on top of the selection."
)
@click.option("--ignore", multiple=True, help="Rule codes or prefixes to disable.")
@click.option(
    "--force-exclude",
    is_flag=True,
    help="Apply the excludes to files named on the command line too (for pre-commit).",
)
@click.option(
    "--diff-base",
    metavar="REV",
    help="Lint only the files changed since the merge base with REV, plus uncommitted ones.",
)
@click.option("--fix", is_flag=True, help="Apply the safe fixes.")
@click.option("--unsafe-fixes", is_flag=True, help="With --fix or --diff, apply the unsafe fixes too.")
@click.option(
    "--diff", is_flag=True, help="Print the fixes as a unified diff and write nothing (exit 1 if any)."
)
@click.option("--show-fixes", is_flag=True, help="With --fix, list what was fixed.")
@click.option("--statistics", is_flag=True, help="Print the number of findings per rule.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option("-q", "--quiet", is_flag=True, help="Print findings only, no summary.")
@click.option(
    "--max-file-size",
    type=click.IntRange(min=1),
    metavar="MB",
    help=f"Do not analyse larger files that mention schedulefree (default: {DEFAULT_MAX_FILE_SIZE}).",
)
@click.option("--no-cache", is_flag=True, help=f"Do not read or write the result cache ({CACHE_FOLDER}/).")
@click.option("--no-prefilter", is_flag=True, hidden=True, help="Parse every file (benchmarks).")
@click.option(
    "-j", "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes (default: cores)."
)
def lint(
    paths,
    config_file,
    isolated,
    output_format,
    output_file,
    select,
    extend_select,
    ignore,
    force_exclude,
    diff_base,
    fix,
    unsafe_fixes,
    diff,
    show_fixes,
    statistics,
    exit_zero,
    quiet,
    max_file_size,
    no_cache,
    no_prefilter,
    jobs,
) -> None:
    """Check Python files, Jupyter notebooks and dependency files for ScheduleFree bugs (default: the
    current folder)."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"--config {config_file}: no such file")
    config = load_config(config_file, isolated)
    settings = _settings(config, select, extend_select, ignore, not no_prefilter, max_file_size)
    output_format = output_format or config.lint.get("output-format", "full")
    excludes = PathPatterns.from_patterns(
        [*config.lint.get("exclude", DEFAULT_EXCLUDE), *config.lint.get("extend-exclude", ())], config.root
    )
    files = discover(list(paths) or ["."], excludes, force_exclude)
    # SF002 looks at all the project's Python files, even those --diff-base leaves out
    all_python = [(path, display) for path, display in files if not is_dependency_file(path)]
    if diff_base is not None:
        changed = changed_files(diff_base)
        files = [(path, display) for path, display in files if path in changed]
    ignored = _per_file_ignores(config, files)

    def reported(finding: Finding) -> bool:
        return not finding.code.startswith(ignored.get(finding.filename, ("\0",)))

    def applicable(finding: Finding) -> bool:
        if finding.fix is None or not reported(finding):
            return False
        return unsafe_fixes or finding.fix.applicability == "safe"

    python = [(path, display) for path, display in files if not is_dependency_file(path)]
    result = lint_files(python, settings, jobs, None if no_cache else config.root / CACHE_FOLDER)
    linked = replace(settings, project=result.project)  # a fix re-lints its file with the same project view
    dependency_findings, dependency_errors = _lint_dependencies(
        [(path, display) for path, display in files if is_dependency_file(path)], all_python, settings
    )
    findings = [f for f in result.findings + dependency_findings if reported(f)]
    errors = result.errors + dependency_errors
    unchecked = len(errors)  # files not read or not (fully) analysed; fix errors come later
    fixes: list[FileFix] = []
    if fix or diff:
        from .fixes.fix import fix_file
        paths_by_name = {display: path for path, display in python}
        for display in sorted({f.filename for f in findings if applicable(f)}):
            outcome = fix_file(paths_by_name[display], display, linked, applicable, write=not diff)
            fixes.append(outcome)
            errors += [error for error in outcome.errors if error not in errors]
            findings = [f for f in findings if f.filename != display] + [
                f for f in outcome.remaining if reported(f)
            ]
    if diff:
        sys.exit(_print_diffs(fixes, errors))
    findings = sorted(in_cells(findings), key=Finding.sort_key)
    try:
        output = (
            output_file.open("w", encoding="utf-8") if output_file else contextlib.nullcontext(sys.stdout)
        )
    except OSError as error:
        raise FatalError(f"cannot write {output_file}: {error.strerror or error}") from None
    with output as stream:
        _report(
            findings,
            fixes,
            output_format,
            stream,
            statistics=statistics,
            quiet=quiet,
            fix=fix,
            show_fixes=show_fixes,
            applicable=applicable,
            files_checked=len(files),
            unchecked=unchecked,
        )
    for error in errors:
        click.echo(f"sfdoctor: error: {error}", err=True)
    if errors:
        sys.exit(2)
    sys.exit(1 if findings and not exit_zero else 0)


def _report(
    findings: list[Finding],
    fixes: list[FileFix],
    output_format: str,
    stream: IO[str],
    *,
    statistics: bool,
    quiet: bool,
    fix: bool,
    show_fixes: bool,
    applicable: Callable[[Finding], bool],
    files_checked: int,
    unchecked: int,
) -> None:
    console = make_console(stream)
    human = output_format in ("full", "concise") and not statistics
    _print_findings(findings, output_format, statistics, console, stream)
    if human and not quiet:
        console.print(_summary(findings, files_checked, unchecked))
        if not fix:
            _print_fixable(findings, applicable, console)
    if fix and (show_fixes or not quiet):
        # machine-readable output must stay parseable: the fix report goes to stderr then
        _print_fixed(fixes, show_fixes, console if human else make_console(sys.stderr))


def _summary(findings: list[Finding], files_checked: int, unchecked: int) -> str:
    """The summary line; after errors that left files unread or not analysed it never says all checks passed."""
    if not unchecked:
        return summary_line(findings, files_checked)
    missed = f"not everything could be checked ({plural(unchecked, 'error')} below)."
    if not findings:
        return f"No findings in {plural(files_checked, 'file')} checked, but {missed}"
    return f"{summary_line(findings, files_checked).rstrip('.')}; {missed}"


def _print_findings(
    findings: list[Finding], output_format: str, statistics: bool, console: Console, stream: IO[str]
) -> None:
    if statistics:
        print_statistics(findings, console)
    elif output_format == "json":
        print_json(findings, stream)
    elif output_format == "sarif":
        print_sarif(findings, stream)
    elif output_format == "github":
        print_github(findings, stream)
    elif output_format == "concise":
        print_concise(findings, console)
    else:
        print_full(findings, console)


def _print_fixable(findings: list[Finding], applicable: Callable[[Finding], bool], console: Console) -> None:
    fixable = sum(1 for f in findings if applicable(f))
    hidden = sum(1 for f in findings if f.fix is not None) - fixable
    if fixable:
        console.print(f"[*] {fixable} fixable with --fix.", markup=False)
    if hidden:
        console.print(f"{hidden} more fixable with --fix --unsafe-fixes.", markup=False)


def _print_fixed(fixes: list[FileFix], show_fixes: bool, console: Console) -> None:
    applied = [outcome for outcome in fixes if outcome.applied and outcome.fixed != outcome.original]
    total = sum(len(outcome.applied) for outcome in applied)
    if not total:
        return
    console.print(f"Fixed {plural(total, 'finding')} in {plural(len(applied), 'file')}.", markup=False)
    if not show_fixes:
        return
    for outcome in applied:
        console.print(f"- {outcome.display}:", markup=False)
        counts = Counter((f.code, f.rule.name) for f in outcome.applied)
        for (code, name), count in sorted(counts.items()):
            console.print(f"    {count} × {code} ({name})", markup=False)


def _print_diffs(fixes: list[FileFix], errors: list[str]) -> int:
    """--diff: the diffs on standard output, a count on standard error; the exit status."""
    changed = [outcome for outcome in fixes if outcome.fixed != outcome.original]
    for outcome in changed:
        sys.stdout.write(outcome.diff())
    sys.stdout.flush()  # the diff before the count on standard error, where both go to one terminal
    total = sum(len(outcome.applied) for outcome in changed)
    click.echo(f"Would fix {plural(total, 'finding')} in {plural(len(changed), 'file')}.", err=True)
    for error in errors:
        click.echo(f"sfdoctor: error: {error}", err=True)
    return 2 if errors else 1 if changed else 0
