"""LightningModules whose configure_optimizers returns a ScheduleFree optimizer (SF201, SF404)."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from ..rule import FileContext
from .index import Function, dotted_name
from .modes import OPTIMIZER_NAME
from .values import OptimizerSite, Where, last_name


@dataclass(frozen=True)
class LightningModule:
    node: cst.ClassDef
    methods: dict[str, Function]
    optimizer: OptimizerSite  # what configure_optimizers returns


def lightning_modules(context: FileContext) -> list[LightningModule]:
    index = context.index
    found = []
    for statement in index.parent_statement:
        if not isinstance(statement, cst.ClassDef):
            continue
        if not any(last_name(base.value) == "LightningModule" for base in statement.bases):
            continue
        methods = {f.name: f for f in index.functions if f.class_name == statement.name.value}
        configure = methods.get("configure_optimizers")
        optimizer = _returned_optimizer(context, configure) if configure else None
        if optimizer is not None:
            found.append(LightningModule(statement, methods, optimizer))
    return found


def _returned_optimizer(context: FileContext, configure: Function) -> OptimizerSite | None:
    """The ScheduleFree construction configure_optimizers returns (alone, in a list, or in a dict)."""
    evaluator = context.evaluator
    for value, statement in configure.returns:
        where = Where(statement, configure)
        pending = [value]
        while pending:
            node = pending.pop()
            for origin, _ in evaluator.origins(node, where)[0]:
                if isinstance(origin, (cst.List, cst.Tuple)):
                    pending += [e.value for e in origin.elements]
                elif isinstance(origin, cst.Dict):
                    pending += [e.value for e in origin.elements
                                if isinstance(e, cst.DictElement) and context.index.code(e.key) in
                                ('"optimizer"', "'optimizer'")]
                else:
                    sites = evaluator.optimizers(origin, where).sites
                    if sites:
                        return sites[0]
    return None


def switches(context: FileContext, function: Function | None, mode: str) -> bool:
    """`self.optimizers().train()`, `opt.train()`, `for opt in self.trainer.optimizers: opt.train()` in
    `function` (None: anywhere in the file)."""
    index = context.index
    for site in index.calls:
        func = site.node.func
        if function is not None and site.function is not function:
            continue
        if not isinstance(func, cst.Attribute) or func.attr.value != mode:
            continue
        receiver = func.value
        text = index.code(receiver)
        if isinstance(receiver, cst.Name):
            found, _ = index.reaching_bindings(receiver.value, site.statement, site.function)
            text += " ".join(index.code(b.value) for b in found if isinstance(b.value, cst.BaseExpression))
        if OPTIMIZER_NAME.search(text.lower()) or "optimizers()" in text or dotted_name(receiver) is None:
            return True
    return False
