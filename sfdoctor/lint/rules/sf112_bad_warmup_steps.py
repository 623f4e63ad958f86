from __future__ import annotations

import libcst as cst

from ...findings import RuleInfo
from ..analysis.constructions import constructions, describe
from ..analysis.index import descendants
from ..analysis.modes import trainer_arguments
from ..analysis.trainer import WARMUP_OPTIMS
from ..analysis.values import Evaluator, Where, last_name
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
        fractions = _fraction_conversions(self.context)
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
        self._check_trainer_arguments()

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


def _fraction_conversions(context) -> dict[str, cst.If]:
    """Expressions the code treats as a fraction of the run (`if warmup <= 1: warmup *= total`), by
    their text and the names they come from, mapped to that `if`; an expression the `if` converts
    in place is left out (what follows it reads the converted value)."""
    found: dict[str, cst.If] = {}
    converted: set[str] = set()
    index = context.index
    for statement in index.parent_statement:
        if not isinstance(statement, cst.If):
            continue
        compared = _compared_below_one(statement.test)
        if compared is None:
            continue
        targets = _multiplied_targets(statement, index)
        if not targets:
            continue
        text = index.code(compared)
        converted |= targets
        sources = {text}
        if isinstance(compared, cst.Name):
            origins, _ = context.evaluator.origins(compared, Where(statement, index.function_of(statement)))
            sources |= {index.code(origin) for origin, _ in origins if origin is not compared}
        for source in sources:
            found.setdefault(source, statement)
    return {text: node for text, node in found.items() if text not in converted}


def _compared_below_one(test: cst.BaseExpression) -> cst.BaseExpression | None:
    """X in `X <= 1`, `X < 1`, `1 > X`, `0 < X < 1`."""
    if not isinstance(test, cst.Comparison):
        return None
    operands = [test.left, *(c.comparator for c in test.comparisons)]
    for position, target in enumerate(test.comparisons):
        left, right = operands[position], operands[position + 1]
        if isinstance(target.operator, (cst.LessThan, cst.LessThanEqual)) and _is_one(right):
            return left
        if isinstance(target.operator, (cst.GreaterThan, cst.GreaterThanEqual)) and _is_one(left):
            return right
    return None


def _is_one(node: cst.BaseExpression) -> bool:
    return isinstance(node, (cst.Integer, cst.Float)) and float(node.value) == 1


def _multiplied_targets(statement: cst.If, index) -> set[str]:
    """What the `if` body assigns a product to (`warmup *= total`, `steps = int(warmup * total)`)."""
    targets = set()
    for node in descendants(statement.body):
        if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.MultiplyAssign):
            targets.add(index.code(node.target))
        elif isinstance(node, cst.Assign) and any(
            isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Multiply) for n in descendants(node.value)
        ):
            targets |= {index.code(t.target) for t in node.targets}
    return targets
