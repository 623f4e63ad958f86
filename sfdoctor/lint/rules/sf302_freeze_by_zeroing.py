from collections.abc import Iterable

import libcst as cst

from ...findings import RuleInfo
from ..constructions import is_zero
from ..index import CallSite
from ..rule import Rule
from ..values import Optimizers, Where

IN_PLACE_ZEROING = {"zero_": None, "mul_": 0, "fill_": 0}  # method -> position of the argument that must be 0
ZERO_INITS = {"torch.nn.init.zeros_", "torch.nn.init.constant_"}
ZEROS = {"torch.zeros_like", "torch.zeros"}


class FreezeByZeroing(Rule):
    info = RuleInfo(
        "SF302",
        "freeze-by-zeroing",
        "error",
        "Zeroing gradients or weights to freeze parameters that stay in a ScheduleFree optimizer.",
    )

    def check(self) -> None:
        calls = self.context.index.calls
        for site in calls:
            what = self._zeroing(site)
            if what is None:
                continue
            optimizers = self._stepped_after_backward(site) or self._in_freeze_function(site)
            if optimizers is None or not optimizers.sites:
                continue
            if what == "gradients":
                why = (
                    "under ScheduleFree a zero gradient does not freeze a parameter: y keeps moving toward z "
                    "and weight decay still acts"
                )
            else:
                why = "zeroing weights changes the model and freezes nothing: the zeroed weights come back through z"
            self.report(
                site.node,
                f"zeroing {what} of parameters that stay in {optimizers.sites[0].class_name}: {why}",
                possible=not optimizers.certain,
                related=(self.context.related("optimizer created here", optimizers.sites[0].call),),
                notes=("freeze with p.requires_grad_(False) (or set p.grad = None), or leave them out of the optimizer",),
            )

    def _zeroing(self, site: CallSite) -> str | None:
        """'gradients' or 'weights' when the call zeroes one of them."""
        call, func = site.node, site.node.func
        where = Where(site.statement, site.function)
        if isinstance(func, cst.Attribute) and func.attr.value in IN_PLACE_ZEROING:
            position = IN_PLACE_ZEROING[func.attr.value]
            if position is not None and not (
                len(call.args) > position
                and self.context.evaluator.values(call.args[position].value, where).triggers(is_zero)[1]
            ):
                return None
            return _tensor_kind(func.value)
        if site.qualname in ZERO_INITS and call.args:
            if site.qualname.endswith("constant_") and not (
                len(call.args) > 1 and self.context.evaluator.values(call.args[1].value, where).triggers(is_zero)[1]
            ):
                return None
            return "weights"
        if site.qualname in ZEROS and isinstance(site.statement, cst.SimpleStatementLine):
            for small in site.statement.body:
                if isinstance(small, cst.Assign) and small.value is call:
                    if any(_tensor_kind(t.target) == "gradients" for t in small.targets):
                        return "gradients"
        return None

    def _stepped_after_backward(self, site: CallSite) -> Optimizers | None:
        """The ScheduleFree optimizers stepped after this call, when a backward() comes before it."""
        same_function = [c for c in self.context.index.calls if c.function is site.function]
        if not any(_method(c) == "backward" and c.order < site.order for c in same_function):
            return None
        return self._first_stepped(c for c in same_function if c.order > site.order)

    def _in_freeze_function(self, site: CallSite) -> Optimizers | None:
        """Zeroing inside a function named like freeze_*, in a file with a ScheduleFree optimizer."""
        if site.function is None or "freeze" not in site.function.name.lower():
            return None
        return self._first_stepped(self.context.index.calls)

    def _first_stepped(self, sites: Iterable[CallSite]) -> Optimizers | None:
        """The ScheduleFree optimizers of the first `.step()` call among `sites` that steps one."""
        for site in sites:
            if _method(site) == "step":
                receiver = site.node.func.value  # type: ignore[attr-defined]
                optimizers = self.context.evaluator.optimizers(receiver, Where(site.statement, site.function))
                if optimizers.sites:
                    return optimizers
        return None


def _method(site: CallSite) -> str | None:
    return site.node.func.attr.value if isinstance(site.node.func, cst.Attribute) else None


def _tensor_kind(node: cst.BaseExpression) -> str | None:
    """`p.grad` / `p.grad.data` -> gradients; `p.data` / `p.weight.data` -> weights."""
    if isinstance(node, cst.Attribute) and node.attr.value == "data":
        inner = node.value
        if isinstance(inner, cst.Attribute) and inner.attr.value == "grad":
            return "gradients"
        return "weights"
    if isinstance(node, cst.Attribute) and node.attr.value == "grad":
        return "gradients"
    return None


