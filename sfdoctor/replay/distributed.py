"""Distributed replay: one report for all the ranks of a torch.distributed job.

Every rank's sfdoctor replays its own rank as usual (a child process runs the script). At the end each rank hands
its whole recording to one collector over a plain TCP connection of sfdoctor's own processes, never through the
script's process group: a rank whose script crashed, hung in a collective or destroyed its group still reports,
and the script gets no extra collective. The collector is rank 0's sfdoctor under `torchrun --no-python sfdoctor
replay` (listening on MASTER_PORT + 1), or the sfdoctor that started the ranks with `--nproc N` (a free local port,
passed in GATHER_ENV). It diagnoses each rank, merges identical findings, compares the ranks step by step (SF509)
and prints the one report; a rank with no report by the deadline is named.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

import sfdoctor

from ..findings import Finding, Location
from ..output import plural, print_full
from . import codes
from .diagnose import Crash, diagnose
from .frames import display_path
from .report import document, ending, group_table, print_crash, sparklines, verdict
from .session import KILL_GRACE, STOP_GRACE, TICK, ReplayResult, replay_script

GATHER_ENV = "SFDOCTOR_REPLAY_GATHER"  # host:port of the collector, set by --nproc for the ranks it starts
PORT_OFFSET = 1  # under torchrun rank 0 collects on MASTER_PORT + 1 (the launcher's store holds MASTER_PORT)
CONNECT_WAIT = 30.0  # seconds a rank keeps trying to reach the collector before it reports alone
REPORT_WAIT = 60.0  # without --timeout: seconds rank 0 waits for the others after its own replay ended
HEADER = struct.Struct("<IQ")  # rank, length of the pickled ReplayResult
# A crash that says a peer went away is the consequence of another rank's failure, not its cause.
PEER_GONE = ("closed by peer", "reset by peer", "remote worker", "remote process")
# Compared across ranks at each step (SF509): record field -> its name in the message.
RANK_FIELDS = {"scheduled_lr": "scheduled lr", "weight_sum": "weight_sum", "train_mode": "train mode",
               "param_change_norm": "parameter change"}
RANK_FIX = "call optimizer.train() / eval() and step schedulers on every rank alike (not only under `if rank == 0`)"
CHANGE_TOLERANCE = 1e-4  # relative: rounding (eval()/train() on one rank) is not a divergence
WORKER_CODE = "import sys; sys.path[0] = {root!r}; from sfdoctor.cli import main; main()"


@dataclass(frozen=True)
class Launch:
    """This sfdoctor is one rank of a job: from the launcher's RANK and WORLD_SIZE."""

    rank: int
    world_size: int
    collector: tuple[str, int]
    collects: bool  # rank 0 under torchrun; under --nproc the starting sfdoctor collects


def launched() -> Launch | None:
    env = os.environ
    if "RANK" not in env or int(env.get("WORLD_SIZE", "1")) < 2:
        return None
    rank, world_size = int(env["RANK"]), int(env["WORLD_SIZE"])
    if GATHER_ENV in env:
        host, port = env[GATHER_ENV].rsplit(":", 1)
        return Launch(rank, world_size, (host, int(port)), collects=False)
    address = (env.get("MASTER_ADDR", "127.0.0.1"), int(env.get("MASTER_PORT", "29500")) + PORT_OFFSET)
    return Launch(rank, world_size, address, collects=rank == 0)


# -- SF509: the comparison, shared with sfdoctor.watch ------------------------------------------------


def rank_divergence(values: dict[int, dict[str, object]]) -> str | None:
    """The first of RANK_FIELDS on which the ranks disagree, as "train mode: rank 0 has False, rank 1 has True";
    a field that some rank lacks is not compared."""
    for key, label in RANK_FIELDS.items():
        if not all(key in row for row in values.values()):
            continue
        classes: list[tuple[object, list[int]]] = []  # value -> the ranks that have it
        for rank in sorted(values):
            value = values[rank][key]
            known = next((ranks for first, ranks in classes if _same(key, first, value)), None)
            if known is None:
                classes.append((value, [rank]))
            else:
                known.append(rank)
        if len(classes) > 1:
            return f"{label}: " + ", ".join(
                f"{_ranks(ranks)} {'has' if len(ranks) == 1 else 'have'} {value}" for value, ranks in classes)
    return None


def _same(key: str, a: object, b: object) -> bool:
    if key == "param_change_norm":
        return math.isclose(a, b, rel_tol=CHANGE_TOLERANCE) or a != a and b != b  # noqa: PLR0124 - NaN
    return a == b


def _ranks(ranks: list[int]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else "ranks " + ", ".join(map(str, ranks))


# -- the ranks' reports ------------------------------------------------------------------------------


@dataclass
class RankReplay:
    rank: int
    result: ReplayResult
    findings: list[Finding]
    crash: Crash | None


@dataclass
class Ranks:
    """What the collector has: each reporting rank's replay, and why the others have none."""

    world_size: int
    replays: list[RankReplay]  # in rank order
    missing: dict[int, str]  # rank -> why it sent no report

    @classmethod
    def of(cls, results: dict[int, ReplayResult], world_size: int, missing: dict[int, str]) -> Ranks:
        return cls(world_size, [RankReplay(rank, results[rank], *diagnose(results[rank])) for rank in sorted(results)],
                   missing)

    @cached_property
    def findings(self) -> list[Finding]:
        """Each rank's findings, one finding where ranks found the same, labelled with its ranks unless every rank
        found it; then SF509."""
        found: dict[Finding, list[int]] = {}
        for replay in self.replays:
            for finding in replay.findings:
                found.setdefault(finding, []).append(replay.rank)
        merged = [finding if len(ranks) == self.world_size else
                  dataclasses.replace(finding, message=f"{_ranks(ranks)}: {finding.message}")
                  for finding, ranks in found.items()]
        return merged + self._divergences()

    def _divergences(self) -> list[Finding]:
        """SF509: the first step at which the ranks' records of a group disagree."""
        findings = []
        optimizers = sorted({trace.index for replay in self.replays for trace in replay.result.optimizers})
        for index in optimizers:
            traces = {r.rank: r.result.optimizers[index] for r in self.replays if len(r.result.optimizers) > index}
            if len(traces) < 2:
                continue
            groups = max(len(trace.groups) for trace in traces.values())
            for group in range(groups):
                finding = _group_divergence(traces, group)
                if finding is not None:
                    findings.append(finding)
        return findings

    def failures(self) -> list[tuple[int, Crash]]:
        """Each failed rank's crash, the likely cause first: sfdoctor's own errors, then crashes that are not a
        peer's disappearance."""
        failures = [(r.rank, r.crash) for r in self.replays if r.crash is not None]
        failures += [(rank, Crash(f"no report: {why}", None, None, None)) for rank, why in self.missing.items()]
        return sorted(failures, key=lambda item: (not item[1].internal, _peer_gone(item[1]), item[0]))

    def verdict(self) -> tuple[int, str]:
        interrupted = [r for r in self.replays if r.result.outcome.received_signal]
        failures = self.failures()
        if interrupted or not failures:
            primary, crash = (interrupted or self.replays)[0], None
        else:
            rank, crash = failures[0]
            primary = next((r for r in self.replays if r.rank == rank), self.replays[0])
            after = " (after another rank ended or was stopped)" if _peer_gone(crash) else ""
            crash = dataclasses.replace(crash, description=f"rank {rank}{after}: {crash.description}")
        return verdict(primary.result, self.findings, crash)

    def document(self) -> dict:
        """One JSON document: rank 0's (or the first reporting rank's) fields, every rank's outcome under "ranks",
        and every rank's steps in the trajectories, each record with its "rank"."""
        documents = {r.rank: document(r.result, r.findings, r.crash) for r in self.replays}
        data = dict(documents[self.replays[0].rank])
        data["exit_status"], data["summary"] = self.verdict()
        data["world_size"] = self.world_size
        data["ranks"] = [{"rank": rank, **{key: doc[key] for key in RANK_KEYS}} for rank, doc in documents.items()]
        data["ranks"] += [{"rank": rank, "missing": why} for rank, why in self.missing.items()]
        optimizers: dict[int, dict] = {}
        for rank, doc in documents.items():
            for optimizer in doc["optimizers"]:
                merged = optimizers.setdefault(optimizer["index"], {**optimizer, "groups": []})
                for group in optimizer["groups"]:
                    if group["index"] == len(merged["groups"]):
                        merged["groups"].append({**group, "trajectory": []})
                    merged["groups"][group["index"]]["trajectory"] += [{"rank": rank, **record}
                                                                       for record in group["trajectory"]]
        data["optimizers"] = [optimizers[index] for index in sorted(optimizers)]
        data["findings"] = [finding.to_json() for finding in self.findings]
        return data

    def print_report(self, console: Console) -> None:
        first = self.replays[0].result
        console.print(f"[bold]sfdoctor replay[/] {escape(first.target)} on "
                      f"{plural(self.world_size, 'rank')} [dim]({max(r.result.seconds for r in self.replays):.1f}s; "
                      f"torch {first.versions['torch']}, schedulefree {first.versions['schedulefree']})[/]")
        for r in self.replays:
            console.print(f"  rank {r.rank}: {escape(ending(r.result, r.crash))}")
        for rank, why in self.missing.items():
            console.print(f"  rank {rank}: [bold red]no report[/]: {escape(why)}")
        for warning in first.warnings:
            console.print(f"[bold yellow]warning:[/] {escape(warning)}")
        optimizers = sorted({t.index for r in self.replays for t in r.result.optimizers})
        if not optimizers:
            console.print("No ScheduleFree optimizer was created.")
        for index in optimizers:
            traces = {r.rank: r.result.optimizers[index] for r in self.replays if len(r.result.optimizers) > index}
            trace = next(iter(traces.values()))
            where = f" created at {trace.created_at}" if trace.created_at else ""
            steps = {t.steps for t in traces.values()}
            counted = plural(steps.pop(), "step") if len(steps) == 1 else ", ".join(
                f"rank {rank} {t.steps}" for rank, t in traces.items()) + " steps"
            console.print(f"\n[bold]{escape(trace.name)}[/]{escape(where)}, {counted}")
            for scheduler in trace.schedulers:
                console.print(f"  scheduler {escape(scheduler.cls)} created at {escape(str(scheduler.created_at))}")
            for group in range(max(len(t.groups) for t in traces.values())):
                steps_by_rank = {rank: t.groups[group].steps for rank, t in traces.items() if len(t.groups) > group}
                if any(steps_by_rank.values()):
                    console.print(group_table(f"group {group}", steps_by_rank))
                    console.print(sparklines(steps_by_rank))
        for r in self.replays:
            if r.crash is not None:
                print_crash(r.result, r.crash, console, f"rank {r.rank}: ")
        console.print()
        print_full(self.findings, console)


RANK_KEYS = ("steps_run", "stopped", "end", "exit_code", "signal", "force_killed", "interrupted_by", "exit_status",
             "summary", "script_error")


def _peer_gone(crash: Crash) -> bool:
    return any(text in crash.description for text in PEER_GONE)


def _group_divergence(traces: dict, group: int) -> Finding | None:
    """SF509 for one group: each rank's values per step (a step that raised in eval mode counts as train mode
    False), compared at the first step where they differ."""
    by_step: dict[int, dict[int, dict]] = {}
    for rank, trace in traces.items():
        for event in trace.events:
            if event.code == "SF506":
                by_step.setdefault(event.step, {})[rank] = {"train_mode": False}
        if len(trace.groups) > group:
            for record in trace.groups[group].steps:
                by_step.setdefault(record["step"], {})[rank] = {key: record[key] for key in RANK_FIELDS}
    for step in sorted(by_step):
        values = by_step[step]
        divergence = rank_divergence(values) if len(values) > 1 else None
        if divergence is None:
            continue
        rank = min(values)
        trace = traces[rank]
        site = trace.step_sites[step - 1] if len(trace.step_sites) >= step else trace.created_at
        row = site.row if site else 1
        return Finding(
            rule=codes.SF509, filename=display_path(site.filename) if site else "", location=Location(row, 1),
            end_location=Location(row, 1), step=step, optimizer=trace.index, group=group,
            message=f"group {group} at step {step}: the ranks disagree on {divergence}: they train different models",
            notes=(RANK_FIX,),
        )
    return None


# -- handing the recordings to the collector ---------------------------------------------------------


class _RecordUnpickler(pickle.Unpickler):
    """Only sfdoctor's replay records (and paths): the collector's port is reachable from the network."""

    ALLOWED = ("sfdoctor.replay.record", "sfdoctor.replay.session", "sfdoctor.replay.frames", "pathlib")

    def find_class(self, module: str, name: str) -> object:
        if module not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a replay record")
        return super().find_class(module, name)


class Collector:
    """Receives one (rank, ReplayResult) per connection, on a thread, from the moment it is created."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.server = socket.create_server(address)
        self.results: dict[int, ReplayResult] = {}
        threading.Thread(target=self._accept, name="sfdoctor-replay-collector", daemon=True).start()

    @property
    def address(self) -> tuple[str, int]:
        return self.server.getsockname()[:2]

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return  # closed
            with connection:
                connection.settimeout(CONNECT_WAIT)
                try:
                    rank, size = HEADER.unpack(_receive(connection, HEADER.size))
                    self.results[rank] = _RecordUnpickler(io.BytesIO(_receive(connection, size))).load()
                except (OSError, EOFError, pickle.UnpicklingError, struct.error, AttributeError):
                    continue  # not one of our ranks, or one that died while sending: it counts as missing

    def wait(self, world_size: int, deadline: float, why: str) -> Ranks:
        """Until every rank reported or the deadline passed; `why` says why a rank left out has no report."""
        while len(self.results) < world_size and time.monotonic() < deadline:
            time.sleep(TICK)
        self.server.close()
        results = dict(self.results)
        if not results:
            raise NoReport("no rank sent a report (their errors are above)")
        return Ranks.of(results, world_size, {rank: why for rank in range(world_size) if rank not in results})


class NoReport(click.ClickException):
    exit_code = 2


def _receive(connection: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = connection.recv(min(size - len(data), 1 << 20))
        if not chunk:
            raise EOFError("the rank's connection closed early")
        data += chunk
    return bytes(data)


def send(launch: Launch, result: ReplayResult) -> bool:
    """Hand this rank's recording to the collector; False if it cannot be reached within CONNECT_WAIT."""
    data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    give_up = time.monotonic() + CONNECT_WAIT
    while True:
        try:
            with socket.create_connection(launch.collector, timeout=CONNECT_WAIT) as connection:
                connection.sendall(HEADER.pack(launch.rank, len(data)) + data)
            return True
        except OSError:
            if time.monotonic() >= give_up:
                return False
            time.sleep(TICK * 5)


# -- the two ways to run ranks -----------------------------------------------------------------------


def replay_rank(launch: Launch, script: Path | None, module: str | None, args: list[str], steps: int, device: str,
                timeout: float | None) -> Ranks | ReplayResult | None:
    """This rank's replay under a launcher. The collector returns every rank's; another rank returns None once
    its recording was handed over, or its own result when the collector cannot be reached."""
    collector = None
    if launch.collects:
        try:
            collector = Collector(("", launch.collector[1]))
        except OSError as error:
            click.echo(f"sfdoctor replay: warning: rank 0 cannot collect the ranks' reports on port "
                       f"{launch.collector[1]} ({error}); each rank reports alone", err=True)
    result = replay_script(script, args, steps, device, timeout, module=module)
    if collector is not None:
        collector.results[launch.rank] = result
        wait = timeout + STOP_GRACE + KILL_GRACE + 5 if timeout else REPORT_WAIT
        return collector.wait(launch.world_size, time.monotonic() + wait,
                              f"none came within {wait:g}s after rank 0's replay ended (a rank stuck in a collective "
                              "that another rank never joins ends at --timeout)")
    if launch.collects or not send(launch, result):
        if not launch.collects:
            click.echo(f"sfdoctor replay: warning: rank {launch.rank} could not reach the collector at "
                       f"{launch.collector[0]}:{launch.collector[1]}; it reports alone", err=True)
        return result
    return None


def start_ranks(nproc: int, script: Path | None, module: str | None, args: list[str], steps: int, device: str,
                timeout: float | None) -> Ranks:
    """`--nproc N`: start N ranks of `sfdoctor replay` with torch.distributed.run and collect their reports."""
    collector = Collector(("127.0.0.1", 0))
    host, port = collector.address
    root = os.path.dirname(os.path.dirname(sfdoctor.__file__))
    target = ["-m", module] if module is not None else [str(script)]
    rank_args = ["replay", *target, "--steps", str(steps), "--device", device,
                 *(["--timeout", str(timeout)] if timeout else []), "--", *args]
    env = {**os.environ, GATHER_ENV: f"{host}:{port}"}
    launcher = subprocess.Popen(  # the ranks' output (and the launcher's) goes to our stderr, as the script's does
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "--no-python",
         sys.executable, "-c", WORKER_CODE.format(root=root), *rank_args], stdout=2, env=env)
    try:
        launcher.wait()
    finally:
        if launcher.poll() is None:
            launcher.terminate()
    return collector.wait(nproc, time.monotonic() + TICK * 20, "its sfdoctor ended without one")
