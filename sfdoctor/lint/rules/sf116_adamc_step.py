"""ScheduleFree+ (`AdamCScheduleFreePlusPaper`, upstream git head after 1.4.1) steps with
`step_func(function_value)`: checked on CPU, `.step()` is torch's base `Optimizer.step` and raises
`NotImplementedError`, `step_func()` without a value raises `TypeError` (`float(None)`), and the
constructor has no `warmup_steps` (`TypeError`)."""

from __future__ import annotations

import libcst as cst

from ...findings import RuleInfo
from ..analysis.constructions import constructions
from ..analysis.modes import mode_analysis
from ..analysis.values import ADAMC, Evaluator, Optimizers, Where, last_name
from ..rule import Rule

STEP_FUNC = "call optimizer.step_func(loss.item()) after backward(): its Polyak step size needs the loss value"


class AdamCStep(Rule):
    info = RuleInfo(
        "SF116",
        "adamc-step",
        "error",
        "AdamCScheduleFreePlusPaper driven by step() (NotImplementedError), step_func() without a value, or warmup_steps.",
    )

    def check(self) -> None:
        for construction in self.context.analysis(constructions):
            warmup = Evaluator.argument(construction.call, "warmup_steps", None)
            if construction.is_adamc and warmup is not None:
                self.report(
                    warmup,
                    f"{ADAMC} takes no warmup_steps argument: the constructor raises TypeError",
                    notes=("remove warmup_steps; c_warmup=N keeps x equal to z for the first N steps",),
                )
        analysis = self.context.analysis(mode_analysis)
        for node, (_, optimizers) in analysis.receivers.items():
            method = node.func.attr.value if isinstance(node.func, cst.Attribute) else None
            adamc = [s for s in optimizers.sites if s.is_adamc]
            if not adamc:
                continue
            possible = not optimizers.certain or len(adamc) < len(optimizers.sites)
            if method == "step":
                self.report(
                    node,
                    f"{self.context.index.code(node.func)}() on {ADAMC}: it has no step(), torch's "
                    "Optimizer.step raises NotImplementedError; its step is step_func(function_value)",
                    possible=possible,
                    related=(self.context.related("optimizer created here", adamc[0].call),),
                    notes=(STEP_FUNC,),
                )
            elif method == "step_func" and _no_value(node):
                self.report(
                    node,
                    f"{self.context.index.code(node.func)}() without a function value: {ADAMC}'s Polyak step "
                    "size needs the loss, float(None) raises TypeError",
                    possible=possible,
                    notes=(STEP_FUNC,),
                )
        self._check_frameworks()

    def _check_frameworks(self) -> None:
        """Trainer(optimizers=(opt, ...)) and Lightning's configure_optimizers call step()."""
        evaluator = self.context.evaluator
        for site in self.context.index.calls:
            optimizers = Evaluator.argument(site.node, "optimizers", None)
            if optimizers is None or not (last_name(site.node.func) or "").endswith("Trainer"):
                continue
            where = Where(site.statement, site.function)
            for origin, place in evaluator.origins(optimizers, where)[0]:
                if isinstance(origin, (cst.Tuple, cst.List)) and origin.elements:
                    self._framework(origin.elements[0].value, evaluator.optimizers(origin.elements[0].value, place),
                                    "Trainer calls optimizer.step()")
        for function in self.context.index.functions:
            if function.name != "configure_optimizers":
                continue
            for value, statement in function.returns:
                found = evaluator.optimizers(value, Where(statement, function))
                self._framework(value, found, "Lightning calls optimizer.step()")

    def _framework(self, node: cst.BaseExpression, optimizers: Optimizers, who: str) -> None:
        adamc = [s for s in optimizers.sites if s.is_adamc]
        if adamc:
            self.report(
                node,
                f"{ADAMC} handed to a framework that drives it: {who}, which raises NotImplementedError "
                "(its step is step_func(function_value))",
                possible=not optimizers.certain or len(adamc) < len(optimizers.sites),
                related=(self.context.related("optimizer created here", adamc[0].call),),
                notes=("write the training loop yourself, or an adapter whose step() calls step_func(loss)",),
            )


def _no_value(call: cst.Call) -> bool:
    value = Evaluator.argument(call, "function_value", 0)
    return value is None or isinstance(value, cst.Name) and value.value == "None"
