"""The `sfdoctor` command."""

from __future__ import annotations

import click

from . import __version__
from .catalogue import all_rules, rule_document
from .errors import FatalError
from .lint.command import lint
from .replay.command import replay


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sfdoctor")
def cli() -> None:
    """Find ScheduleFree training bugs before (lint) and during (replay) a run."""


@cli.command()
@click.argument("code", required=False)
def rule(code: str | None) -> None:
    """Print the document of rule CODE, or list all rules."""
    rules = {info.code: info for info in all_rules()}
    if code is None:
        for info in rules.values():
            click.echo(f"{info.code}  {info.name:<32} {info.severity:<8} {info.summary}")
        return
    code = code.upper()
    if code not in rules:
        raise FatalError(f"unknown rule {code!r}; `sfdoctor rule` lists them")
    click.echo(rule_document(code))


cli.add_command(lint)
cli.add_command(replay)


def main() -> None:
    cli.main(prog_name="sfdoctor")


