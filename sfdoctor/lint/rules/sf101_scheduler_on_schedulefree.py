from ...findings import RuleInfo
from ..analysis.schedulers import schedulers
from ..rule import Rule


class SchedulerOnScheduleFree(Rule):
    info = RuleInfo(
        "SF101", "scheduler-on-schedulefree", "warning", "An LR scheduler constructed on a ScheduleFree optimizer."
    )

    def check(self) -> None:
        for scheduler in self.context.analysis(schedulers):
            if (
                scheduler.starts_at_zero.fires  # SF102
                or scheduler.no_op
                or scheduler.steps_neutralised
                or scheduler.part_of_combined
            ):
                continue
            optimizer = scheduler.optimizers.sites[0]
            harm = (
                "its lr multiplies the Polyak step size, so a schedule that reaches 0 stops learning"
                if optimizer.is_adamc
                else "a decaying schedule that reaches lr 0 stops learning and divides by weight_sum = 0 in "
                "ckp1 = weight/weight_sum"
            )
            self.report(
                scheduler.site.node,
                f"{scheduler.kind} on {optimizer.class_name}: ScheduleFree needs no schedule, and {harm}",
                possible=not scheduler.certain,
                related=(self.context.created(optimizer),),
                notes=("remove the scheduler and its .step() calls; use warmup_steps=N on the optimizer to warm up",),
            )
