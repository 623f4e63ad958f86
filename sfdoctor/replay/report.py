"""A replay's report: the JSON document, the rich terminal report, and the files of --out."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..findings import Finding
from ..output import plural, print_full
from .diagnose import Crash
from .frames import display_path, traceback_frames
from .record import STEP_FIELDS, GroupTrace
from .session import ReplayResult

SPARK = "▁▂▃▄▅▆▇█"
# Trajectory field -> short table header.
COLUMNS = {"step": "step", "lr": "lr", "scheduled_lr": "sched lr", "weight_sum": "weight_sum", "ckp1": "ckp1",
           "beta1": "beta1", "train_mode": "train", "params_with_grad": "grads", "param_change_norm": "moved",
           "loss": "loss"}
FIRST_ROWS = 3  # the table shows these first steps, every step where something changed, and the last


def document(result: ReplayResult, findings: list[Finding], crash: Crash | None) -> dict:
    """The --output-format json object (schema in the README) and trajectory.json."""
    return {
        "script": display_path(str(result.script)),
        "args": result.args,
        "steps_requested": result.steps_requested,
        "steps_run": result.steps_run,
        "stopped": result.outcome.stop_reason,
        "exit_code": result.outcome.exit_code,
        "versions": result.versions,
        "warnings": result.warnings,
        "script_error": _script_error(result, crash),
        "optimizers": [
            {
                "index": trace.index,
                "class": trace.cls,
                "created_at": trace.created_at.to_json() if trace.created_at else None,
                "steps": trace.steps,
                "schedulers": [scheduler.to_json() for scheduler in trace.schedulers],
                "groups": [
                    {"index": group.index, "initial_lr": group.initial_lr,
                     "trajectory": [{key: _json_number(record.get(key)) for key in STEP_FIELDS}
                                    for record in group.steps]}
                    for group in trace.groups
                ],
            }
            for trace in result.optimizers
        ],
        "findings": [finding.to_json() for finding in findings],
    }


def _script_error(result: ReplayResult, crash: Crash | None) -> dict | None:
    error = result.outcome.error
    if error is None or crash is None:
        return None
    return {
        "type": type(error).__name__,
        "message": str(error),
        "frames": [{"filename": f, "row": row, "function": function}
                   for f, row, function in traceback_frames(error.__traceback__)],
        "diagnosis": crash.description,
        "code": crash.rule.code if crash.rule else None,
    }


def _json_number(value: object) -> object:
    """JSON has no NaN or infinity: they are written as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


# -- terminal ------------------------------------------------------------------------------------


def print_report(result: ReplayResult, findings: list[Finding], crash: Crash | None, console: Console) -> None:
    stopped = {"steps": f"stopped after {result.steps_run} steps as asked",
               "timeout": f"stopped by --timeout after {result.steps_run} steps"}
    ending = stopped.get(result.outcome.stop_reason) or (
        f"the script crashed after {result.steps_run} steps" if crash else
        f"the script ended by itself after {result.steps_run} steps"
        + (f" (sys.exit({result.outcome.exit_code}))" if result.outcome.exit_code is not None else ""))
    console.print(f"[bold]sfdoctor replay[/] {escape(display_path(str(result.script)))}: {escape(ending)} "
                  f"[dim]({result.seconds:.1f}s; torch {result.versions['torch']}, "
                  f"schedulefree {result.versions['schedulefree']})[/]")
    for warning in result.warnings:
        console.print(f"[bold yellow]warning:[/] {escape(warning)}")
    if not result.optimizers:
        console.print("No ScheduleFree optimizer was created.")
    for trace in result.optimizers:
        where = f" created at {trace.created_at}" if trace.created_at else ""
        console.print(f"\n[bold]{escape(trace.name)}[/]{escape(where)}, {trace.steps} steps")
        for scheduler in trace.schedulers:
            console.print(f"  scheduler {escape(scheduler.cls)} created at {escape(str(scheduler.created_at))}: "
                          f"lr {_list(scheduler.lr_before)} -> {_list(scheduler.lr_after)}, "
                          f"stepped {scheduler.steps} times")
        for group in trace.groups:
            if group.steps:
                console.print(_group_table(group))
                console.print(_sparklines(group))
    if crash is not None:
        console.print(f"\n[bold red]script error:[/] {escape(crash.description)}")
        for filename, row, function in traceback_frames(result.outcome.error.__traceback__)[-4:]:
            console.print(f"  [dim]{escape(display_path(filename))}:{row} in {escape(function)}[/]")
    console.print()
    print_full(findings, console)
    if result.steps_run or findings:  # after no step at all nothing was checked (the command says so)
        console.print(_summary(findings))


def _group_table(group: GroupTrace) -> Table:
    table = Table(title=f"group {group.index}", title_justify="left", box=None, pad_edge=False)
    for header in COLUMNS.values():
        table.add_column(header, justify="right")
    for record in shown_steps(group.steps):
        table.add_row(*(_cell(record.get(column)) for column in COLUMNS))
    return table


def shown_steps(steps: list[dict]) -> list[dict]:
    """The first steps, every step where lr, weight_sum being 0, ckp1 being 0 or the mode changed, the last."""
    def signature(record: dict) -> tuple:
        return (record["scheduled_lr"], record["weight_sum"] == 0, record["ckp1"] == 0, record["train_mode"],
                record["beta1"], record["param_change_norm"] == 0)
    shown = [record for index, record in enumerate(steps)
             if index < FIRST_ROWS or index == len(steps) - 1 or signature(record) != signature(steps[index - 1])]
    return shown


def _sparklines(group: GroupTrace) -> str:
    lines = []
    for key in ("weight_sum", "scheduled_lr", "ckp1"):
        values = [record[key] for record in group.steps]
        lines.append(f"  {key:>12} {sparkline(values)}  [dim]{_cell(min(values))} .. {_cell(max(values))}[/]")
    return "\n".join(lines)


def sparkline(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "?" * len(values)
    low, high = min(finite), max(finite)
    span = high - low or 1.0
    return "".join(SPARK[int((v - low) / span * (len(SPARK) - 1))] if math.isfinite(v) else "!" for v in values)


def _cell(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _list(values: list) -> str:
    return ", ".join(_cell(v) for v in values)


def _summary(findings: list[Finding]) -> str:
    if not findings:
        return "[bold green]No problems found.[/]"
    errors = sum(1 for f in findings if f.severity == "error")
    return (f"Found {plural(len(findings), 'replay finding')} ({plural(errors, 'error')}, "
            f"{plural(len(findings) - errors, 'warning')}).")


# -- files ---------------------------------------------------------------------------------------


def write_outputs(folder: Path, data: dict, console: Console) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trajectory.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    with open(folder / "trajectory.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["optimizer", "group", *STEP_FIELDS])
        for optimizer in data["optimizers"]:
            for group in optimizer["groups"]:
                for record in group["trajectory"]:
                    writer.writerow([optimizer["index"], group["index"], *(record[key] for key in STEP_FIELDS)])
    try:
        from .plot import plot_trajectory
    except ImportError:
        console.print("[yellow]trajectory.png not written: matplotlib is not installed "
                      "(pip install 'sfdoctor[plot]')[/]")
    else:
        plot_trajectory(data, folder / "trajectory.png")
