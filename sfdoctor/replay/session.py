"""One replay: run the script in a child process, supervise it, and gather what it sends.

sfdoctor's own process never imports torch and never runs the script: the child (`child.py`, a fresh
interpreter) does, with its stdout sent to our stderr. Here the clock, the signals and stdout are ours, so
whatever the script does, a report comes: `--timeout` and our own SIGTERM / SIGINT / SIGHUP send SIGTERM to
the child (the script's `finally:` blocks run), then SIGKILL to its process group.
"""

from __future__ import annotations

import json
import os
import platform
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import sfdoctor

from .channel import Decoder, Update
from .frames import display_path
from .record import OptimizerTrace, Outcome

# Releases whose AdamW/SGD/RAdam step() divide weight/weight_sum without a guard (domain.md).
UNGUARDED_RELEASES = ("1.1", "1.1.0", "1.2", "1.2.0", "1.2.1", "1.2.3")
STOP_GRACE = 5.0  # seconds a script has to end after the replay's stop at --steps (its finally: blocks)
KILL_GRACE = 2.0  # seconds between the first SIGTERM and SIGKILL
TERM_REPEAT = 0.5  # SIGTERM again meanwhile: the child ignores one that arrives inside sfdoctor's own code
TICK = 0.1
INTERRUPTS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# The child imports the same sfdoctor as this process, without putting anything on the script's PYTHONPATH.
CHILD_CODE = "import sys; sys.path[0] = {root!r}; from sfdoctor.replay.child import main; main(sys.argv[1])"


@dataclass
class ReplayResult:
    script: Path | None  # None when a module runs
    args: list[str]
    steps_requested: int
    outcome: Outcome
    optimizers: list[OptimizerTrace]
    steps_run: int
    versions: dict[str, str | None]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timeout: float | None = None
    module: str | None = None  # `sfdoctor replay -m MODULE`

    @property
    def target(self) -> str:
        """What ran, as the user typed it: the script's path or `-m MODULE`."""
        return f"-m {self.module}" if self.module else display_path(str(self.script))


def versions() -> dict[str, str | None]:
    """Read from the installed packages' metadata: the same interpreter runs the child."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "schedulefree"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def environment_warnings(found: dict[str, str | None]) -> list[str]:
    if found["schedulefree"] in UNGUARDED_RELEASES:
        return [(
            f"schedulefree {found['schedulefree']} has no guard for weight/weight_sum: outside the replay a step "
            "with lr 0 raises ZeroDivisionError; upgrade to schedulefree>=1.2.4 (1.3+ preferred)"
        )]
    return []


def replay_script(script: Path | None, args: list[str], steps: int, device: str = "auto",
                  timeout: float | None = None, on_step: Callable[[int], None] | None = None,
                  module: str | None = None) -> ReplayResult:
    """Replay `script`, or with `module` (and no script) `python -m module`."""
    found = versions()
    started = time.monotonic()
    with _received_interrupts() as received:
        supervisor = Supervisor(script, args, steps, device, timeout, on_step, received, module)
        outcome = supervisor.run()
    return ReplayResult(
        script=script, args=args, steps_requested=steps, outcome=outcome, optimizers=supervisor.optimizers,
        steps_run=supervisor.steps, versions=found, warnings=environment_warnings(found),
        seconds=time.monotonic() - started, timeout=timeout, module=module,
    )


@contextmanager
def _received_interrupts() -> Iterator[list[int]]:
    """SIGTERM, SIGINT and SIGHUP to sfdoctor are noted (the supervisor stops the script and reports)."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum)) for signum in INTERRUPTS}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class Supervisor:
    def __init__(self, script: Path | None, args: list[str], steps: int, device: str, timeout: float | None,
                 on_step: Callable[[int], None] | None, received: list[int], module: str | None = None) -> None:
        self.script, self.args, self.max_steps, self.device = script, args, steps, device
        self.module = module  # run as `python -m module` instead of the script
        self.timeout, self.on_step, self.received = timeout, on_step, received
        self.optimizers: list[OptimizerTrace] = []
        self.steps = 0
        self.stop_reason: str | None = None
        self.child_outcome: Outcome | None = None
        self.started = False  # the child sends its first update when the script starts
        self.deadline: float | None = None  # --timeout counts from the script's start, not the interpreter's
        self.end_by: float | None = None  # when the child is told to end (SIGTERM) unless it ended before
        self.last_term = -1.0
        self.force_killed = False

    def run(self) -> Outcome:
        read_fd, write_fd = os.pipe()
        try:
            process = self._start(write_fd)
        finally:
            os.close(write_fd)
        decoder = Decoder()
        try:
            while process.poll() is None:
                self._read(read_fd, decoder, TICK)
                now = time.monotonic()
                if self.received or (self.deadline is not None and now >= self.deadline):
                    self._stop("killed" if self.received else "timeout", now)
                self._end_child(process, now)
            while self._read(read_fd, decoder, 0):
                pass  # what the child wrote before it ended
        finally:
            os.close(read_fd)
            _kill_group(process.pid)  # its forks and other leftovers
        return self._outcome(process.returncode)

    def _start(self, write_fd: int) -> subprocess.Popen:
        env = dict(os.environ)
        if self.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        config = {"fd": write_fd, "steps": self.max_steps, "script": str(self.script), "module": self.module,
                  "args": self.args}
        root = os.path.dirname(os.path.dirname(sfdoctor.__file__))
        return subprocess.Popen(
            [sys.executable, "-c", CHILD_CODE.format(root=root), json.dumps(config)],
            stdout=2,  # the script's fd 1 goes to our stderr: our stdout carries the report alone
            pass_fds=(write_fd,), env=env,
            start_new_session=True,  # its own process group (killed as one); Ctrl-C reaches sfdoctor alone
        )

    def _read(self, fd: int, decoder: Decoder, timeout: float) -> bool:
        if not select.select([fd], [], [], timeout)[0]:
            return False
        data = os.read(fd, 1 << 20)
        for update in decoder.feed(data):
            self._merge(update)
        return bool(data)

    def _merge(self, update: Update) -> None:
        for new in update.optimizers:
            if new.index == len(self.optimizers):
                self.optimizers.append(new)
                continue
            trace = self.optimizers[new.index]
            trace.events += new.events
            trace.step_sites += new.step_sites
            trace.schedulers, trace.tensor_lr, trace.steps = new.schedulers, new.tensor_lr, new.steps
            trace.framework = new.framework  # accelerate.prepare() wraps an optimizer after it was sent
            for group in new.groups:
                if group.index == len(trace.groups):
                    trace.groups.append(group)
                    continue
                known = trace.groups[group.index]
                known.steps += group.steps
                known.changes += group.changes
                known.moved = group.moved
        self.steps = update.steps
        if not self.started:  # the first update: the script starts, and so does --timeout's clock
            self.started = True
            self.deadline = time.monotonic() + self.timeout if self.timeout else None
        if update.stop_reason and not self.stop_reason:
            self.stop_reason = update.stop_reason
            self.end_by = time.monotonic() + STOP_GRACE
        if update.outcome is not None:
            self.child_outcome = update.outcome
            if self.end_by is None:  # it only has to exit now (threads it waits for, atexit handlers)
                self.end_by = time.monotonic() + STOP_GRACE
        if self.on_step is not None:
            self.on_step(self.steps)

    def _stop(self, reason: str, now: float) -> None:
        self.stop_reason = self.stop_reason or reason  # a stop at --steps stays one: this only cuts its grace
        self.end_by = min(self.end_by or now, now)

    def _end_child(self, process: subprocess.Popen, now: float) -> None:
        if self.end_by is None or now < self.end_by:
            return
        if now >= self.end_by + KILL_GRACE:
            self.force_killed = True
            _kill_group(process.pid)
        elif now >= self.last_term + TERM_REPEAT:
            self.last_term = now
            _signal(process.pid, signal.SIGTERM)

    def _outcome(self, returncode: int) -> Outcome:
        outcome = self.child_outcome
        if outcome is None:  # no last update: a signal ended the child, or an exit that skipped Python's shutdown
            outcome = Outcome(end="exit", exit_code=returncode) if returncode >= 0 else Outcome(
                end="signal", signal=_signal_name(-returncode))
            if self.stop_reason and (self.force_killed or returncode == -signal.SIGTERM):
                outcome.end = "stopped"  # by our own signals
        elif outcome.stop_reason == "terminated" and self.stop_reason is None:
            outcome.end, outcome.signal = "signal", "SIGTERM"  # sent to the script's process by someone else
        outcome.stop_reason = self.stop_reason
        outcome.force_killed = self.force_killed
        outcome.started = self.started
        if self.received:
            outcome.received_signal = _signal_name(self.received[0])
        return outcome


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:  # a real-time signal
        return f"signal {signum}"


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
