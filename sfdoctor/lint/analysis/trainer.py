"""What HF Trainer builds from TrainingArguments (transformers 5.24, checked with `get_scheduler`)."""

from __future__ import annotations

from ..rule import FileContext
from .modes import TrainerArguments
from .values import Evaluator

# Trainer optims whose optimizer gets TrainingArguments.warmup_steps as is; schedule_free_radam is built without it.
WARMUP_OPTIMS = ("schedule_free_adamw", "schedule_free_sgd")
# Schedules whose factor is 0 at step 0 when warmup_steps > 0; and those that reach 0 at the end.
STARTS_AT_ZERO_WITH_WARMUP = frozenset(
    {"linear", "cosine", "cosine_with_restarts", "polynomial", "constant_with_warmup", "inverse_sqrt",
     "cosine_with_min_lr", "warmup_stable_decay"}
)
DECAYS_TO_ZERO = frozenset({"linear", "cosine", "cosine_with_restarts", "polynomial", "warmup_stable_decay"})
EFFECTS = {
    "constant_with_warmup": "a warm-up ramp from lr 0 (then constant)",
    "cosine_with_min_lr": "a schedule that decays lr to its minimum",
    "cosine_warmup_with_min_lr": "a schedule that decays lr to its minimum",
    "inverse_sqrt": "a schedule that decays lr as 1/sqrt(step)",
    "reduce_lr_on_plateau": "a schedule that cuts lr whenever the metric plateaus, down to 0",
}


def scheduler_types(context: FileContext, arguments: TrainerArguments) -> tuple[tuple[str, ...], bool] | None:
    """The lr_scheduler_type values (the default "linear" when absent) and whether every path is known;
    None when it may come in **kwargs."""
    node = Evaluator.argument(arguments.call, "lr_scheduler_type", None)
    if node is None:
        return None if any(arg.star for arg in arguments.call.args) else (("linear",), True)
    evaluated = context.evaluator.values(node, arguments.where)
    return tuple(str(getattr(v, "value", v)).lower() for v in evaluated.options), evaluated.complete


def warmup_given(context: FileContext, arguments: TrainerArguments) -> tuple[bool, bool]:
    """(fires, certain): warmup_steps (or the older warmup_ratio) > 0."""
    fires = certain = False
    for keyword in ("warmup_steps", "warmup_ratio"):
        node = Evaluator.argument(arguments.call, keyword, None)
        if node is not None:
            hit, sure = context.evaluator.values(node, arguments.where).triggers(
                lambda v: not isinstance(v, bool) and v > 0
            )
            fires, certain = fires or hit, certain or sure
    return fires, certain


def effect(kind: str) -> str:
    if kind in DECAYS_TO_ZERO:
        return "a schedule that decays lr to 0 by the end of training"
    return EFFECTS.get(kind, "a schedule that changes lr during training")
