from ...findings import RuleInfo
from ..analysis.constructions import describe, is_negative, lr_expressions
from ..rule import Rule


class NegativeLr(Rule):
    info = RuleInfo("SF114", "negative-lr", "error", "A ScheduleFree optimizer or param group with a negative lr.")

    def check(self) -> None:
        for lr, where in self.context.analysis(lr_expressions):
            values = self.context.evaluator.values(lr, where)
            fires, certain = values.triggers(is_negative)
            if fires:
                self.report(
                    lr,
                    f"lr is {describe(values)}: a negative lr passes every check and the loss climbs",
                    possible=not certain,
                    notes=("use a positive lr",),
                )
