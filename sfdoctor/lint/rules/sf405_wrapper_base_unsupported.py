
from ...findings import RuleInfo
from ..analysis.constructions import base_optimizer_calls, constructions
from ..analysis.values import OptimizerSite, last_name
from ..rule import Rule

# Base optimizers whose state is created lazily in step(): the wrapper's shared state dict breaks them.
LAZY_STATE = frozenset({"Adam", "AdamW", "NAdam", "Adamax", "RMSprop"})
# The state entries they create on their first step.
FILLED_STATE = frozenset({"exp_avg", "exp_avg_sq", "square_avg"})


class WrapperBaseUnsupported(Rule):
    info = RuleInfo(
        "SF405",
        "wrapper-base-unsupported",
        "error",
        "ScheduleFreeWrapper around a base optimizer with lazily created state.",
    )

    def check(self) -> None:
        for construction in self.context.analysis(constructions):
            if not construction.is_wrapper or self._state_filled(construction):
                continue
            for call, _ in base_optimizer_calls(self.context, construction):
                qualname = self.context.index.qualname(call.func) or ""
                name = last_name(call.func)
                if name in LAZY_STATE and (qualname.startswith("torch.optim") or qualname == name):
                    self.report(
                        call,
                        f"{construction.class_name} around torch {name}: the wrapper shares its state dict with "
                        f"the base optimizer, so the first step raises KeyError ('exp_avg' / 'square_avg') "
                        "(schedulefree 1.4.1)",
                        related=(self.context.related("wrapper created here", construction.call),),
                        notes=("use AdamWScheduleFree, or wrap torch.optim.SGD / Adagrad",),
                    )

    def _state_filled(self, construction: OptimizerSite) -> bool:
        """The code creates the base optimizer's state itself (`state[p]["exp_avg"] = zeros_like(p)`) in
        the function that builds the wrapper: the first step finds it."""
        return any(
            write.key in FILLED_STATE and write.function is construction.where.function
            for write in self.context.index.subscript_writes
        )
