"""Placeholder: the replay command lands with issue 3."""

import click


@click.command()
def replay() -> None:
    """Run a training script for N steps with instrumented ScheduleFree optimizers."""
    raise click.UsageError("replay is not available yet")
