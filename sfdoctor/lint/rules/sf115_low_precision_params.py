"""A ScheduleFree optimizer over bf16/fp16 parameters: `x` is a running average updated by
`x.lerp_(z, ckp1)` with ckp1 ~ 1/k, a change that rounds away in 8 (bf16) or 11 (fp16) mantissa bits
(reproduced on CPU: evaluated loss 4.35 in bf16 against 1.4e-4 in fp32). Autocast keeps fp32
parameters and is fine."""

from __future__ import annotations

import libcst as cst

from ...findings import RuleInfo
from ..analysis.constructions import constructions
from ..analysis.index import descendants, dotted_name
from ..analysis.values import Evaluator, OptimizerSite, Where, last_name
from ..rule import Rule

LOW_DTYPES = frozenset({"bfloat16", "float16", "half", "bf16", "fp16"})
CAST_METHODS = {"bfloat16": "bfloat16", "half": "float16"}
PARAMETER_METHODS = frozenset({"parameters", "named_parameters"})
# Set-ups that keep fp32 master weights for a low-precision model, or train fp32 adapters on a frozen
# bf16 base (PEFT casts adapter weights to float32): not this rule's case.
MASTER_COPY = ("deepspeed.initialize",)
ADAPTERS = frozenset({"get_peft_model", "add_adapter", "prepare_model_for_kbit_training", "LoraConfig"})


class LowPrecisionParams(Rule):
    info = RuleInfo(
        "SF115",
        "low-precision-params",
        "warning",
        "A ScheduleFree optimizer over bf16/fp16 parameters: the running average x barely moves.",
    )

    def check(self) -> None:
        index = self.context.index
        if any((site.qualname or "").startswith(MASTER_COPY) or last_name(site.node.func) in ADAPTERS
               for site in index.calls):
            return
        for construction in self.context.analysis(constructions):
            for cast, dtype, certain in self._casts(construction):
                self.report(
                    cast,
                    f"the parameters of {construction.class_name} are cast to {dtype} here, with no fp32 master "
                    "copy: ScheduleFree's average x moves by ckp1 ~ 1/step each step, which rounds away in "
                    f"{dtype}, so the evaluated and saved weights barely train",
                    possible=not certain or construction.possible,
                    related=(self.context.related("ScheduleFree optimizer created here", construction.call),),
                    notes=("keep the parameters in float32 and train under torch.autocast(dtype=torch.bfloat16)",),
                )

    def _casts(self, construction: OptimizerSite) -> list[tuple[cst.CSTNode, str, bool]]:
        """(node, dtype, certain) for each cast of the parameters the optimizer updates."""
        params = construction.params_argument()
        if params is None:
            return []
        index = self.context.index
        order = index.site_of[construction.call].order
        found: dict[int, tuple[cst.CSTNode, str, bool]] = {}
        for model, where in self._models(params, construction.where):
            text = dotted_name(model)
            # `model.half()` before the optimizer is built (Module.half() casts in place)
            for site in index.calls:
                func = site.node.func
                if (
                    site.order < order
                    and site.function is construction.where.function
                    and isinstance(func, cst.Attribute)
                    and text is not None
                    and (text == dotted_name(func.value) or text.startswith(f"{dotted_name(func.value)}."))
                    and (low := self._low(site.node, Where(site.statement, site.function))) is not None
                ):
                    found.setdefault(id(site.node), (site.node, *low))
            # the model was built in low precision: `from_pretrained(torch_dtype=torch.bfloat16)`, `Net().half()`
            for origin, place in self._bindings(model, where):
                for node in descendants(origin):
                    if isinstance(node, cst.Call) and (low := self._low(node, place)) is not None:
                        found.setdefault(id(node), (node, *low))
        return list(found.values())

    def _models(self, params: cst.BaseExpression, where: Where) -> list[tuple[cst.BaseExpression, Where]]:
        """`model` in `model.parameters()`, through names (`params = model.parameters()`) and param groups."""
        found = []
        for origin, place in self.context.evaluator.origins(params, where)[0]:
            for node in descendants(origin):
                if (
                    isinstance(node, cst.Call)
                    and isinstance(node.func, cst.Attribute)
                    and node.func.attr.value in PARAMETER_METHODS
                ):
                    found.append((node.func.value, place))
        return found

    def _bindings(self, model: cst.BaseExpression, where: Where) -> list[tuple[cst.BaseExpression, Where]]:
        text = dotted_name(model) or ""
        if text.startswith("self.") and text.count(".") == 1:
            class_name = where.function.class_name if where.function else None
            index = self.context.index
            return [
                (b.value, Where(b.statement, index.function_of(b.statement)))
                for b in index.attributes.get((class_name, text[5:]), [])  # type: ignore[arg-type]
                if isinstance(b.value, cst.BaseExpression)
            ]
        if isinstance(model, cst.Name):
            return [(o, w) for o, w in self.context.evaluator.origins(model, where)[0] if o is not model]
        return [(model, where)]  # `Net().half().parameters()`

    def _low(self, call: cst.Call, where: Where) -> tuple[str, bool] | None:
        """(dtype, certain) when `call` casts to bf16/fp16: `.bfloat16()`, `.half()`, `.to(torch.bfloat16)`,
        `from_pretrained(..., torch_dtype=torch.float16)`."""
        name = last_name(call.func)
        if isinstance(call.func, cst.Attribute) and name in CAST_METHODS and not call.args:
            return CAST_METHODS[name], True
        if name == "to" and isinstance(call.func, cst.Attribute):
            arguments = [Evaluator.argument(call, "dtype", None)] + [a.value for a in call.args if a.keyword is None]
        elif name == "from_pretrained":
            arguments = [Evaluator.argument(call, "torch_dtype", None), Evaluator.argument(call, "dtype", None)]
        else:
            return None
        for argument in arguments:
            if argument is not None and (low := self._dtype(argument, where)) is not None:
                return low
        return None

    def _dtype(self, node: cst.BaseExpression, where: Where) -> tuple[str, bool] | None:
        origins, complete = self.context.evaluator.origins(node, where)
        hits, total = [], 0
        for origin, _ in origins:
            branches = [origin.body, origin.orelse] if isinstance(origin, cst.IfExp) else [origin]
            for branch in branches:
                total += 1
                if isinstance(branch, cst.SimpleString):
                    value = str(branch.evaluated_value)
                else:
                    value = last_name(branch) or ""
                if value in LOW_DTYPES:
                    hits.append("bfloat16" if "b" in value else "float16")
        if not hits:
            return None
        return hits[0], complete and len(hits) == total
