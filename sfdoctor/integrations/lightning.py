"""Lightning: `Trainer(..., callbacks=[SFDoctorCallback()])` guards the run with `sfdoctor.watch`.

The callback watches the ScheduleFree ones of `trainer.optimizers`, reports checkpoints taken in train mode (SF513; Lightning
captures the state dict before `on_save_checkpoint`, so `trainer.save_checkpoint` is checked before
it runs) and hands the `sf/*` metrics to the Trainer's loggers every `log_every` steps.
"""

from __future__ import annotations

import os
from typing import Any

from lightning.pytorch.callbacks import Callback

from ..findings import Finding
from ..guard import Guard, metrics_sink, wraps_schedulefree


class SFDoctorCallback(Callback):
    """Stable public API: the arguments are those of `sfdoctor.watch` after the optimizer; `logger`
    (a callable or a CSV file path) gets the metrics besides the Trainer's own loggers."""

    def __init__(self, on_problem: str = "warn", log_every: int = 50, safe_division: bool = True,
                 logger: Any = None) -> None:
        self.options = {"on_problem": on_problem, "log_every": log_every, "safe_division": safe_division}
        self.extra_sink = metrics_sink(logger)
        self.guard: Guard | None = None

    @property
    def findings(self) -> list[Finding]:
        return self.guard.findings if self.guard is not None else []

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        def log(metrics: dict[str, float], step: int) -> None:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)
            if self.extra_sink is not None:
                self.extra_sink(metrics, step)
        optimizers = [o for o in trainer.optimizers if wraps_schedulefree(o)]  # a GAN may use one of each
        self.guard = Guard(optimizers, logger=log, **self.options)
        save_checkpoint = trainer.save_checkpoint

        def checked_save_checkpoint(filepath: Any, *args: Any, **kwargs: Any) -> Any:
            self.guard.saved_in_train_mode(what=f"Lightning checkpoint {os.path.basename(filepath)}")
            return save_checkpoint(filepath, *args, **kwargs)
        trainer.save_checkpoint = checked_save_checkpoint  # what ModelCheckpoint and users call

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "fit")  # a crashed or interrupted run leaves no hook behind

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.guard is not None:
            self.guard.close()
            vars(trainer).pop("save_checkpoint", None)
