"""Weight averages kept beside the model (EMA, SWA): their update calls and what they average."""

from __future__ import annotations

import re

import libcst as cst

from ..rule import FileContext
from .index import CallSite, dotted_name
from .values import Where, last_name

# torch.optim.swa_utils.AveragedModel, timm ModelEma/ModelEmaV2/V3, ema_pytorch.EMA, torch_ema's
# ExponentialMovingAverage, and project classes named like them (ModelEMA, EMAModel, EmaWrapper,
# ExponentialWeightAverager).
EMA_CLASS = re.compile(r"AveragedModel|Averager$|ExponentialMovingAverage|^ModelEma|EMA|^Ema[A-Z]|Ema(V\d)?$")
UPDATE_METHODS = frozenset({"update", "update_parameters", "step"})  # step: only on a known averager
# `ema.step(...)`, `self.model.ema.update()`: an object named for its averaging, built elsewhere.
EMA_NAME = re.compile(r"(^|\.)(ema|ema_model|model_ema)$")


def ema_update(context: FileContext, site: CallSite) -> tuple[cst.CSTNode, Where] | None:
    """For `ema.update(model)` / `swa_model.update_parameters(model)`: the averager's construction, or
    the parameter that receives it, annotated with an averager class (`ema: ExponentialMovingAverage`:
    the training step of a library whose script builds the EMA)."""
    func = site.node.func
    if not (isinstance(func, cst.Attribute) and func.attr.value in UPDATE_METHODS):
        return None
    where = Where(site.statement, site.function)
    for origin, place in averager_origins(context, func.value, where):
        if isinstance(origin, cst.Call) and EMA_CLASS.search(last_name(origin.func) or ""):
            return origin, place
    if EMA_NAME.search(dotted_name(func.value) or ""):
        return func.value, where
    function = site.function
    param = function.params.get(func.value.value) if function and isinstance(func.value, cst.Name) else None
    if param is not None and param.annotation is not None:
        annotation = context.index.code(param.annotation.annotation)
        if any(EMA_CLASS.search(word) for word in re.findall(r"\w+", annotation)):
            return param, Where(function.node, function)
    return None


def averager_origins(
    context: FileContext, node: cst.BaseExpression, where: Where
) -> list[tuple[cst.BaseExpression, Where]]:
    """What `ema` or `self.ema` was assigned."""
    text = dotted_name(node) or ""
    index = context.index
    if text.startswith("self.") and text.count(".") == 1:
        class_name = where.function.class_name if where.function else None
        return [
            (b.value, Where(b.statement, index.function_of(b.statement)))
            for b in index.attributes.get((class_name, text[5:]), [])  # type: ignore[arg-type]
            if isinstance(b.value, cst.BaseExpression)
        ]
    return context.evaluator.origins(node, where)[0] if isinstance(node, cst.Name) else []
