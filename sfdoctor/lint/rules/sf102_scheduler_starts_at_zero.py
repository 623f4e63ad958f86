from ...findings import RuleInfo
from ..analysis.modes import TRAINER_OPTIMS, trainer_arguments
from ..analysis.schedulers import removal_fix, schedulers
from ..analysis.trainer import STARTS_AT_ZERO_WITH_WARMUP, scheduler_types, warmup_given
from ..analysis.values import Evaluator, last_name
from ..rule import Rule


class SchedulerStartsAtZero(Rule):
    info = RuleInfo(
        "SF102",
        "scheduler-starts-at-zero",
        "error",
        "An LR scheduler on a ScheduleFree optimizer whose factor at step 0 is 0.",
    )

    def check(self) -> None:
        for scheduler in self.context.analysis(schedulers):
            if not scheduler.starts_at_zero.fires or scheduler.part_of_combined:
                continue
            optimizer = scheduler.optimizers.sites[0]
            steps = str(scheduler.warmup_length) if scheduler.warmup_length else "N"
            possible = not (scheduler.starts_at_zero.certain and scheduler.certain)
            self.report(
                scheduler.site.node,
                f"{scheduler.kind} starts at factor 0: its constructor already set lr to 0 before the first step, "
                "so commenting out scheduler.step() does not help; with lr 0 weight_sum stays 0 and "
                "ckp1 = weight/weight_sum is 0/0 (ZeroDivisionError in schedulefree < 1.2.2, 1.2.3 and "
                "ScheduleFreeWrapper, no learning elsewhere)",
                possible=possible,
                related=(self.context.created(optimizer),),
                notes=(
                    (
                        f"remove the scheduler and its .step() calls and pass warmup_steps={steps} to "
                        f"{optimizer.class_name}(...)"
                    ),
                ),
                fix=None if possible else removal_fix(self.context, scheduler),
            )
        self._trainer_arguments()

    def _trainer_arguments(self) -> None:
        """TrainingArguments(optim="schedule_free_*", lr_scheduler_type=<a warm-up schedule>, warmup_steps > 0):
        the scheduler Trainer builds starts at factor 0."""
        for arguments in self.context.analysis(trainer_arguments):
            optims = [v for v in arguments.optim if v in TRAINER_OPTIMS]
            found = scheduler_types(self.context, arguments) if optims else None
            if found is None:
                continue
            values, known = found
            ramps = [v for v in values if v in STARTS_AT_ZERO_WITH_WARMUP]
            warmup, warmup_certain = warmup_given(self.context, arguments)
            if not ramps or not warmup:
                continue
            certain = known and len(ramps) == len(values) and warmup_certain
            certain &= arguments.optim_known and len(optims) == len(arguments.optim)
            node = Evaluator.argument(arguments.call, "warmup_steps", None) or arguments.call
            self.report(
                node,
                f"{last_name(arguments.call.func)}(optim={optims[0]!r}, lr_scheduler_type={ramps[0]!r}) with a "
                f"warm-up: the {ramps[0]!r} scheduler Trainer builds starts at factor 0, so its constructor sets "
                "lr to 0 before the first step, which then does not learn (weight_sum stays 0; ckp1 = 0/0 is "
                "guarded to 0 in the schedulefree >= 1.2.6 Trainer requires)",
                possible=not certain,
                notes=('use lr_scheduler_type="constant": the optimizer\'s own warmup_steps still warms up',),
            )
