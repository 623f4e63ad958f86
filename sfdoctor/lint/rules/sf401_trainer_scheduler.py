import libcst as cst

from ...findings import Fix, RuleInfo
from ..analysis.modes import TRAINER_OPTIMS, TrainerArguments, trainer_arguments
from ..analysis.trainer import (
    STARTS_AT_ZERO_WITH_WARMUP,
    WARMUP_OPTIMS,
    effect,
    scheduler_types,
    warmup_given,
)
from ..analysis.values import Evaluator, last_name
from ..fixes.edits import set_keyword
from ..rule import Rule


class TrainerScheduler(Rule):
    info = RuleInfo(
        "SF401",
        "trainer-scheduler",
        "warning",
        'HF TrainingArguments(optim="schedule_free_*") with an lr_scheduler_type other than "constant".',
    )

    def check(self) -> None:
        for arguments in self.context.analysis(trainer_arguments):
            schedule_free = [v for v in arguments.optim if v in TRAINER_OPTIMS]
            found = scheduler_types(self.context, arguments) if schedule_free else None
            if found is None:
                continue
            values, known = found
            scheduler = Evaluator.argument(arguments.call, "lr_scheduler_type", None)
            if not values or all(v.endswith("constant") for v in values):
                continue
            call = arguments.call
            shown = "the default 'linear'" if scheduler is None else " or ".join(repr(v) for v in values)
            certain = known and arguments.optim_known and len(schedule_free) == len(arguments.optim)
            certain &= not any(v.endswith("constant") for v in values)
            effects = " or ".join(dict.fromkeys(effect(v) for v in values if not v.endswith("constant")))
            self.report(
                scheduler if scheduler is not None else call,
                f"{last_name(call.func)}(optim={schedule_free[0]!r}) with lr_scheduler_type {shown}: Trainer builds "
                f"{effects} on top of ScheduleFree, which needs none" + self._double_warmup(arguments, values),
                possible=not certain,
                fix=self._fix(call, scheduler),
                notes=('use lr_scheduler_type="constant"',),
            )

    def _double_warmup(self, arguments: TrainerArguments, values: tuple[str, ...]) -> str:
        """Trainer hands warmup_steps to AdamW/SGD ScheduleFree (not RAdam) and warms its scheduler up too."""
        optims = [v for v in arguments.optim if v in WARMUP_OPTIMS]
        if not optims or not warmup_given(self.context, arguments)[0]:
            return ""
        if not any(v in STARTS_AT_ZERO_WITH_WARMUP for v in values):
            return ""
        return f"; warmup_steps also goes to the {optims[0]} optimizer: a double warm-up"

    def _fix(self, call: cst.Call, scheduler: cst.BaseExpression | None) -> Fix:
        # replacing an expression may drop logic the user meant for other optimizers
        safe = scheduler is None or isinstance(scheduler, cst.SimpleString)
        return set_keyword(
            self.context, call, "lr_scheduler_type", '"constant"', scheduler, "safe" if safe else "unsafe"
        )
