"""HF Trainer: `Trainer(..., callbacks=[SFDoctorCallback()])` guards the run with `sfdoctor.watch`.

The callback finds the optimizer itself (the one Trainer builds from `optim="schedule_free_*"`
included, under accelerate's wrapper), reports checkpoints written in train mode (SF513) and adds
the `sf/*` metrics to every training log of Trainer, so `report_to` carries them to TensorBoard, W&B or MLflow.
"""

from __future__ import annotations

import sys
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import CallbackHandler

from ..findings import Finding
from ..guard import Guard


class SFDoctorCallback(TrainerCallback):
    """Stable public API: the arguments are those of `sfdoctor.watch` after the optimizer."""

    def __init__(self, on_problem: str = "warn", log_every: int = 50, safe_division: bool = True,
                 logger: Any = None) -> None:
        self.options = {"on_problem": on_problem, "log_every": log_every, "safe_division": safe_division,
                        "logger": logger}
        self.guard: Guard | None = None

    @property
    def findings(self) -> list[Finding]:
        return self.guard.findings if self.guard is not None else []

    def on_train_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        _move_first(self)
        if self.guard is not None:  # a train() that raised never reached on_train_end
            self.guard.close()
        self.guard = Guard([optimizer], **self.options)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.guard is not None:
            self.guard.saved_in_train_mode(what=f"Trainer checkpoint-{state.global_step}")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        # training logs only (they have the loss): evaluation and the final summary would repeat the step
        if self.guard is not None and logs is not None and "loss" in logs and state.is_world_process_zero:
            metrics = self.guard.metrics()
            logs.update(metrics)
            state.log_history[-1].update(metrics)  # trainer_state.json too

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.guard is not None:
            self.guard.close()


def _move_first(callback: SFDoctorCallback) -> None:
    """Trainer puts report_to's callbacks before the user's, and they write `logs` in their own on_log:
    this callback goes first so that the metrics it adds reach them. Callbacks get no reference to the
    CallbackHandler calling them, so it is taken from the stack; a new list leaves its running loop as is."""
    frame = sys._getframe(1)
    while frame is not None and not isinstance(frame.f_locals.get("self"), CallbackHandler):
        frame = frame.f_back
    if frame is not None:
        handler = frame.f_locals["self"]
        handler.callbacks = [callback, *(c for c in handler.callbacks if c is not callback)]
