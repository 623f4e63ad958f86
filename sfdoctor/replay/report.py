"""A replay's report: the JSON document, the rich terminal report, and the files of --out."""

from __future__ import annotations

import csv
import json
import math
import signal
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..findings import Finding
from ..output import plural, print_full
from .diagnose import Crash
from .frames import display_path, is_user_file
from .record import STEP_FIELDS
from .session import ReplayResult

SPARK = "▁▂▃▄▅▆▇█"
# Trajectory field -> short table header.
COLUMNS = {"step": "step", "lr": "lr", "scheduled_lr": "sched lr", "weight_sum": "weight_sum", "ckp1": "ckp1",
           "beta1": "beta1", "train_mode": "train", "params_with_grad": "grads", "param_change_norm": "moved",
           "loss": "loss"}
FIRST_ROWS = 3  # the table shows these first steps, every step where something changed, and the last
INNERMOST_FRAMES = 3  # a crash's traceback keeps these last frames besides the user's own


def document(result: ReplayResult, findings: list[Finding], crash: Crash | None) -> dict:
    """The --output-format json object (schema in the README) and trajectory.json."""
    outcome = result.outcome
    status, summary = verdict(result, findings, crash)
    return {
        "script": display_path(str(result.script)) if result.script else None,
        "module": result.module,
        "args": result.args,
        "steps_requested": result.steps_requested,
        "steps_run": result.steps_run,
        "stopped": outcome.stop_reason,
        "end": outcome.end,
        "exit_code": outcome.exit_code,
        "signal": outcome.signal,
        "force_killed": outcome.force_killed,
        "interrupted_by": outcome.received_signal,
        "exit_status": status,
        "summary": summary,
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
        "type": error.type,
        "message": error.message,
        "frames": [{"filename": f, "row": row, "function": function} for f, row, function in error.frames],
        "diagnosis": crash.description,
        "code": crash.rule.code if crash.rule else None,
    }


def _json_number(value: object) -> object:
    """JSON has no NaN or infinity: they are written as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


# -- terminal ------------------------------------------------------------------------------------


def verdict(result: ReplayResult, findings: list[Finding], crash: Crash | None) -> tuple[int, str]:
    """The exit status and the sentence that says why, decided together so that they always agree."""
    outcome = result.outcome
    if outcome.received_signal:
        return 128 + signal.Signals[outcome.received_signal], (
            f"sfdoctor replay was interrupted by {outcome.received_signal}: this report covers the "
            f"{plural(result.steps_run, 'step')} replayed before it.")
    if crash is not None and crash.internal:
        return 2, f"internal error: {crash.description}"
    if result.steps_run == 0 and crash is None:  # nothing was checked: that must not pass a CI job
        script = result.target
        return 2, (f"--timeout ({result.timeout:g}s) stopped {script} before its first ScheduleFree optimizer step, "
                   "so nothing was replayed (raise --timeout, or see what it waits for before training)"
                   if outcome.stop_reason == "timeout" else
                   f"{script} ended without a single ScheduleFree optimizer step, so nothing was replayed (does it "
                   "need arguments after --, or build its optimizer elsewhere?)")
    errors = sum(1 for f in findings if f.severity == "error")
    found = (f"Found {plural(len(findings), 'replay finding')} ({plural(errors, 'error')}, "
             f"{plural(len(findings) - errors, 'warning')})" if findings else "No replay findings")
    if crash is not None:
        return 1, f"{found}; exit status 1 because the script failed: {crash.description}."
    if errors:
        return 1, f"{found}."
    return 0, f"{found}." if findings else "No problems found."


def print_report(result: ReplayResult, findings: list[Finding], crash: Crash | None, console: Console) -> None:
    console.print(f"[bold]sfdoctor replay[/] {escape(result.target)}: "
                  f"{escape(ending(result, crash))} "
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
                console.print(group_table(f"group {group.index}", {0: group.steps}))
                console.print(sparklines({0: group.steps}))
    if crash is not None:
        print_crash(result, crash, console)
    console.print()
    print_full(findings, console)


def print_crash(result: ReplayResult, crash: Crash, console: Console, label: str = "") -> None:
    """The script's error and its traceback; `label` names the rank in a distributed replay."""
    kind = "internal error" if crash.internal else "script error"
    console.print(f"\n[bold red]{escape(label)}{kind}:[/] {escape(crash.description)}")
    for line in traceback_lines(result.outcome.error.frames if result.outcome.error else []):
        console.print(f"  [dim]{escape(line)}[/]")


def traceback_lines(frames: list[tuple[str, int, str]]) -> list[str]:
    """The user's own frames and the innermost library frames (where it raised); the library frames between them
    are counted, not listed."""
    kept = {index for index, (filename, _, _) in enumerate(frames) if is_user_file(filename)}
    kept |= set(range(max(0, len(frames) - INNERMOST_FRAMES), len(frames)))
    lines, elided = [], 0
    for index, (filename, row, function) in enumerate(frames):
        if index not in kept:
            elided += 1
            continue
        if elided:
            lines.append(f"... {plural(elided, 'library frame')}")
            elided = 0
        lines.append(f"{display_path(filename)}:{row} in {function}")
    return lines


def ending(result: ReplayResult, crash: Crash | None) -> str:
    """How the run ended, for the report's first line."""
    outcome, steps = result.outcome, plural(result.steps_run, "step")
    if outcome.stop_reason == "steps":
        ending = f"stopped after {steps} as asked"
    elif outcome.stop_reason == "timeout":
        ending = f"stopped by --timeout ({result.timeout:g}s) after {steps}"
    elif outcome.stop_reason == "killed":
        ending = f"stopped after {steps} because sfdoctor received {outcome.received_signal}"
    elif crash is not None and crash.internal:
        ending = f"sfdoctor's instrumentation failed after {steps}"
    elif outcome.end == "crash":
        ending = f"the script crashed after {steps}"
    elif outcome.end == "signal":
        ending = f"the script's process was ended by {outcome.signal} after {steps}"
    else:
        ending = f"the script ended by itself after {steps}" + (
            f" with exit status {outcome.exit_code}" if outcome.exit_code is not None else "")
    if outcome.force_killed:
        ending += "; it did not end when told to and its processes were killed (SIGKILL)"
    return ending


def group_table(title: str, steps_by_rank: dict[int, list[dict]]) -> Table:
    """A group's shown steps. With several ranks, a column whose ranks differ on a shown step has one per rank; the
    others (and the loss, of each rank's own batches) show the first rank that has the step."""
    by_step = {rank: {record["step"]: record for record in steps} for rank, steps in steps_by_rank.items()}
    rows = sorted({record["step"] for steps in steps_by_rank.values() for record in shown_steps(steps)})
    columns = []  # (field, header, rank or None: the first rank that has the step)
    for column, header in COLUMNS.items():
        values = [{records[step][column] for records in by_step.values() if step in records} for step in rows]
        if column not in ("step", "loss") and any(len(found) > 1 for found in values):  # each rank its own batches
            columns += [(column, f"{header} r{rank}", rank) for rank in by_step]
        else:
            columns.append((column, header, None))
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for _, header, _ in columns:
        table.add_column(header, justify="right")
    for step in rows:
        first = next(records[step] for records in by_step.values() if step in records)
        table.add_row(*(_cell((by_step[rank].get(step, {}) if rank is not None else first).get(column))
                        for column, _, rank in columns))
    return table


def shown_steps(steps: list[dict]) -> list[dict]:
    """The first steps, every step where lr, weight_sum being 0, ckp1 being 0 or the mode changed, the last."""
    def signature(record: dict) -> tuple:
        return (record["scheduled_lr"], record["weight_sum"] == 0, record["ckp1"] == 0, record["train_mode"],
                record["beta1"], record["param_change_norm"] == 0)
    shown = [record for index, record in enumerate(steps)
             if index < FIRST_ROWS or index == len(steps) - 1 or signature(record) != signature(steps[index - 1])]
    return shown


def sparklines(steps_by_rank: dict[int, list[dict]]) -> str:
    """weight_sum, scheduled lr and ckp1 over the steps: of the first rank, and of each rank that differs from it."""
    lines, first = [], None
    for rank, steps in steps_by_rank.items():
        for key in ("weight_sum", "scheduled_lr", "ckp1"):
            values = [record[key] for record in steps]
            if first is not None and values == first[key]:
                continue
            label = f"r{rank} {key}" if first is not None else key
            lines.append(f"  {label:>12} {sparkline(values)}  [dim]{_cell(min(values))} .. {_cell(max(values))}[/]")
        first = first or {key: [record[key] for record in steps] for key in ("weight_sum", "scheduled_lr", "ckp1")}
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


# -- files ---------------------------------------------------------------------------------------


def write_outputs(folder: Path, data: dict, console: Console) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trajectory.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    with open(folder / "trajectory.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        fields = ("rank", *STEP_FIELDS) if "ranks" in data else STEP_FIELDS  # a distributed replay's records
        writer.writerow(["optimizer", "group", *fields])
        for optimizer in data["optimizers"]:
            for group in optimizer["groups"]:
                for record in group["trajectory"]:
                    writer.writerow([optimizer["index"], group["index"], *(record[key] for key in fields)])
    try:
        from .plot import plot_trajectory
    except ImportError:
        console.print("[yellow]trajectory.png not written: matplotlib is not installed "
                      "(pip install 'sfdoctor[plot]')[/]")
    else:
        plot_trajectory(data, folder / "trajectory.png")
