from collections.abc import Iterable

import libcst as cst

from ...findings import Edit, Fix, RuleInfo
from ..analysis.constructions import is_zero, without_lookalikes
from ..analysis.index import Binding, CallSite, dotted_name
from ..analysis.values import Optimizers, Where
from ..fixes.edits import freeze_code, insert_before, remove_statements
from ..rule import Rule

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
                # no fix for weights: keeping them at zero and keeping their old values need different code
                fix=self._drop_gradient(site, optimizers) if what == "gradients" and optimizers.certain else None,
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
                if (
                    isinstance(small, cst.Assign)
                    and small.value is call
                    and any(_tensor_kind(t.target) == "gradients" for t in small.targets)
                ):
                    return "gradients"
        return None

    def _drop_gradient(self, site: CallSite, optimizers: Optimizers) -> Fix | None:
        """`p.grad.zero_()` (or `p.grad = torch.zeros_like(p)`), a statement of its own on a loop variable
        `p` over known parameters: a freeze before the optimizer where it zeroes on every step, else
        `p.grad = None`, which step() skips. Not requires_grad_(False) in place: that would freeze p in
        every later step too, also where the zeroing is conditional (the first N steps)."""
        statement = site.statement
        if not isinstance(statement, cst.SimpleStatementLine):
            return None
        small = next((s for s in statement.body if getattr(s, "value", None) is site.node), None)
        if isinstance(small, cst.Expr):
            gradient = site.node.func.value  # type: ignore[attr-defined]
        elif isinstance(small, cst.Assign) and len(small.targets) == 1:
            gradient = small.targets[0].target
        else:
            return None
        if isinstance(gradient, cst.Attribute) and gradient.attr.value == "data":
            gradient = gradient.value
        if not (
            isinstance(gradient, cst.Attribute)
            and gradient.attr.value == "grad"
            and isinstance(gradient.value, cst.Name)
        ):
            return None
        name = gradient.value.value
        bindings, certain = self.context.index.reaching_bindings(name, statement, site.function)
        if not (certain and len(bindings) == 1 and bindings[0].loop_item):
            return None
        hoisted = self._freeze_before_optimizer(bindings[0], statement, optimizers)
        if hoisted is not None:
            return hoisted
        start, end = self.context.location(small)
        edit = Edit(f"{name}.grad = None", start, end)
        return Fix(f"replace with {name}.grad = None (step() skips it)", "unsafe", (edit,))

    def _freeze_before_optimizer(self, binding: Binding, zeroing: cst.CSTNode, optimizers: Optimizers) -> Fix | None:
        """A loop that does nothing but zero the gradients of known parameters, on every iteration of
        the training loop, is a freeze for the whole run: freeze them with requires_grad_(False) where
        the optimizer is built (backward() then skips them) and drop the loop."""
        index = self.context.index
        loop, parameters = binding.statement, binding.value
        training_loop = index.parent_statement.get(loop)
        if not (
            isinstance(loop, cst.For)
            and loop.orelse is None
            and isinstance(loop.body, cst.IndentedBlock)
            and list(loop.body.body) == [zeroing]
            and isinstance(training_loop, (cst.For, cst.While))
            and isinstance(training_loop.body, cst.IndentedBlock)
            and any(s is loop for s in training_loop.body.body)  # not under an `if` or in the `else:`
            and len(optimizers.sites) == 1
            and isinstance(parameters, cst.BaseExpression)
        ):
            return None
        optimizer = optimizers.sites[0].where
        function = index.function_of(loop)
        if optimizer.function is not function or index.within(optimizer.statement, training_loop):
            return None
        chain = parameters.func.value if isinstance(parameters, cst.Call) and isinstance(parameters.func, cst.Attribute) else parameters
        root = (dotted_name(chain) or "").split(".")[0]
        if not root or index.reaching_bindings(root, optimizer.statement, function)[0] != index.reaching_bindings(
            root, loop, function
        )[0]:
            return None  # the parameters must be the same objects where the optimizer is built
        freeze, what = freeze_code(self.context, parameters)
        insertion = insert_before(self.context, optimizer.statement, freeze)
        if insertion is None:
            return None
        edits = (insertion, *remove_statements(self.context, [loop]))
        return Fix(f"freeze {what} with requires_grad_(False) where the optimizer is built", "unsafe", edits)

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
                optimizers = without_lookalikes(
                    self.context.evaluator.optimizers(receiver, Where(site.statement, site.function))
                )
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


