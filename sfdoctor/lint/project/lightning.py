"""LightningModules that train with a ScheduleFree optimizer, as the whole project sees them (SF201, SF404):
hooks and configure_optimizers count whether the class defines them or inherits them from a project base class."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from ..analysis.values import OptimizerSite, Where
from ..rule import FileContext
from .summary import class_facts
from .view import LightningClass, ProjectView


@dataclass(frozen=True)
class LightningModule:
    node: cst.ClassDef
    facts: LightningClass
    optimizer: OptimizerSite  # what its configure_optimizers returns


def lightning_modules(context: FileContext) -> list[LightningModule]:
    """The file's LightningModules that train: those no class of the project subclasses (a base class is
    judged through its subclasses, which may add the hooks)."""
    index = context.index
    view = context.evaluator.project or ProjectView({})
    classes = {name: class_facts(context, name) for name in index.class_bases}
    local_bases = {base for facts in classes.values() for base in facts.bases}
    found = []
    for statement in index.parent_statement:
        if not isinstance(statement, cst.ClassDef) or statement.name.value not in classes:
            continue
        name = statement.name.value
        facts = view.lightning(context.filename, name, classes)
        if facts is None or name in local_bases or view.subclassed(context.filename, name):
            continue
        built = facts.optimizer
        site = OptimizerSite(statement, built.class_name, Where(statement, None), possible=built.possible or not facts.certain,
                             condition=built.condition, built=built)
        found.append(LightningModule(statement, facts, site))
    return found
