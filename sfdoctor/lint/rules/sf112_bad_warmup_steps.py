from __future__ import annotations

import libcst as cst

from ...findings import Location, Related, RuleInfo
from ..analysis.constructions import constructions, describe
from ..analysis.fractions import fraction_conversions
from ..analysis.modes import trainer_arguments
from ..analysis.trainer import WARMUP_OPTIMS
from ..analysis.values import Evaluator, last_name
from ..project.facts import Setting
from ..rule import Rule


def _fraction(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value < 1 and value != 0


def _steps(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value >= 1


class BadWarmupSteps(Rule):
    info = RuleInfo(
        "SF112", "bad-warmup-steps", "error", "warmup_steps that is a fraction, or warmup_steps on RAdamScheduleFree."
    )

    def check(self) -> None:
        fractions = fraction_conversions(self.context)
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
            if warmup is None or construction.is_adamc:  # any warmup_steps is a TypeError there: SF116
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
            elif self.context.index.code(warmup) in fractions and not values.triggers(_steps)[1]:
                conversion = fractions[self.context.index.code(warmup)]
                line = self.context.location(conversion)[0].row
                self.report(
                    warmup,
                    f"warmup_steps={self.context.index.code(warmup)} is read as a fraction of the total steps on "
                    f"line {line}, but passed here as it is: when it is a fraction, the first step runs at "
                    "lr/warmup_steps, larger than lr",
                    possible=True,
                    related=(self.context.related("converted from a fraction here", conversion),),
                    notes=("pass the converted number of steps",),
                )
            elif (setting := self._fraction_setting(warmup)) is not None and not values.triggers(_steps)[1]:
                handed, function = setting
                self.report(
                    warmup,
                    f"warmup_steps={self.context.index.code(warmup)} is read as a fraction of the total steps by "
                    f"{function}, but passed here as it is: when it is a fraction, the first step runs at "
                    "lr/warmup_steps, larger than lr",
                    possible=True,
                    related=(Related(f"handed to {function.split('(')[0]}() here", handed.filename, Location(handed.row, 1)),),
                    notes=("pass the converted number of steps",),
                )
        self._check_trainer_arguments()

    def _fraction_setting(self, warmup: cst.BaseExpression) -> tuple[Setting, str] | None:
        """`config.learning_rate_warmup_steps`, which a function of another module reads as a fraction."""
        project = self.context.evaluator.project
        if project is None or not isinstance(warmup, cst.Attribute):
            return None
        return project.fraction_settings.get(warmup.attr.value)

    def _check_trainer_arguments(self) -> None:
        for arguments in self.context.analysis(trainer_arguments):
            optims = [v for v in arguments.optim if v in WARMUP_OPTIMS]
            warmup = Evaluator.argument(arguments.call, "warmup_steps", None)
            if not optims or warmup is None:
                continue
            values = self.context.evaluator.values(warmup, arguments.where)
            fires, certain = values.triggers(_fraction)
            if not fires:
                continue
            fraction = next(v for v in values.options if _fraction(v))
            self.report(
                warmup,
                f"{last_name(arguments.call.func)}(optim={optims[0]!r}, warmup_steps={describe(values)}): "
                "transformers reads a value below 1 as a ratio of the run for its scheduler, but hands it as it "
                f"is to the ScheduleFree optimizer, whose first step then runs at lr/{fraction!r} "
                f"({1 / fraction:g}x lr)",
                possible=not certain or not arguments.optim_known or len(optims) < len(arguments.optim),
                notes=("give a number of steps, e.g. warmup_steps=int(0.05 * max_steps)",),
            )
