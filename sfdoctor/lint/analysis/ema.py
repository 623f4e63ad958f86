"""Weight averages kept beside the model (EMA, SWA): their update calls and what they average."""

from __future__ import annotations

import re

import libcst as cst

from ..rule import FileContext
from .index import CallSite, dotted_name
from .values import Where, last_name

# torch.optim.swa_utils.AveragedModel, timm ModelEma/ModelEmaV2/V3, ema_pytorch.EMA, torch_ema's
# ExponentialMovingAverage, and project classes named like them (ModelEMA, EMAModel, EmaWrapper).
EMA_CLASS = re.compile(r"AveragedModel|ExponentialMovingAverage|^ModelEma|EMA|^Ema[A-Z]|Ema(V\d)?$")
UPDATE_METHODS = frozenset({"update", "update_parameters"})


def ema_update(context: FileContext, site: CallSite) -> tuple[cst.Call, Where] | None:
    """For `ema.update(model)` / `swa_model.update_parameters(model)`: the averager's construction."""
    func = site.node.func
    if not (isinstance(func, cst.Attribute) and func.attr.value in UPDATE_METHODS):
        return None
    where = Where(site.statement, site.function)
    for origin, place in averager_origins(context, func.value, where):
        if isinstance(origin, cst.Call) and EMA_CLASS.search(last_name(origin.func) or ""):
            return origin, place
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
