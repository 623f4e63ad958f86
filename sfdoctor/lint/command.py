"""The `sfdoctor lint` command."""

from __future__ import annotations

import sys

import click

from ..config import load_config
from ..errors import FatalError
from ..output import (
    FORMATS,
    make_console,
    print_concise,
    print_full,
    print_json,
    print_statistics,
    summary_line,
)
from .engine import Settings, lint_files, rule_infos
from .files import discover


def _codes(values: tuple[str, ...]) -> tuple[str, ...]:
    """`--select SF1,SF201 --select SF3` -> ("SF1", "SF201", "SF3"), checked against the catalogue."""
    codes = tuple(c.strip().upper() for value in values for c in value.split(",") if c.strip())
    known = [info.code for info in rule_infos()]
    for code in codes:
        if code != "ALL" and not any(k.startswith(code) for k in known):
            raise click.BadParameter(f"{code!r} matches no rule; `sfdoctor rule` lists them")
    return tuple("SF" if c == "ALL" else c for c in codes)


@click.command()
@click.argument("paths", nargs=-1)
@click.option("--output-format", type=click.Choice(FORMATS), default=None, help="How findings are printed.")
@click.option("--select", multiple=True, help="Rule codes or prefixes to enable (e.g. SF1,SF301).")
@click.option("--ignore", multiple=True, help="Rule codes or prefixes to disable.")
@click.option("--statistics", is_flag=True, help="Print the number of findings per rule.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option("-q", "--quiet", is_flag=True, help="Print findings only, no summary.")
@click.option("--no-prefilter", is_flag=True, hidden=True, help="Parse every file (benchmarks).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes (default: cores).")
def lint(paths, output_format, select, ignore, statistics, exit_zero, quiet, no_prefilter, jobs) -> None:
    """Check Python files and folders for ScheduleFree bugs (default: the current folder)."""
    config = load_config()
    settings = Settings(
        select=_codes(select) or tuple(config.lint.get("select", ("SF",))),
        ignore=_codes(ignore) + tuple(config.lint.get("ignore", ())),
        factories=frozenset(config.lint.get("optimizer-factories", ())),
        prefilter=not no_prefilter,
    )
    output_format = output_format or config.lint.get("output-format", "full")
    if output_format not in FORMATS:
        raise FatalError(f"unknown output-format {output_format!r} in {config.path}")
    files = discover(list(paths) or ["."])
    result = lint_files(files, settings, jobs)
    console = make_console()
    if statistics:
        print_statistics(result.findings, console)
    elif output_format == "json":
        print_json(result.findings, sys.stdout)
    elif output_format == "concise":
        print_concise(result.findings, console)
    else:
        print_full(result.findings, console)
    if not quiet and output_format != "json":
        console.print(summary_line(result.findings, result.files))
    for error in result.errors:
        click.echo(f"sfdoctor: error: {error}", err=True)
    if result.errors:
        sys.exit(2)
    sys.exit(1 if result.findings and not exit_zero else 0)
