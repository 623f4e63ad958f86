from ...findings import RuleInfo
from ..rule import Rule
from ..schedulers import removal_fix, schedulers


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
