"""The `sfdoctor replay` click command."""

from __future__ import annotations

import difflib
import importlib.util
import json
import shlex
import sys
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..config import ConfigError, load_config
from ..output import make_console
from .frames import display_path

if TYPE_CHECKING:
    from rich.progress import Progress

DEFAULT_STEPS = 50


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("script", required=False)
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("-m", "--module", default=None, metavar="MODULE",
              help="Run a module as `python -m MODULE` does (from the working directory); its arguments after --.")
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
def replay(script: str | None, script_args: tuple[str, ...], module: str | None, steps: int | None, device: str,
           output_format: str, out: Path | None, timeout: float | None, nproc: int | None) -> None:
    """Run SCRIPT (or -m MODULE) for N optimizer steps with instrumented ScheduleFree optimizers and diagnose it.

    Arguments after SCRIPT (put them after `--`) are passed to the script. Without SCRIPT, the script (or
    module), its args and steps come from [tool.sfdoctor.replay] in the nearest pyproject.toml.
    """
    if module is not None and script is not None:  # with -m, the first argument after -- is the module's too
        script_args = (script, *script_args)
        script = None
    path, module, args, steps = _resolve(script, module, list(script_args), steps)
    target = f"-m {module}" if module else display_path(str(path))
    as_json = output_format == "json"
    if path is not None:
        _exit_if_unparsable(path, args, steps, as_json)
    _note_arguments(target, args)
    if importlib.util.find_spec("torch") is None:
        raise click.ClickException("replay needs torch: pip install 'sfdoctor[replay]'")
    out = out.resolve() if out is not None else None  # before the script can chdir (it runs elsewhere, too)
    from .diagnose import diagnose
    from .distributed import Ranks, launched, replay_rank, start_ranks
    from .report import document, print_report, verdict, write_outputs
    from .session import replay_script

    launch = launched()
    if nproc is not None and launch is not None:
        raise click.UsageError("--nproc starts the ranks itself: run it outside torchrun")
    if nproc is not None:
        result = start_ranks(nproc, path, module, args, steps, device, timeout)
    elif launch is not None:
        result = replay_rank(launch, path, module, args, steps, device, timeout)
        if result is None:
            sys.exit(0)  # this rank's recording went to rank 0, which reports (and decides the exit status)
    else:
        progress = _progress(steps, enabled=not as_json and sys.stderr.isatty())
        with progress or nullcontext():
            task = progress.add_task("replay", total=steps) if progress else None
            result = replay_script(path, args, steps, device, timeout,
                                   on_step=(lambda done: progress.update(task, completed=done)) if progress else None,
                                   module=module)
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


def _resolve(script: str | None, module: str | None, args: list[str],
             steps: int | None) -> tuple[Path | None, str | None, list[str], int]:
    """The script's path or the module's name, the arguments and the steps, from the command line or pyproject."""
    path = Path(script) if script is not None else None
    if path is None and module is None:
        try:
            config = load_config()
        except ConfigError as error:
            raise click.UsageError(str(error)) from None
        if "script" in config.replay and "module" in config.replay:
            raise click.UsageError("[tool.sfdoctor.replay] sets both script and module: keep one")
        if "script" not in config.replay and "module" not in config.replay:
            raise click.UsageError("no SCRIPT given and no [tool.sfdoctor.replay] script or module in pyproject.toml")
        path = config.root / config.replay["script"] if "script" in config.replay else None
        module = config.replay.get("module")
        args = args or list(config.replay.get("args", []))
        steps = steps or config.replay.get("steps")
    if path is not None and not path.is_file():
        raise click.UsageError(f"script not found: {path}")
    return path.resolve() if path else None, module, args, steps or DEFAULT_STEPS


def _exit_if_unparsable(path: Path, args: list[str], steps: int, as_json: bool) -> None:
    """A script that does not parse is a one-line error (exit status 2), found before a child process starts."""
    try:
        compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as error:  # ValueError: null bytes in the source
        row = getattr(error, "lineno", None) or 1
        message = getattr(error, "msg", None) or str(error)
        summary = f"{display_path(str(path))}:{row}: {type(error).__name__}: {message}"
        if as_json:
            click.echo(json.dumps({
                "script": display_path(str(path)), "module": None, "args": args, "steps_requested": steps,
                "steps_run": 0, "exit_status": 2, "summary": summary,
                "script_error": {"type": type(error).__name__, "message": message,
                                 "frames": [{"filename": str(path), "row": row, "function": "<module>"}],
                                 "diagnosis": "the script does not parse", "code": None},
                "optimizers": [], "findings": [],
            }, indent=2))
        click.echo(f"sfdoctor replay: error: {summary}", err=True)
        sys.exit(2)


def _note_arguments(target: str, args: list[str]) -> None:
    """Options of the script that look like replay's own (`--step 5`) are the script's: say so, once."""
    own = [name for param in click.get_current_context().command.params for name in param.opts
           if name.startswith("--")]
    similar = [arg for arg in args if arg.startswith("--") and _looks_like(arg.split("=", 1)[0], own)]
    if similar:
        click.echo(f"sfdoctor replay: {target} receives the arguments {shlex.join(args)} "
                   f"({', '.join(similar)}: the script's, not sfdoctor replay's; replay's own options go before --)",
                   err=True)


def _looks_like(name: str, options: list[str]) -> bool:
    """`--step` for `--steps`, `--timout` for `--timeout` (a lone `--` is not an option)."""
    return name != "--" and (any(option.startswith(name) for option in options)
                             or bool(difflib.get_close_matches(name, options, n=1, cutoff=0.8)))


def _progress(steps: int, enabled: bool) -> Progress | None:
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                    TimeElapsedColumn(), console=make_console(sys.stderr), transient=True)
