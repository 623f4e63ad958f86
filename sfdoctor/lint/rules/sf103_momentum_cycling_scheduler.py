from ...findings import RuleInfo
from ..analysis.constructions import group_writes
from ..analysis.schedulers import schedulers
from ..fixes.edits import set_keyword
from ..rule import Rule

WHY = (
    "optimizer.eval() rebuilds the averaged weights x with the current beta1/momentum, so a value that "
    "changed during training silently corrupts the weights you evaluate and save"
)


class MomentumCyclingScheduler(Rule):
    info = RuleInfo(
        "SF103",
        "momentum-cycling-scheduler",
        "error",
        "OneCycleLR/CyclicLR cycling momentum, or code writing betas/momentum, on a ScheduleFree optimizer.",
    )

    def check(self) -> None:
        for scheduler in self.context.analysis(schedulers):
            if not scheduler.cycles_momentum.fires or scheduler.part_of_combined:
                continue
            self.report(
                scheduler.site.node,
                f"{scheduler.kind} cycles betas[0]/momentum by default (cycle_momentum=True): {WHY}",
                possible=not (scheduler.cycles_momentum.certain and scheduler.certain),
                related=(self.context.created(scheduler.optimizers.sites[0]),),
                notes=("remove the scheduler, or pass cycle_momentum=False",),
                # unsafe: the schedule keeps cycling lr; the user may rather remove the scheduler
                fix=set_keyword(
                    self.context,
                    scheduler.site.node,
                    "cycle_momentum",
                    "False",
                    self.context.evaluator.argument(scheduler.site.node, "cycle_momentum", None),
                    "unsafe",
                ),
            )
        for key in ("betas", "momentum"):
            for write in group_writes(self.context, key):
                if all(site.is_adamc for site in write.optimizers.sites):
                    continue  # ScheduleFree+'s betas are Adam's; x is stored, not rebuilt from beta1
                self.report(
                    write.write.value,
                    f"param_group[{key!r}] changed on a ScheduleFree optimizer: {WHY}",
                    possible=not write.optimizers.certain,
                    notes=(f"leave {key} fixed for the whole run",),
                )
