"""ScheduleFree optimizer constructions and their param groups, shared by the lr and freezing rules."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from ..rule import FileContext
from .index import SubscriptWrite
from .values import Evaluator, Optimizers, OptimizerSite, Values, Where


def constructions(context: FileContext) -> list[OptimizerSite]:
    """`AdamWScheduleFree(...)` (or a vendored class of that name) in the file; not the look-alikes of
    other libraries, whose lr behaviour these rules do not know."""
    return [
        found
        for site in context.index.calls
        if (found := context.evaluator.construction(site.node, Where(site.statement, site.function)))
        and found.factory is None
        and not found.is_lookalike
    ]


def without_lookalikes(optimizers: Optimizers) -> Optimizers:
    """The schedulefree optimizers among `optimizers`, for the rules about lr and freezing."""
    kept = tuple(s for s in optimizers.sites if not s.is_lookalike)
    return Optimizers(kept, optimizers.certain and len(kept) == len(optimizers.sites))


def base_optimizer_calls(context: FileContext, wrapper: OptimizerSite) -> list[tuple[cst.Call, Where]]:
    """The optimizer calls a `ScheduleFreeWrapper` wraps, through names."""
    base = wrapper.argument("base")
    if base is None:
        return []
    origins, _ = context.evaluator.origins(base, wrapper.where)
    return [(node, where) for node, where in origins if isinstance(node, cst.Call)]


def lr_argument(context: FileContext, construction: OptimizerSite) -> tuple[cst.BaseExpression, Where] | None:
    """The expression that sets the lr: the constructor's, or for a wrapper its base optimizer's."""
    if not construction.is_wrapper:
        lr = construction.argument("lr")
        return (lr, construction.where) if lr is not None else None
    for call, where in base_optimizer_calls(context, construction):
        lr = Evaluator.argument(call, "lr", 1)
        if lr is not None:
            return lr, where
    return None


def param_group_dicts(context: FileContext, construction: OptimizerSite) -> list[tuple[cst.Dict, Where, bool]]:
    """Param group dict literals given to the optimizer: (dict, where, built_in_a_loop).

    Covers `[{"params": ..., "lr": 0}, ...]` (inline or through a name), list comprehensions of
    dicts, and `groups.append({...})` on the list passed as params.
    """
    params = construction.argument("params")
    if params is None:
        return []
    found = []
    origins, _ = context.evaluator.origins(params, construction.where)
    for node, where in origins:
        if isinstance(node, cst.List):
            found += [(e.value, where, False) for e in node.elements if isinstance(e.value, cst.Dict)]
        elif isinstance(node, cst.ListComp) and isinstance(node.elt, cst.Dict):
            found.append((node.elt, where, True))
    if isinstance(params, cst.Name):
        for site in context.index.calls:
            func = site.node.func
            if (
                isinstance(func, cst.Attribute)
                and func.attr.value == "append"
                and isinstance(func.value, cst.Name)
                and func.value.value == params.value
                and site.function is construction.where.function
                and site.node.args
                and isinstance(site.node.args[0].value, cst.Dict)
            ):
                in_loop = any(isinstance(s, (cst.For, cst.While)) for s in context.index.enclosing_statements(site.statement))
                found.append((site.node.args[0].value, Where(site.statement, site.function), in_loop))
    return found


def lr_expressions(context: FileContext) -> list[tuple[cst.BaseExpression, Where]]:
    """Every expression that sets an lr of a ScheduleFree optimizer: its constructor's (or its base
    optimizer's), its param group dicts', and `group["lr"] = ...` writes."""
    found = []
    for construction in context.analysis(constructions):
        lr = lr_argument(context, construction)
        if lr is not None:
            found.append(lr)
        for group, where, _ in param_group_dicts(context, construction):
            group_lr = dict_value(group, "lr")
            if group_lr is not None:
                found.append((group_lr, where))
    return found + [(w.write.value, w.where) for w in group_writes(context, "lr")]


def dict_value(node: cst.Dict, key: str) -> cst.BaseExpression | None:
    for element in node.elements:
        if (
            isinstance(element, cst.DictElement)
            and isinstance(element.key, cst.SimpleString)
            and element.key.evaluated_value == key
        ):
            return element.value
    return None


@dataclass(frozen=True)
class GroupWrite:
    """`group["lr"] = value` on a param group of a ScheduleFree optimizer."""

    write: SubscriptWrite
    optimizers: Optimizers
    every_group: bool  # `for g in opt.param_groups: g[...] = v` rather than one group

    @property
    def where(self) -> Where:
        return Where(self.write.statement, self.write.function)


def group_writes(context: FileContext, key: str) -> list[GroupWrite]:
    found = []
    for write in context.index.subscript_writes:
        if write.key != key:
            continue
        where = Where(write.statement, write.function)
        owner = _param_groups_owner(context, write.target, where)
        if owner is None:
            continue
        holder, every_group = owner
        optimizers = without_lookalikes(context.evaluator.optimizers(holder, where))
        if optimizers.sites:
            found.append(GroupWrite(write, optimizers, every_group))
    return found


def lr_writes(context: FileContext) -> list[GroupWrite]:
    """`group["lr"] = ...` on a ScheduleFree optimizer; shared by SF110 and SF301 through `context.analysis`."""
    return group_writes(context, "lr")


def zero_lr_writes(context: FileContext, every_group: bool) -> Iterator[tuple[GroupWrite, Values, bool]]:
    """(write, its values, certain) for the lr writes that may set 0, to every group or to one."""
    for write in context.analysis(lr_writes):
        if write.every_group != every_group:
            continue
        values = context.evaluator.values(write.write.value, write.where)
        fires, certain = values.triggers(is_zero)
        if fires:
            yield write, values, certain


def _param_groups_owner(
    context: FileContext, target: cst.BaseExpression, where: Where
) -> tuple[cst.BaseExpression, bool] | None:
    """For `opt.param_groups[0]` or a loop variable over `opt.param_groups`: (opt, every_group)."""
    if isinstance(target, cst.Subscript) and _is_param_groups(target.value):
        return target.value.value, False  # type: ignore[attr-defined]
    if isinstance(target, cst.Name):
        found, _ = context.index.reaching_bindings(target.value, where.statement, where.function)
        for binding in reversed(found):
            if binding.loop_item and _is_param_groups(binding.value):
                return binding.value.value, True  # type: ignore[union-attr]
            if not binding.loop_item and isinstance(binding.value, cst.Subscript) and _is_param_groups(binding.value.value):
                return binding.value.value.value, False  # type: ignore[attr-defined]
    return None


def _is_param_groups(node: object) -> bool:
    return isinstance(node, cst.Attribute) and node.attr.value == "param_groups"


def is_zero(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value == 0


def is_negative(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value < 0


def describe(values: Values) -> str:
    """`0.0`, or `one of 0.0, 0.001` for a value with several possibilities."""
    shown = ", ".join(repr(v) for v in values.options)
    return shown if len(values.options) == 1 else f"one of {shown}"
