"""Run a script in this process (the replay's child) as `python SCRIPT ARGS` or `python -m MODULE ARGS` would."""

from __future__ import annotations

import os
import runpy
import sys
import types
from collections.abc import Callable, Iterable
from pathlib import Path

from .frames import traceback_frames
from .instrument import ReplayStop
from .record import OptimizerTrace, Outcome, ScriptError

# The frames above the script's own: this module's and runpy's ("<frozen runpy>" where it is frozen).
RUNNER_FILES = (__file__, runpy.run_module.__code__.co_filename)


def run_script(path: Path, args: list[str], optimizers: Iterable[OptimizerTrace]) -> Outcome:
    """`optimizers` (the traces, filled while the script runs) name the optimizer whose method raised."""
    module = types.ModuleType("__main__")
    module.__file__ = str(path)
    module.__builtins__ = __builtins__  # type: ignore[attr-defined]
    sys.argv = [str(path), *args]
    sys.path[0] = str(path.parent)  # as the interpreter sets it: `import helpers` of a sibling module works
    sys.modules["__main__"] = module
    return _run(lambda: exec(compile(path.read_bytes(), str(path), "exec"), module.__dict__),  # noqa: S102
                optimizers)


def run_module(name: str, args: list[str], optimizers: Iterable[OptimizerTrace]) -> Outcome:
    """As `python -m NAME ARGS`: sys.path[0] is the working directory; runpy sets __spec__, __main__, argv[0]."""
    sys.argv = [name, *args]
    sys.path[0] = os.getcwd()
    return _run(lambda: runpy.run_module(name, run_name="__main__", alter_sys=True), optimizers)


def _run(run: Callable[[], object], optimizers: Iterable[OptimizerTrace]) -> Outcome:
    try:
        run()
    except ReplayStop as stop:
        return Outcome(stop_reason=stop.reason, end="stopped")
    except SystemExit as exit_:
        exit_code = exit_.code if exit_.code is not None else 0
        error = script_error(exit_, optimizers) if exit_code != 0 else None
        return Outcome(end="exit", exit_code=exit_code, error=error)
    except BaseException as error:  # noqa: BLE001 - the script's own crash, Ctrl-C included: report it
        return Outcome(end="crash", error=script_error(error, optimizers))
    return Outcome(end="exit")


def script_error(error: BaseException, optimizers: Iterable[OptimizerTrace]) -> ScriptError:
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename in RUNNER_FILES:  # to the script's module
        tb = tb.tb_next
    return ScriptError(
        type=type(error).__name__,
        types=tuple(cls.__name__ for cls in type(error).__mro__),
        message=str(error),
        frames=traceback_frames(tb),
        optimizer=_optimizer_in_traceback(tb, optimizers),
    )


def _optimizer_in_traceback(tb: types.TracebackType | None, optimizers: Iterable[OptimizerTrace]) -> int | None:
    """The traced optimizer whose method raised: `self` of the innermost frame that has one."""
    by_id = {trace.object_id: trace.index for trace in optimizers}
    found = None
    while tb is not None:
        found = by_id.get(id(tb.tb_frame.f_locals.get("self")), found)
        tb = tb.tb_next
    return found
