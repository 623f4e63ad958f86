"""sfdoctor: find ScheduleFree training bugs before and during a run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .guard import Guard, SFDoctorError, SFDoctorWarning  # noqa: F401 (also served by __getattr__)

__version__ = "0.1.0"


def watch(optimizer: Any, *more: Any, on_problem: str = "warn", log_every: int = 50, safe_division: bool = True,
          logger: Any = None) -> Guard:
    """Guard a training run: watch ScheduleFree optimizers until `guard.close()` (or the `with` block ends).

    `optimizer` and `more` are ScheduleFree optimizers, or wrappers of one (accelerate's
    `AcceleratedOptimizer`). `on_problem`: "warn" (a `SFDoctorWarning`), "raise" (`SFDoctorError`)
    or "log" (the "sfdoctor" logger). Every `log_every` steps the guard reads the device once for its
    checks and hands `sf/*` metrics to `logger`: a callable `logger(metrics, step)` or a CSV file path.
    `safe_division` lifts a zero weight_sum as replay does. Stable public API.
    """
    from .guard import Guard  # torch is imported when a run is guarded, not by `import sfdoctor`

    return Guard([optimizer, *more], on_problem=on_problem, log_every=log_every, safe_division=safe_division,
                 logger=logger)


def __getattr__(name: str) -> Any:
    """`sfdoctor.Guard`, `sfdoctor.SFDoctorWarning`, `sfdoctor.SFDoctorError`, imported on first use (torch)."""
    if name in ("Guard", "SFDoctorError", "SFDoctorWarning"):
        from . import guard

        return getattr(guard, name)
    raise AttributeError(f"module 'sfdoctor' has no attribute {name!r}")
