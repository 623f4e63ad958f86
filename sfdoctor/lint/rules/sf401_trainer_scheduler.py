import libcst as cst

from ...findings import Fix, RuleInfo
from ..edits import set_keyword
from ..modes import TRAINER_OPTIMS, trainer_arguments
from ..rule import Rule
from ..values import Evaluator, last_name


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
            if not schedule_free:
                continue
            call = arguments.call
            scheduler = Evaluator.argument(call, "lr_scheduler_type", None)
            if scheduler is None:
                if any(arg.star for arg in call.args):
                    continue  # it may come in **kwargs
                values, known = ("linear",), True
            else:
                evaluated = self.context.evaluator.values(scheduler, arguments.where)
                values = tuple(str(getattr(v, "value", v)) for v in evaluated.options)
                known = evaluated.complete
                if not values or all(v.lower().endswith("constant") for v in values):
                    continue
            shown = "the default 'linear'" if scheduler is None else " or ".join(repr(v) for v in values)
            certain = known and arguments.optim_known and len(schedule_free) == len(arguments.optim)
            certain &= not any(v.lower().endswith("constant") for v in values)
            warmup = any(Evaluator.argument(call, k, None) is not None for k in ("warmup_steps", "warmup_ratio"))
            self.report(
                scheduler if scheduler is not None else call,
                f"{last_name(call.func)}(optim={schedule_free[0]!r}) with lr_scheduler_type {shown}: Trainer builds "
                "that scheduler on top of ScheduleFree, which needs none, and a decaying schedule reaches lr 0"
                + ("; the warm-up also goes to the optimizer: a double warm-up" if warmup else ""),
                possible=not certain,
                fix=self._fix(call, scheduler),
                notes=('use lr_scheduler_type="constant"',),
            )

    def _fix(self, call: cst.Call, scheduler: cst.BaseExpression | None) -> Fix:
        # replacing an expression may drop logic the user meant for other optimizers
        safe = scheduler is None or isinstance(scheduler, cst.SimpleString)
        return set_keyword(
            self.context, call, "lr_scheduler_type", '"constant"', scheduler, "safe" if safe else "unsafe"
        )
