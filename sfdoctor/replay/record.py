"""What a replay records: optimizers, their param groups step by step, schedulers and who changed what."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .frames import Site

# Per-step fields of a group, in the order of trajectory.csv and the JSON schema.
STEP_FIELDS = (
    "step", "k", "lr", "scheduled_lr", "lr_max", "weight", "weight_sum", "ckp1", "train_mode", "beta1",
    "params_with_grad", "param_change_norm", "loss", "safe_division", "zero_grad_params", "zero_grad_moved",
)


@dataclass
class SchedulerTrace:
    index: int
    cls: str
    created_at: Site | None
    lr_before: list[Any]
    lr_after: list[Any] = field(default_factory=list)
    steps: int = 0  # calls to step() after the constructor
    last_step_at: Site | None = None

    def to_json(self) -> dict:
        return {
            "class": self.cls,
            "created_at": self.created_at.to_json() if self.created_at else None,
            "lr_before": self.lr_before,
            "lr_after": self.lr_after,
            "steps": self.steps,
        }


@dataclass(frozen=True)
class Writer:
    """The LR scheduler that last changed lr / beta1 of a group: its constructor or its step()."""

    site: Site | None  # the user's line that called it
    scheduler_cls: str
    scheduler_created_at: Site | None
    scheduler: tuple[int, int]  # (optimizer index, scheduler index): the scheduler's SchedulerTrace
    in_constructor: bool = False

    def describe(self) -> str:
        if self.in_constructor:
            return f"{self.scheduler_cls} constructed at {self.site}"
        return f"{self.scheduler_cls}.step() at {self.site} ({self.scheduler_cls} constructed at " \
               f"{self.scheduler_created_at})"


@dataclass(frozen=True)
class Change:
    """lr or beta1 of a group differed at the start of `step` from its value at the previous step."""

    step: int
    key: str  # "lr" or "beta1"
    before: Any
    after: Any
    writer: Writer | None  # None: code other than an LR scheduler (the user's own, a library's)


@dataclass
class GroupTrace:
    index: int
    initial_lr: Any
    builtin_zero_lr_phase: bool  # RAdamScheduleFree: lr is 0 on its first steps by design
    steps: list[dict] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    last_lr: Any = None
    last_beta: Any = None
    initial: dict[int, tuple[Any, Any]] = field(default_factory=dict)  # id -> (parameter, copy), during the run
    moved: bool = False  # any parameter differed at the end from its copy at its first step


@dataclass(frozen=True)
class Event:
    code: str  # SF506 (step in eval mode) or SF507 (eval did not move)
    step: int
    site: Site | None
    detail: str = ""
    cause: Site | None = None  # SF506: the eval() call that left the optimizer in eval mode


@dataclass
class OptimizerTrace:
    index: int
    cls: str
    created_at: Site | None
    is_wrapper: bool
    object_id: int  # id() of the optimizer while the replay ran, to find it in a traceback
    groups: list[GroupTrace] = field(default_factory=list)
    schedulers: list[SchedulerTrace] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    step_sites: list[Site | None] = field(default_factory=list)  # where each step() was called
    tensor_lr: bool = False
    steps: int = 0
    framework: str | None = None  # "Trainer", "Lightning" or "accelerate" when one builds, wraps or loads it
    configured_at: Site | None = None  # Trainer: the user's TrainingArguments(...) or Trainer(...) line
    look_alike: bool = False  # another library's ScheduleFree class, known by its z buffer and weight_sum

    @property
    def name(self) -> str:
        return f"{self.cls} (optimizer {self.index})"


@dataclass(frozen=True)
class ScriptError:
    """The script's uncaught exception, as plain data: the child process sends it to sfdoctor."""

    type: str
    types: tuple[str, ...]  # the names along its class's MRO, to tell kinds of errors apart
    message: str
    frames: list[tuple[str, int, str]]  # (filename, row, function) from the script's module to the raise
    optimizer: int | None  # index of the traced optimizer whose method raised, if one did

    def is_a(self, name: str) -> bool:
        return name in self.types


@dataclass
class Outcome:
    """How the script ended."""

    stop_reason: str | None = None  # "steps", "timeout" or "killed": the replay stopped it
    end: str = "exit"  # "stopped" (by the replay's stop), "exit", "crash" or "signal"
    exit_code: int | str | None = None  # sys.exit()'s argument, os._exit()'s or the process's status
    error: ScriptError | None = None  # the script's own exception (SystemExit with a failure code included)
    signal: str | None = None  # end "signal": the signal that ended the script's process
    force_killed: bool = False  # the script did not end after the stop and its processes were killed
    received_signal: str | None = None  # stop_reason "killed": the signal sfdoctor itself received
    started: bool = True  # False: the child process ended before the script started (sfdoctor's failure)
