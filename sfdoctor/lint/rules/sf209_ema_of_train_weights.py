import libcst as cst

from ...findings import RuleInfo
from ..analysis.ema import EMA_CLASS, averager_origins
from ..analysis.modes import mode_reports
from ..analysis.values import Where, last_name
from ..rule import Rule

WHY = (
    "it averages y, the gradient point the model holds in train mode, not ScheduleFree's average x; "
    "the optimizer.eval() before evaluating the EMA copy then switches a model nobody evaluates"
)
NOTE = "update the EMA between optimizer.eval() and optimizer.train(), or drop it: ScheduleFree already averages"


class EmaOfTrainWeights(Rule):
    info = RuleInfo(
        "SF209",
        "ema-of-train-weights",
        "warning",
        "An EMA/SWA copy updated from a model whose ScheduleFree optimizer is in train mode: it averages y.",
    )

    def check(self) -> None:
        for report in mode_reports(self.context, "ema"):
            self.report(
                report.node,
                f"the EMA is updated while the optimizer is in train mode: {WHY}",
                possible=report.possible,
                related=report.related,
                notes=(NOTE, *report.notes),
            )
        self._step_hooks()

    def _step_hooks(self) -> None:
        """`optimizer.register_step_post_hook(ema_hook)`: it runs right after step(), always in train mode."""
        evaluator = self.context.evaluator
        for site in self.context.index.calls:
            func = site.node.func
            if not (isinstance(func, cst.Attribute) and func.attr.value == "register_step_post_hook" and site.node.args):
                continue
            where = Where(site.statement, site.function)
            optimizers = evaluator.optimizers(func.value, where)
            sites = [s for s in optimizers.sites if not s.is_adamc]  # step_func() runs no step hooks
            hook = site.node.args[0].value
            if sites and self._is_ema(hook, where):
                self.report(
                    hook,
                    f"an EMA update hooked after {sites[0].class_name}.step(): the hook runs in train mode, so {WHY}",
                    possible=not optimizers.certain or len(sites) < len(optimizers.sites),
                    related=(self.context.related("optimizer created here", sites[0].call),),
                    notes=(NOTE,),
                )

    def _is_ema(self, hook: cst.BaseExpression, where: Where) -> bool:
        """`ema.update`, `lambda *_: ema.update(model)`, a function named like `ema_hook`."""
        text = self.context.index.code(hook)
        if "ema" in text.lower():
            return True
        if isinstance(hook, cst.Attribute):
            return any(
                isinstance(o, cst.Call) and EMA_CLASS.search(last_name(o.func) or "")
                for o, _ in averager_origins(self.context, hook.value, where)
            )
        return False
