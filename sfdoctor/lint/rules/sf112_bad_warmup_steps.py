from ...findings import RuleInfo
from ..constructions import constructions, describe
from ..rule import Rule


def _fraction(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value < 1 and value != 0


class BadWarmupSteps(Rule):
    info = RuleInfo(
        "SF112", "bad-warmup-steps", "error", "warmup_steps that is a fraction, or warmup_steps on RAdamScheduleFree."
    )

    def check(self) -> None:
        for construction in self.context.analysis(constructions):
            if construction.class_name.startswith("RAdamScheduleFree"):
                warmup = self.context.evaluator.argument(construction.call, "warmup_steps", None)
                if warmup is not None:
                    self.report(
                        warmup,
                        f"{construction.class_name} takes no warmup_steps argument: the constructor raises "
                        "TypeError (RAdam's rectification is its own warm-up)",
                        notes=("remove warmup_steps",),
                    )
                continue
            warmup = construction.argument("warmup_steps")
            if warmup is None:
                continue
            values = self.context.evaluator.values(warmup, construction.where)
            fires, certain = values.triggers(_fraction)
            if fires:
                self.report(
                    warmup,
                    f"warmup_steps is {describe(values)}: it counts optimizer steps, not a fraction of training; "
                    "below 1 the first step runs at lr/warmup_steps, larger than lr",
                    possible=not certain or construction.possible,
                    notes=("give the number of warm-up steps, e.g. warmup_steps=int(0.05 * total_steps)",),
                )
