from ...findings import RuleInfo
from ..constructions import constructions, describe, dict_value, group_writes, is_negative, lr_argument, param_group_dicts
from ..rule import Rule


class NegativeLr(Rule):
    info = RuleInfo("SF114", "negative-lr", "error", "A ScheduleFree optimizer or param group with a negative lr.")

    def check(self) -> None:
        candidates = []
        for construction in self.context.analysis(constructions):
            found = lr_argument(self.context, construction)
            if found is not None:
                candidates.append(found)
            for group, where, _ in param_group_dicts(self.context, construction):
                lr = dict_value(group, "lr")
                if lr is not None:
                    candidates.append((lr, where))
        candidates += [(w.write.value, w.where) for w in group_writes(self.context, "lr")]
        for lr, where in candidates:
            values = self.context.evaluator.values(lr, where)
            fires, certain = values.triggers(is_negative)
            if fires:
                self.report(
                    lr,
                    f"lr is {describe(values)}: a negative lr passes every check and the loss climbs",
                    possible=not certain,
                    notes=("use a positive lr",),
                )
