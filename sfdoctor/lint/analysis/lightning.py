"""What a LightningModule's own methods do: the ScheduleFree optimizer its configure_optimizers returns,
and which methods switch an optimizer's mode (SF201, SF404; `project.lightning` adds the inherited ones)."""

from __future__ import annotations

import libcst as cst

from ..rule import FileContext
from .index import Function, dotted_name
from .modes import OPTIMIZER_NAME
from .values import OptimizerSite, Where

# Hooks that run before every training batch or after every validation run: train() there puts
# the optimizer back in train mode however often (and mid-epoch) Lightning validates.
TRAIN_HOOKS = frozenset(
    {"on_train_batch_start", "training_step", "on_validation_end", "on_validation_epoch_end",
     "on_validation_model_train"}
)
EVAL_HOOKS = frozenset(
    {"on_validation_start", "on_validation_epoch_start", "on_validation_model_eval", "on_test_start",
     "on_test_epoch_start", "on_predict_start", "on_save_checkpoint"}
)
# a subclass's definition replaces the base class's
OVERRIDES = TRAIN_HOOKS | EVAL_HOOKS | {"configure_optimizers", "on_train_epoch_start"}


def returned_optimizer(context: FileContext, configure: Function) -> OptimizerSite | None:
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


def class_methods(context: FileContext, class_name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(method, the modes it switches an optimizer to) for the class's methods that switch one, and for
    the hooks it overrides without switching one or calling the base class's (`super().hook()`)."""
    switching = context.analysis(_switching)
    found = []
    for function in context.index.functions:
        if function.class_name != class_name or function.parent is not None:
            continue
        modes = tuple(mode for mode in ("train", "eval") if (function, mode) in switching)
        if modes or (function.name in OVERRIDES and not _calls_super(context, function)):
            found.append((function.name, modes))
    return tuple(found)


def _calls_super(context: FileContext, function: Function) -> bool:
    return any(
        site.function is function and isinstance(site.node.func, cst.Attribute)
        and isinstance(site.node.func.value, cst.Call) and dotted_name(site.node.func.value.func) == "super"
        for site in context.index.calls
    )


def switches(context: FileContext, mode: str) -> bool:
    """`self.optimizers().train()`, `opt.train()`, `for opt in self.trainer.optimizers: opt.train()`
    anywhere in the file."""
    return any(switched == mode for _, switched in context.analysis(_switching))


def _switching(context: FileContext) -> set[tuple[Function | None, str]]:
    """(function, mode) for each optimizer mode switch in the file."""
    index = context.index
    found = set()
    for site in index.calls:
        func = site.node.func
        if not isinstance(func, cst.Attribute) or func.attr.value not in ("train", "eval"):
            continue
        receiver = func.value
        text = index.code(receiver)
        if isinstance(receiver, cst.Name):
            bindings, _ = index.reaching_bindings(receiver.value, site.statement, site.function)
            text += " ".join(index.code(b.value) for b in bindings if isinstance(b.value, cst.BaseExpression))
        if OPTIMIZER_NAME.search(text.lower()) or "optimizers()" in text or dotted_name(receiver) is None:
            found.add((site.function, func.attr.value))
    return found
