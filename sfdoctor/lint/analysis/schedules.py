"""Evaluate an LR schedule's factor at a step: `lambda s: min(1.0, s / W)` at s = 0 is 0.0.

A tiny interpreter over lambdas and simple `def`s (assignments, `if`, `return`) that follows free
names through the evaluator. Anything it does not understand gives None (unknown).
"""

from __future__ import annotations

import math
import operator

import libcst as cst

from .values import _BINARY, Evaluator, Where, bounded

MAX_WARMUP = 10**9  # steps; a longer warm-up is not one
_COMPARE = {
    cst.LessThan: operator.lt,
    cst.LessThanEqual: operator.le,
    cst.GreaterThan: operator.gt,
    cst.GreaterThanEqual: operator.ge,
    cst.Equal: operator.eq,
    cst.NotEqual: operator.ne,
}
_ZERO_PRESERVING = (cst.Divide, cst.FloorDivide, cst.Multiply)
_FUNCTIONS = {"min": min, "max": max, "float": float, "int": int, "abs": abs, "math.cos": math.cos,
              "math.sqrt": math.sqrt, "math.exp": math.exp, "math.log": math.log}


class _Unknown(Exception):
    pass


class _Returned(Exception):
    def __init__(self, value: float) -> None:
        self.value = value


class Schedule:
    """A schedule function (lambda or def) whose factor can be computed at a step."""

    def __init__(self, node: cst.Lambda | cst.FunctionDef, where: Where, evaluator: Evaluator) -> None:
        self.node = node
        self.where = where
        self.evaluator = evaluator
        params = node.params.params
        self.step_name = params[0].name.value if params else None
        self._factors: dict[int, float | None] = {}  # each step evaluated once per scheduler

    def factor(self, step: int) -> float | None:
        if step not in self._factors:
            self._factors[step] = self._factor(step)
        return self._factors[step]

    def _factor(self, step: int) -> float | None:
        if self.step_name is None:
            return None
        env = {self.step_name: step}
        try:
            if isinstance(self.node, cst.Lambda):
                return float(self._expression(self.node.body, env))
            self._statements(self.node.body.body, env)
        except _Returned as returned:
            return float(returned.value)
        except (_Unknown, TypeError, ValueError, ArithmeticError, OverflowError):
            return None
        return None

    def warmup_length(self) -> int | None:
        """The first step at which the factor reaches 1, for a schedule that starts below it: where
        its line reaches 1 when the factor is linear in the step (`s / N`, `min(1, s / N)`), else by
        bisection over a rising factor; None when it does not rise to 1."""
        first, second = self.factor(1), self.factor(2)
        if first is None or first >= 1:
            return None if first is None else 1
        if second is None or second <= first:
            return None
        steps = 1 + (1 - first) / (second - first)
        if steps < MAX_WARMUP:
            guess = math.ceil(steps)
            for step in (guess - 1, guess, guess + 1):  # floating-point rounding either way
                if self._reaches_one_at(step):
                    return step
        return self._bisect_warmup()

    def _reaches_one_at(self, step: int) -> bool:
        here, before = self.factor(step), self.factor(step - 1)
        return here is not None and before is not None and here >= 1 > before

    def _bisect_warmup(self) -> int | None:
        low, high = 1, 2  # factor(low) < 1; double `high` until the factor reaches 1
        while (factor := self.factor(high)) is not None and factor < 1:
            if factor <= self.factor(low) or high > MAX_WARMUP:  # type: ignore[operator]
                return None  # not rising: bisection would find any step
            low, high = high, high * 2
        if factor is None:
            return None
        while high - low > 1:
            middle = (low + high) // 2
            factor = self.factor(middle)
            if factor is None:
                return None
            low, high = (low, middle) if factor >= 1 else (middle, high)
        return high

    def _statements(self, statements, env: dict) -> None:
        for statement in statements:
            if isinstance(statement, cst.If):
                branch = statement.body if self._expression(statement.test, env) else statement.orelse
                while isinstance(branch, cst.If):  # elif
                    if self._expression(branch.test, env):
                        branch = branch.body
                        break
                    branch = branch.orelse
                if branch is not None:
                    self._statements(branch.body.body if isinstance(branch, cst.Else) else branch.body, env)
            elif isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    if isinstance(small, cst.Return) and small.value is not None:
                        raise _Returned(self._expression(small.value, env))
                    if isinstance(small, cst.Assign) and isinstance(small.targets[0].target, cst.Name):
                        env[small.targets[0].target.value] = self._expression(small.value, env)
                    elif not isinstance(small, (cst.Expr, cst.Pass)):
                        raise _Unknown
            else:
                raise _Unknown

    def _expression(self, node: cst.BaseExpression, env: dict):
        if isinstance(node, cst.Name) and node.value in env:
            return env[node.value]
        if isinstance(node, cst.BinaryOperation) and type(node.operator) in _BINARY:
            operation = _BINARY[type(node.operator)]
            left = self._expression(node.left, env)
            try:
                right = self._expression(node.right, env)
            except _Unknown:
                # `step / warmup` at step 0 is 0 whatever the (positive) warm-up is; 0 raises anyway
                if left == 0 and isinstance(node.operator, _ZERO_PRESERVING):
                    return 0.0
                raise
            return bounded(operation, left, right)
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
            return -self._expression(node.expression, env)
        if isinstance(node, cst.IfExp):
            return self._expression(node.body if self._expression(node.test, env) else node.orelse, env)
        if isinstance(node, cst.Comparison) and len(node.comparisons) == 1:
            comparison = node.comparisons[0]
            compare = _COMPARE.get(type(comparison.operator))
            if compare is None:
                raise _Unknown
            return compare(self._expression(node.left, env), self._expression(comparison.comparator, env))
        if isinstance(node, cst.Call):
            name = self.evaluator.index.qualname(node.func)
            function = _FUNCTIONS.get(name or "")
            if function is None or any(a.keyword or a.star for a in node.args):
                raise _Unknown
            return function(*(self._expression(a.value, env) for a in node.args))
        if isinstance(node, cst.Attribute) and self.evaluator.index.qualname(node) == "math.pi":
            return math.pi
        value = self.evaluator.values(node, self.where).single
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        raise _Unknown


def schedule_functions(
    evaluator: Evaluator, node: cst.BaseExpression, where: Where
) -> list[Schedule]:
    """The lambdas or local functions `node` (an lr_lambda argument) may be."""
    if isinstance(node, cst.Name) and node.value in evaluator.index.functions_by_name:
        return [
            Schedule(function.node, Where(function.node, function), evaluator)
            for function in evaluator.index.functions_by_name[node.value]
        ]
    origins, _ = evaluator.origins(node, where)
    schedules = []
    for origin, place in origins:
        if isinstance(origin, cst.Lambda):
            schedules.append(Schedule(origin, place, evaluator))
    return schedules
