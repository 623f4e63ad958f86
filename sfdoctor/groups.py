"""What every ScheduleFree param group holds, and the safe division of its weight_sum.

Shared by `sfdoctor replay` (replay/instrument.py) and `sfdoctor.watch` (guard.py).
"""

from __future__ import annotations

import sys
from typing import Any

import torch

# What every ScheduleFree optimizer keeps in its param groups (vendored copies included).
SCHEDULEFREE_GROUP_KEYS = ("weight_sum", "lr_max", "k")
# The smallest *normal* double: a subnormal lift such as 5e-324 would be flushed to 0 by
# torch.set_flush_denormal(True), which also sets the CPU's flush-to-zero mode for Python floats.
FLOAT_LIFT = sys.float_info.min
# Per-step parameter changes are measured on at most about this many evenly spaced elements of each
# tensor (all of a smaller one): copying every parameter on every step would cost ~15% of a step.
SAMPLE = 4096


def is_schedulefree_group(group: dict) -> bool:
    return all(key in group for key in SCHEDULEFREE_GROUP_KEYS)


def group_beta(group: dict) -> Any:
    return group["betas"][0] if "betas" in group else group.get("momentum")


def sample(p: torch.Tensor) -> torch.Tensor:
    """Evenly spaced elements of a parameter: a view, so it sees the parameter's current values."""
    flat = p.detach().reshape(-1)
    return flat[:: max(1, flat.numel() // SAMPLE)]


def lift_weight_sum(group: dict) -> Any:
    """The safe division: a zero weight_sum is lifted to the smallest normal number before the step.

    Upstream computes weight_sum += weight; ckp1 = weight / weight_sum. With the lift, a zero
    weight gives ckp1 = 0 / tiny = 0 (what the upstream guard `ckp1 = 0` gives, bit for bit), a
    positive weight w gives w / (w + tiny) = 1 exactly as w / w does, and `unlift_weight_sum` after
    the step restores weight_sum exactly. Tensors are lifted with arithmetic instead of a comparison
    so that no step waits for the device. Returns the lift.
    """
    weight_sum, lr = group.get("weight_sum", 0.0), group["lr"]
    if isinstance(weight_sum, torch.Tensor):
        lift = (weight_sum == 0) * torch.finfo(weight_sum.dtype).tiny
    elif weight_sum != 0:
        return 0.0
    else:
        lift = torch.finfo(lr.dtype).tiny if isinstance(lr, torch.Tensor) else FLOAT_LIFT
    group["weight_sum"] = weight_sum + lift
    return lift


def unlift_weight_sum(weight_sum: Any, lift: Any) -> Any:
    """Exact: (w + tiny) - tiny is w for every weight w that upstream can produce, and 0 for w = 0."""
    return weight_sum - lift if isinstance(lift, torch.Tensor) or lift else weight_sum
