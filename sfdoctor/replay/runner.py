"""Run a script in this process as `python SCRIPT ARGS` would, like coverage.py's runner."""

from __future__ import annotations

import os
import signal
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .instrument import ReplayStop


@dataclass
class Outcome:
    """How the script ended."""

    stop_reason: str | None = None  # "steps" or "timeout": the replay stopped it
    exit_code: int | str | None = None  # the argument of sys.exit(), when the script called it
    error: BaseException | None = None  # the script's own exception

    @property
    def crashed(self) -> bool:
        return self.error is not None


def run_script(path: Path, args: list[str], timeout: float | None = None) -> Outcome:
    code = compile(path.read_bytes(), str(path), "exec")
    module = types.ModuleType("__main__")
    module.__file__ = str(path)
    module.__builtins__ = __builtins__  # type: ignore[attr-defined]
    outcome = Outcome()
    with _as_main(path, args, module), _alarm(timeout):
        try:
            exec(code, module.__dict__)  # noqa: S102 - running the user's script is the point
        except ReplayStop as stop:
            outcome.stop_reason = stop.reason
        except SystemExit as exit_:
            if exit_.code not in (None, 0):
                outcome.error = _without_runner_frame(exit_)
            outcome.exit_code = exit_.code if exit_.code is not None else 0
        except BaseException as error:  # noqa: BLE001 - the script's own crash, Ctrl-C included: report it
            outcome.error = _without_runner_frame(error)
    return outcome


def _without_runner_frame(error: BaseException) -> BaseException:
    """The traceback starts at the script's own module, as `python SCRIPT` shows it."""
    return error.with_traceback(error.__traceback__.tb_next if error.__traceback__ else None)


@contextmanager
def _as_main(path: Path, args: list[str], module: types.ModuleType) -> Iterator[None]:
    """sys.argv, sys.path[0] and sys.modules['__main__'] as the interpreter sets them; restored after."""
    saved_argv, saved_path, saved_main = sys.argv, list(sys.path), sys.modules.get("__main__")
    modules_before = set(sys.modules)
    sys.argv = [str(path), *args]
    sys.path[0:1] = [str(path.parent)]
    sys.modules["__main__"] = module
    try:
        yield
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
        # Forget the script's sibling modules so a later replay of another script imports its own.
        folder = str(path.parent) + os.sep
        for name in set(sys.modules) - modules_before:
            filename = getattr(sys.modules[name], "__file__", None) or ""
            if filename.startswith(folder):
                del sys.modules[name]


@contextmanager
def _alarm(timeout: float | None) -> Iterator[None]:
    """Stop a script that hangs between steps (data loading, evaluation); steps check the deadline too."""
    if timeout is None or threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise ReplayStop("timeout")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
