from ...findings import RuleInfo
from ..analysis.constructions import constructions, describe, is_zero, lr_argument, zero_lr_writes
from ..rule import Rule

WHY = (
    "weight_sum stays 0 while every step has lr 0, so ckp1 = weight/weight_sum is 0/0: "
    "ZeroDivisionError in schedulefree 1.1-1.2.1, 1.2.3 and ScheduleFreeWrapper; "
    "a run that silently does not learn elsewhere"
)


class ZeroLr(Rule):
    info = RuleInfo("SF110", "zero-lr", "error", "A ScheduleFree optimizer whose lr is 0.")

    def check(self) -> None:
        evaluator = self.context.evaluator
        for construction in self.context.analysis(constructions):
            found = lr_argument(self.context, construction)
            if found is None:
                continue
            lr, where = found
            values = evaluator.values(lr, where)
            fires, certain = values.triggers(is_zero)
            if fires:
                whose = "its base optimizer's lr" if construction.is_wrapper else "lr"
                self.report(
                    lr,
                    f"{construction.class_name} gets {whose} {describe(values)}: {WHY}",
                    possible=not certain or construction.possible,
                    related=(self.context.related("optimizer created here", construction.call),),
                    notes=("give a positive lr; ramp it up with warmup_steps=N instead of starting at 0",),
                )
        for write, values, certain in zero_lr_writes(self.context, every_group=True):  # one group: SF301
            self.report(
                write.write.value,
                f"every param group's lr is set to {describe(values)}: {WHY}",
                possible=not (certain and write.optimizers.certain),
            )


