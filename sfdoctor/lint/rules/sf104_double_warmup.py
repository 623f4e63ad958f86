from ...findings import RuleInfo
from ..analysis.schedulers import removal_fix, schedulers
from ..rule import Rule


def _positive(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0


class DoubleWarmup(Rule):
    info = RuleInfo(
        "SF104", "double-warmup", "warning", "warmup_steps on the optimizer and a warm-up scheduler on it."
    )

    def check(self) -> None:
        for scheduler in self.context.analysis(schedulers):
            if not scheduler.warms_up.fires or scheduler.part_of_combined:
                continue
            for construction in scheduler.optimizers.sites:
                warmup = construction.argument("warmup_steps")
                if warmup is None or construction.is_adamc:  # its warmup_steps is a TypeError: SF116
                    continue
                fires, certain = self.context.evaluator.values(warmup, construction.where).triggers(_positive)
                if fires:
                    possible = not (certain and scheduler.warms_up.certain and scheduler.certain)
                    self.report(
                        scheduler.site.node,
                        f"{scheduler.kind} warms up on top of {construction.class_name}'s own warmup_steps: "
                        "the two ramps multiply into a longer, lower warm-up than either",
                        possible=possible,
                        related=(self.context.related("warmup_steps given here", warmup),),
                        notes=("keep only warmup_steps on the optimizer",),
                        fix=None if possible else removal_fix(self.context, scheduler),
                    )
                    break
