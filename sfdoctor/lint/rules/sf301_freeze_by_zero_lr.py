import libcst as cst

from ...findings import RuleInfo
from ..constructions import constructions, describe, dict_value, group_writes, is_zero, param_group_dicts
from ..rule import Rule
from ..values import OptimizerSite, Where

WHY = (
    "a group with lr 0 keeps weight_sum 0, so ckp1 = weight/weight_sum is 0/0 for that group "
    "(ZeroDivisionError in schedulefree < 1.2.2, 1.2.3 and ScheduleFreeWrapper; dead optimizer state elsewhere)"
)
FIX = "freeze with p.requires_grad_(False), or leave these parameters out of the optimizer"


class FreezeByZeroLr(Rule):
    info = RuleInfo(
        "SF301", "freeze-by-zero-lr", "error", "A param group frozen with lr 0 in a ScheduleFree optimizer."
    )

    def check(self) -> None:
        evaluator = self.context.evaluator
        for construction in self.context.analysis(constructions):
            groups = param_group_dicts(self.context, construction)
            groups += self._added_groups(construction)
            for group, where, in_loop in groups:
                lr = dict_value(group, "lr")
                if lr is None:
                    continue
                values = evaluator.values(lr, where)
                fires, certain = values.triggers(is_zero)
                if fires:
                    built = " (built in a loop)" if in_loop else ""
                    self.report(
                        lr,
                        f"param group{built} with lr {describe(values)} in {construction.class_name}: {WHY}",
                        possible=not certain,
                        related=(self.context.related("optimizer created here", construction.call),),
                        notes=(FIX,),
                    )
        for write in group_writes(self.context, "lr"):
            if write.every_group:
                continue  # all groups at lr 0 is SF110
            values = evaluator.values(write.write.value, write.where)
            fires, certain = values.triggers(is_zero)
            if fires:
                self.report(
                    write.write.value,
                    f"a param group's lr is set to {describe(values)}: {WHY}",
                    possible=not (certain and write.optimizers.certain),
                    notes=(FIX,),
                )

    def _added_groups(self, construction: OptimizerSite) -> list[tuple[cst.Dict, Where, bool]]:
        """`optimizer.add_param_group({...})` on this optimizer."""
        found = []
        for site in self.context.index.calls:
            func = site.node.func
            if not (isinstance(func, cst.Attribute) and func.attr.value == "add_param_group" and site.node.args):
                continue
            group = site.node.args[0].value
            where = Where(site.statement, site.function)
            if any(s.call is construction.call for s in self.context.evaluator.optimizers(func.value, where).sites):
                for origin, place in self.context.evaluator.origins(group, where)[0]:
                    if isinstance(origin, cst.Dict):
                        found.append((origin, place, False))
        return found
