import libcst as cst

from ...findings import RuleInfo
from ..analysis.constructions import constructions, describe, is_zero
from ..rule import Rule


class ZeroMomentum(Rule):
    info = RuleInfo(
        "SF113", "zero-momentum", "error", "betas[0] == 0 or momentum == 0 on a ScheduleFree optimizer."
    )

    def check(self) -> None:
        evaluator = self.context.evaluator
        for construction in self.context.analysis(constructions):
            if construction.is_adamc:
                continue  # its betas are Adam's inner moments; x is stored, eval() divides by nothing
            momentum = construction.argument("momentum")
            candidates = [(momentum, construction.where, "momentum")] if momentum is not None else []
            betas = construction.argument("betas")
            if betas is not None:
                origins, _ = evaluator.origins(betas, construction.where)
                candidates += [
                    (origin.elements[0].value, where, "betas[0]")
                    for origin, where in origins
                    if isinstance(origin, (cst.Tuple, cst.List)) and origin.elements
                ]
            for node, where, what in candidates:
                values = evaluator.values(node, where)
                fires, certain = values.triggers(is_zero)
                if fires:
                    self.report(
                        node,
                        f"{what} is {describe(values)}: {_consequence(construction.class_name)}",
                        possible=not certain or construction.possible,
                        # a config dict may feed other optimizers too: say which ScheduleFree one it reaches
                        related=(
                            (self.context.related(f"reaches {construction.class_name} here", construction.call),)
                            if where.statement is not construction.where.statement
                            else ()
                        ),
                        notes=(f"use {what} in (0, 1), e.g. 0.9",),
                    )


def _consequence(class_name: str) -> str:
    if class_name.startswith("SGDScheduleFree"):
        # `if momentum <= 0 or momentum >= 1: raise ValueError` since the first release (1.4.1 checked)
        return (f"{class_name}'s constructor raises ValueError(\"Momentum must be between 0 and 1 exclusive\") "
                "in every schedulefree release up to 1.4.1")
    return (f"{class_name} accepts it, but optimizer.eval() divides by it to rebuild x "
            "(ZeroDivisionError: float division by zero in eval())")
