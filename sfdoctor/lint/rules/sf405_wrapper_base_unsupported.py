
from ...findings import RuleInfo
from ..constructions import base_optimizer_calls, constructions
from ..rule import Rule
from ..values import last_name

# Base optimizers whose state is created lazily in step(): the wrapper's shared state dict breaks them.
LAZY_STATE = frozenset({"Adam", "AdamW", "NAdam", "Adamax", "RMSprop"})


class WrapperBaseUnsupported(Rule):
    info = RuleInfo(
        "SF405",
        "wrapper-base-unsupported",
        "error",
        "ScheduleFreeWrapper around a base optimizer with lazily created state.",
    )

    def check(self) -> None:
        for construction in self.context.analysis(constructions):
            if not construction.is_wrapper:
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
