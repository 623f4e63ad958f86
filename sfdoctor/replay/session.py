"""One replay: instrument, run the script, then read the recorded device values back in one go."""

from __future__ import annotations

import math
import os
import platform
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import torch

from .instrument import Instrumentation
from .record import OptimizerTrace
from .runner import Outcome, run_script

# Releases whose AdamW/SGD/RAdam step() divide weight/weight_sum without a guard (domain.md).
UNGUARDED_RELEASES = ("1.1", "1.1.0", "1.2", "1.2.0", "1.2.1", "1.2.3")


@dataclass
class ReplayResult:
    script: Path
    args: list[str]
    steps_requested: int
    outcome: Outcome
    optimizers: list[OptimizerTrace]
    steps_run: int
    versions: dict[str, str | None]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def versions() -> dict[str, str | None]:
    try:
        schedulefree_version = metadata.version("schedulefree")
    except metadata.PackageNotFoundError:
        schedulefree_version = None
    return {"python": platform.python_version(), "torch": torch.__version__, "schedulefree": schedulefree_version}


def environment_warnings(found: dict[str, str | None], device: str) -> list[str]:
    warnings = []
    if found["schedulefree"] in UNGUARDED_RELEASES:
        warnings.append(
            f"schedulefree {found['schedulefree']} has no guard for weight/weight_sum: outside the replay a step "
            "with lr 0 raises ZeroDivisionError; upgrade to schedulefree>=1.2.4 (1.3+ preferred)"
        )
    if device == "cpu" and torch.cuda.is_initialized():
        warnings.append("--device cpu could not hide the GPUs: CUDA was already initialised in this process")
    return warnings


def replay_script(script: Path, args: list[str], steps: int, device: str = "auto", timeout: float | None = None,
                  on_step: Callable[[int], None] | None = None) -> ReplayResult:
    found = versions()
    warnings = environment_warnings(found, device)
    saved_visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # read when CUDA initialises, i.e. after this
    started = time.monotonic()
    instrumentation = Instrumentation(steps, started + timeout if timeout else None, on_step)
    instrumentation.install()
    try:
        outcome = run_script(script, args, timeout)
    finally:
        instrumentation.uninstall()
        if device == "cpu":
            _restore_env("CUDA_VISIBLE_DEVICES", saved_visible)
    outcome.stop_reason = outcome.stop_reason or instrumentation.stop_reason
    for trace in instrumentation.optimizers:
        materialize(trace)
    pacer = instrumentation.pacer
    return ReplayResult(
        script=script, args=args, steps_requested=steps, outcome=outcome,
        optimizers=instrumentation.optimizers, steps_run=pacer.steps if pacer else 0,
        versions=found, warnings=warnings, seconds=time.monotonic() - started,
    )


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def materialize(trace: OptimizerTrace) -> None:
    """Replace the tensors kept during the run by Python numbers: one transfer per group and device."""
    for scheduler in trace.schedulers:
        scheduler.lr_before = [_number(lr) for lr in scheduler.lr_before]
        scheduler.lr_after = [_number(lr) for lr in scheduler.lr_after]
    for group in trace.groups:
        group.initial_lr = _number(group.initial_lr)
        tensors = [(record, key, value) for record in group.steps for key, value in record.items()
                   if isinstance(value, torch.Tensor)]
        by_device = defaultdict(list)
        for item in tensors:
            by_device[item[2].device].append(item)
        for items in by_device.values():
            flat = torch.cat([value.detach().reshape(-1).double() for _, _, value in items]).tolist()
            offset = 0
            for record, key, value in items:
                record[key] = flat[offset: offset + value.numel()]
                offset += value.numel()
        for record in group.steps:
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
