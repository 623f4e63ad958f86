"""Replay and guard rule identities (RULES.md, SF5xx). Importing this module must not import torch."""

from __future__ import annotations

from ..findings import RuleInfo

SF501 = RuleInfo(
    "SF501", "zero-weight-sum", "error",
    "A group's weight_sum was 0 at a step: weight/weight_sum is 0/0; the replay applied the safe division.",
)
SF502 = RuleInfo(
    "SF502", "non-finite-average", "error",
    "ckp1 or a parameter became NaN or infinite during the replay.",
)
SF503 = RuleInfo(
    "SF503", "group-never-moved", "error",
    "A group's parameters did not change over the whole replay: the run does not learn.",
)
SF504 = RuleInfo(
    "SF504", "lr-changed-outside", "warning",
    "group['lr'] was changed between steps by a scheduler or user code.",
)
SF505 = RuleInfo(
    "SF505", "momentum-changed", "error",
    "beta1 / momentum changed during the replay: eval() reconstructs x with the wrong value.",
)
SF506 = RuleInfo(
    "SF506", "step-in-eval-mode", "error",
    "step() was called while the optimizer was in eval mode.",
)
SF507 = RuleInfo(
    "SF507", "eval-did-not-move", "warning",
    "optimizer.eval() left the parameters unchanged although the optimizer has state.",
)
SF508 = RuleInfo(
    "SF508", "zero-grad-moved", "error",
    "Parameters whose gradient was all zeros moved in a step: zeroing gradients does not freeze them.",
)
SF509 = RuleInfo(
    "SF509", "rank-divergence", "error",
    "In a multi-process replay, ranks disagree on lr, weight_sum or mode.",
)
SF510 = RuleInfo(
    "SF510", "negative-lr-at-step", "error",
    "A group stepped with a negative learning rate.",
)
SF512 = RuleInfo(
    "SF512", "low-precision-average", "warning",
    "The parameters or z of a ScheduleFree optimizer are bf16/fp16 during the run: the average x barely moves.",
)
SF513 = RuleInfo(
    "SF513", "saved-at-y", "warning",
    "A checkpoint was taken while the ScheduleFree optimizer was in train mode: it holds y, not the average x.",
)

REPLAY_RULES: tuple[RuleInfo, ...] = (
    SF501, SF502, SF503, SF504, SF505, SF506, SF507, SF508, SF509, SF510, SF512, SF513,
)
