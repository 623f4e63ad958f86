import libcst as cst

from ...findings import Edit, Fix, Location, RuleInfo
from ..analysis.constructions import (
    constructions,
    describe,
    dict_value,
    is_zero,
    lr_writes,
    param_group_dicts,
    zero_lr_writes,
)
from ..analysis.index import descendants
from ..analysis.values import OptimizerSite, Where
from ..fixes.edits import after_line, freeze_code, insert_before
from ..rule import FileContext, Rule

WHY = (
    "a group with lr 0 keeps weight_sum 0, so ckp1 = weight/weight_sum is 0/0 for that group "
    "(ZeroDivisionError in schedulefree < 1.2.2, 1.2.3 and ScheduleFreeWrapper; dead optimizer state elsewhere)"
)
FIX = "freeze with p.requires_grad_(False), or leave these parameters out of the optimizer"


class FreezeByZeroLr(Rule):
    info = RuleInfo(
        "SF301", "freeze-by-zero-lr", "error", "A param group frozen with lr 0 in a ScheduleFree optimizer."
    )

    def check(self) -> None:
        evaluator = self.context.evaluator
        for construction in self.context.analysis(constructions):
            groups = param_group_dicts(self.context, construction)
            groups += self._added_groups(construction)
            for group, where, in_loop in groups:
                lr = dict_value(group, "lr")
                if lr is None:
                    continue
                values = evaluator.values(lr, where)
                fires, certain = values.triggers(is_zero)
                if fires:
                    built = " (built in a loop)" if in_loop else ""
                    self.report(
                        lr,
                        f"param group{built} with lr {describe(values)} in {construction.class_name}: {WHY}",
                        possible=not certain or construction.possible,
                        related=(self.context.related("optimizer created here", construction.call),),
                        notes=(FIX,),
                        fix=self._freeze(construction, group) if certain and not construction.possible else None,
                    )
        for write, values, certain in zero_lr_writes(self.context, every_group=False):  # all groups: SF110
            self.report(
                write.write.value,
                f"a param group's lr is set to {describe(values)}: {WHY}",
                possible=not (certain and write.optimizers.certain),
                notes=(FIX,),
            )

    def _added_groups(self, construction: OptimizerSite) -> list[tuple[cst.Dict, Where, bool]]:
        """`optimizer.add_param_group({...})` on this optimizer."""
        found = []
        for site in self.context.index.calls:
            func = site.node.func
            if not (isinstance(func, cst.Attribute) and func.attr.value == "add_param_group" and site.node.args):
                continue
            group = site.node.args[0].value
            where = Where(site.statement, site.function)
            if any(s.call is construction.call for s in self.context.evaluator.optimizers(func.value, where).sites):
                for origin, place in self.context.evaluator.origins(group, where)[0]:
                    if isinstance(origin, cst.Dict):
                        found.append((origin, place, False))
        return found

    def _freeze(self, construction: OptimizerSite, group: cst.Dict) -> Fix | None:
        """Take the group out of the list literal given to the optimizer and freeze its params with
        requires_grad_(False) above the statement that builds the list (where params was evaluated)."""
        params = dict_value(group, "params")
        holder = self._params_list(construction)
        if params is None or holder is None:
            return None
        # a later write to some group's lr may unfreeze this one, or counts on the groups' positions
        writes = self.context.analysis(lr_writes)
        if any(site.call is construction.call for write in writes for site in write.optimizers.sites):
            return None
        elements, statement = holder
        position = next((i for i, e in enumerate(elements) if e.value is group), None)
        if position is None or len(elements) < 2:
            return None
        freeze, what = freeze_code(self.context, params)
        insertion = insert_before(self.context, statement, freeze)
        if insertion is None:
            return None
        removal = _remove_element(self.context, elements, position)
        message = f"freeze {what} with requires_grad_(False) and drop its param group"
        return Fix(message, "unsafe", (insertion, removal))

    def _params_list(
        self, construction: OptimizerSite
    ) -> tuple[tuple[cst.BaseElement, ...], cst.CSTNode] | None:
        """The elements of the list literal passed as params, directly or through a name bound once and
        used only there, and the statement that builds it, where the list (or the optimizer call) is
        that statement's whole value: not under a one-line `if`, in `x if c else y` or a lambda."""
        params = construction.argument("params")
        if isinstance(params, cst.List):
            elements, statement, value = params.elements, construction.where.statement, construction.call
        elif isinstance(params, cst.Name):
            function = construction.where.function
            bindings = self.context.index.bindings.get((function, params.value), [])
            scope = function.node if function else self.context.module
            binding = bindings[0] if len(bindings) == 1 else None
            # bound once and read only by the optimizer: dropping a group changes nothing else
            if binding is None or not isinstance(binding.value, cst.List) or _mentions(scope, params.value) != 2:
                return None
            elements, statement, value = binding.value.elements, binding.statement, binding.value
        else:
            return None
        if isinstance(statement, cst.SimpleStatementLine) and any(
            getattr(small, "value", None) is value for small in statement.body
        ):
            return elements, statement
        return None


def _mentions(scope: cst.CSTNode, name: str) -> int:
    """How often `name` is written in `scope`, attribute names (`optimizer.param_groups`) aside."""
    nodes = list(descendants(scope))
    return sum(isinstance(n, cst.Name) and n.value == name for n in nodes) - sum(
        isinstance(n, cst.Attribute) and n.attr.value == name for n in nodes
    )


def _remove_element(context: FileContext, elements: tuple[cst.BaseElement, ...], position: int) -> Edit:
    """Delete a list element with its comma: its whole lines when it has lines of its own (one element
    per line), else the text up to the next element, or from the previous one for the last."""
    start, end = context.location(elements[position])
    before = context.lines[start.row - 1][: start.column - 1]
    after = context.lines[end.row - 1][end.column - 1 :].strip().removeprefix(",").strip()
    if not before.strip() and (not after or after.startswith("#")):
        return Edit("", Location(start.row, 1), after_line(context, end.row)[0])
    if position + 1 < len(elements):
        return Edit("", start, context.location(elements[position + 1])[0])
    return Edit("", context.location(elements[position - 1])[1], end)
