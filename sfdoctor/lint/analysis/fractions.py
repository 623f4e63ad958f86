"""Values the code treats as a fraction of the run: `if warmup <= 1: warmup *= total_steps` (SF112)."""

from __future__ import annotations

import libcst as cst

from ..rule import FileContext
from .index import Function, ModuleIndex, descendants
from .values import Where


def fraction_conversions(context: FileContext) -> dict[str, cst.If]:
    """Expressions the code treats as a fraction of the run (`if warmup <= 1: warmup *= total`), by
    their text and the names they come from, mapped to that `if`; an expression the `if` converts
    in place is left out (what follows it reads the converted value)."""
    found: dict[str, cst.If] = {}
    converted: set[str] = set()
    index = context.index
    for statement, compared, targets in context.analysis(_conversions):
        text = index.code(compared)
        converted |= targets
        sources = {text}
        if isinstance(compared, cst.Name):
            origins, _ = context.evaluator.origins(compared, Where(statement, index.function_of(statement)))
            sources |= {index.code(origin) for origin, _ in origins if origin is not compared}
        for source in sources:
            found.setdefault(source, statement)
    return {text: node for text, node in found.items() if text not in converted}


def fraction_parameters(context: FileContext) -> dict[Function, tuple[str, ...]]:
    """The parameters each function converts from a fraction of the run (OneTrainer's
    `create_lr_scheduler(warmup_steps=...)`): what its callers pass is a fraction or a step count."""
    found: dict[Function, tuple[str, ...]] = {}
    for statement, compared, _ in context.analysis(_conversions):
        function = context.index.function_of(statement)
        if (
            function is not None
            and isinstance(compared, cst.Name)
            and compared.value in function.params
            and compared.value not in found.get(function, ())
        ):
            found[function] = (*found.get(function, ()), compared.value)
    return found


def _conversions(context: FileContext) -> list[tuple[cst.If, cst.BaseExpression, set[str]]]:
    """Each `if X <= 1:` whose body assigns a product (`X *= total`): the `if`, X, and what it assigns."""
    found = []
    for statement in context.index.parent_statement:
        if isinstance(statement, cst.If) and (compared := _compared_below_one(statement.test)) is not None:
            targets = _multiplied_targets(statement, context.index)
            if targets:
                found.append((statement, compared, targets))
    return found


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


def _multiplied_targets(statement: cst.If, index: ModuleIndex) -> set[str]:
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
