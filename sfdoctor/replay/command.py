"""The `sfdoctor replay` click command."""

from __future__ import annotations

import importlib.util
import json
import sys
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..config import ConfigError, load_config
from ..output import make_console

DEFAULT_STEPS = 50


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("script", required=False, type=click.Path(path_type=Path))
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help=f"Stop after this many steps of the first ScheduleFree optimizer (default {DEFAULT_STEPS}).")
@click.option("--device", type=click.Choice(["auto", "cpu"]), default="auto", show_default=True,
              help="cpu hides the GPUs from the script; auto leaves the script's choice.")
@click.option("--output-format", type=click.Choice(["full", "json"]), default="full", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write trajectory.json, trajectory.csv and trajectory.png to this folder.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop the script after this many seconds; the report still comes.")
@click.option("--nproc", type=click.IntRange(min=2), default=None,
              help="Start this many ranks with torch.distributed.run and report them together.")
def replay(script: Path | None, script_args: tuple[str, ...], steps: int | None, device: str,
           output_format: str, out: Path | None, timeout: float | None, nproc: int | None) -> None:
    """Run SCRIPT for N optimizer steps with instrumented ScheduleFree optimizers and diagnose it.

    Arguments after SCRIPT (put them after `--`) are passed to the script. Without SCRIPT, the script,
    its args and steps come from [tool.sfdoctor.replay] in the nearest pyproject.toml.
    """
    script, args, steps = _resolve(script, list(script_args), steps)
    if importlib.util.find_spec("torch") is None:
        raise click.ClickException("replay needs torch: pip install 'sfdoctor[replay]'")
    out = out.resolve() if out is not None else None  # before the script can chdir (it runs elsewhere, too)
    from .diagnose import diagnose
    from .distributed import Ranks, launched, replay_rank, start_ranks
    from .report import document, print_report, verdict, write_outputs
    from .session import replay_script

    as_json = output_format == "json"
    launch = launched()
    if nproc is not None and launch is not None:
        raise click.UsageError("--nproc starts the ranks itself: run it outside torchrun")
    if nproc is not None:
        result = start_ranks(nproc, script, args, steps, device, timeout)
    elif launch is not None:
        result = replay_rank(launch, script, args, steps, device, timeout)
        if result is None:
            sys.exit(0)  # this rank's recording went to rank 0, which reports (and decides the exit status)
    else:
        progress = _progress(steps, enabled=not as_json and sys.stderr.isatty())
        with progress or nullcontext():
            task = progress.add_task("replay", total=steps) if progress else None
            result = replay_script(script, args, steps, device, timeout,
                                   on_step=(lambda done: progress.update(task, completed=done)) if progress else None)
    if isinstance(result, Ranks):
        data, (status, summary), show = result.document(), result.verdict(), result.print_report
    else:
        findings, crash = diagnose(result)
        data, (status, summary) = document(result, findings, crash), verdict(result, findings, crash)
        show = partial(print_report, result, findings, crash)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        console = make_console(sys.stdout)
        show(console)
        if status != 2:
            console.print(summary, markup=False)  # it quotes the script's error, which may hold [brackets]
    if out is not None:
        write_outputs(out, {**data, "command": ["sfdoctor", "replay", *sys.argv[2:]]}, make_console(sys.stderr))
    if status == 2:
        click.echo(f"sfdoctor replay: error: {summary}", err=True)
    sys.exit(status)


def _resolve(script: Path | None, args: list[str], steps: int | None) -> tuple[Path, list[str], int]:
    if script is None:
        try:
            config = load_config()
        except ConfigError as error:
            raise click.UsageError(str(error)) from None
        if "script" not in config.replay:
            raise click.UsageError("no SCRIPT given and no [tool.sfdoctor.replay] script in pyproject.toml")
        script = config.root / config.replay["script"]
        args = args or list(config.replay.get("args", []))
        steps = steps or config.replay.get("steps")
    if not script.is_file():
        raise click.UsageError(f"script not found: {script}")
    return script.resolve(), args, steps or DEFAULT_STEPS


def _progress(steps: int, enabled: bool) -> Progress | None:
    if not enabled:
        return None
    return Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                    TimeElapsedColumn(), console=make_console(sys.stderr), transient=True)
