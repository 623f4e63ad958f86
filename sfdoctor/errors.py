"""Errors that end a command with a one-line message and exit status 2."""

import click


class FatalError(click.ClickException):
    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"sfdoctor: error: {self.format_message()}", err=True)
