"""The replay's child process: runs the user's script instrumented and streams what it records to sfdoctor.

Started by `session.replay_script` as a fresh interpreter (`main` gets a JSON configuration). The parent owns
the clock, stdout and the report; this side records, and sends an `Update` from a background thread about every
second (reading device values back once per update, never per step: so a script stuck after its last steps, or
killed, still leaves them), at the stop, at `os._exit()` and at the end.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from .channel import Update, encode
from .frames import is_sfdoctor_file, is_user_file
from .instrument import Instrumentation, ReplayStop, note_moved
from .record import GroupTrace, OptimizerTrace, Outcome, SchedulerTrace
from .runner import run_module, run_script

FLUSH_SECONDS = 1.0


def main(config_json: str) -> None:
    config = json.loads(config_json)
    os.set_inheritable(config["fd"], False)  # the script's subprocesses do not get the pipe (its forks do)
    instrumentation = Instrumentation(config["steps"])
    stream = Stream(config["fd"], instrumentation, os._exit)
    instrumentation.on_step = stream.after_step
    signal.signal(signal.SIGTERM, _on_terminate)
    os._exit = stream.reporting_exit
    instrumentation.install()
    stream.start()  # the script starts now: so does --timeout's clock
    try:
        if config.get("module"):
            outcome = run_module(config["module"], config["args"], instrumentation.optimizers)
        else:
            outcome = run_script(Path(config["script"]), config["args"], instrumentation.optimizers)
    finally:
        instrumentation.uninstall()
    outcome.stop_reason = instrumentation.stop_reason or outcome.stop_reason
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # from here on the parent may simply end this process
    stream.send(outcome)


def _on_terminate(signum: int, frame: FrameType | None) -> None:
    """The parent's SIGTERM stops the script where it is (its `finally:` blocks run). While sfdoctor's own code
    runs (recording a step, sending an update) it is ignored, so no record is left half done: the parent sends
    SIGTERM again shortly, then SIGKILL."""
    while frame is not None and not is_user_file(frame.f_code.co_filename):
        if is_sfdoctor_file(frame.f_code.co_filename):
            return
        frame = frame.f_back
    raise ReplayStop("terminated")


class Stream:
    def __init__(self, fd: int, instrumentation: Instrumentation, real_exit: Callable[[int], None]) -> None:
        self.fd = fd
        self.instrumentation = instrumentation
        self.real_exit = real_exit
        self.pid = os.getpid()
        self.lock = threading.Lock()  # one sender at a time
        self.ended = False  # the last update (with the outcome) was sent
        # A fork() waits for a send to finish: the fork must not inherit torch's locks held by the sender thread.
        os.register_at_fork(before=self.lock.acquire, after_in_parent=self.lock.release,
                            after_in_child=self.lock.release)

    def start(self) -> None:
        self.send()
        threading.Thread(target=self._send_every_second, name="sfdoctor-replay-sender", daemon=True).start()

    def _send_every_second(self) -> None:
        while not self.ended:
            time.sleep(FLUSH_SECONDS)
            self.send()

    def after_step(self, _steps: int) -> None:
        if self.instrumentation.stop_reason is None:
            return
        self.send()  # at once: the parent times the script's end from the stop
        if threading.current_thread() is not threading.main_thread():
            # The stop ends only this (stepping) thread: stop the main thread too, which may wait for it forever
            # (a real signal: it also wakes a main thread blocked in a lock, as queue.get() is).
            signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)

    def reporting_exit(self, status: int) -> None:
        self.send(Outcome(stop_reason=self.instrumentation.stop_reason, end="exit", exit_code=status))
        self.real_exit(status)

    def send(self, outcome: Outcome | None = None) -> None:
        if os.getpid() != self.pid:
            return  # a fork() of the script: only the replay's child process itself reports
        with self.lock:
            if self.ended:
                return
            self.ended = outcome is not None
            update = Update([_take_new(trace) for trace in self.instrumentation.optimizers],
                            self.instrumentation.steps, self.instrumentation.stop_reason, outcome)
            data = memoryview(encode(update))
            try:
                while data:
                    data = data[os.write(self.fd, data):]
            except BrokenPipeError:
                self.real_exit(1)  # sfdoctor is gone: nobody is left to report to


def _take_new(trace: OptimizerTrace) -> OptimizerTrace:
    """A copy of the trace for an Update: what was recorded since the last one (taken out of the trace), as
    Python numbers."""
    groups = [_take_group(group) for group in trace.groups]
    materialize([record for group in groups for record in group.steps])
    return dataclasses.replace(
        trace, groups=groups, events=_take(trace, "events"), step_sites=_take(trace, "step_sites"),
        schedulers=[_numbers_of(scheduler) for scheduler in trace.schedulers],
    )


def _take_group(group: GroupTrace) -> GroupTrace:
    note_moved(group)
    if group.moved:
        group.initial = {}  # the copies are no longer needed
    return dataclasses.replace(group, steps=_take(group, "steps"), changes=_take(group, "changes"),
                               initial_lr=_number(group.initial_lr), initial={}, last_lr=None, last_beta=None)


def _take(owner: Any, name: str) -> list:
    """The items of a list the script's threads may be appending to: a copy and a `del`, each atomic."""
    items = getattr(owner, name)
    count = len(items)
    taken = items[:count]
    del items[:count]
    return taken


def _numbers_of(scheduler: SchedulerTrace) -> SchedulerTrace:
    return dataclasses.replace(scheduler, lr_before=[_number(lr) for lr in scheduler.lr_before],
                               lr_after=[_number(lr) for lr in scheduler.lr_after])


def materialize(records: list[dict]) -> None:
    """Replace the tensors of step records by Python numbers: one transfer per device for all of them."""
    by_device = defaultdict(list)
    for record in records:
        for key, value in record.items():
            if isinstance(value, torch.Tensor):
                by_device[value.device].append((record, key, value))
    for items in by_device.values():
        flat = torch.cat([value.detach().reshape(-1).double() for _, _, value in items]).tolist()
        offset = 0
        for record, key, value in items:
            record[key] = flat[offset: offset + value.numel()]
            offset += value.numel()
    for record in records:
        _summarise(record)


def _number(value: object) -> object:
    return value.item() if isinstance(value, torch.Tensor) else value


def _summarise(record: dict) -> None:
    """Per-parameter norms become the group's change norm and the zero-gradient counts."""
    for key in ("lr", "scheduled_lr", "lr_max", "weight", "weight_sum", "ckp1", "loss", "safe_division"):
        if isinstance(record.get(key), list):
            record[key] = record[key][0]
    record["safe_division"] = bool(record["safe_division"])
    scales = record.pop("change_scales", [])
    changes = [norm * scale for norm, scale in zip(record.pop("change_norms", []), scales)]
    grads = record.pop("grad_norms", [])
    record["param_change_norm"] = math.sqrt(sum(c * c for c in changes))
    zero_grad = [change for change, grad in zip(changes, grads) if grad == 0]
    record["zero_grad_params"] = len(zero_grad)
    record["zero_grad_moved"] = sum(1 for change in zero_grad if change != 0)
