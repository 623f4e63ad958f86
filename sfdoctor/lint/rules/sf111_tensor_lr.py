import libcst as cst

from ...findings import RuleInfo
from ..analysis.constructions import is_zero, lr_expressions
from ..rule import Rule

TENSOR_FACTORIES = frozenset({"torch.tensor", "torch.as_tensor", "torch.Tensor", "torch.full", "torch.scalar_tensor"})


class TensorLr(Rule):
    info = RuleInfo("SF111", "tensor-lr", "warning", "lr given as a torch tensor (an error when it is 0).")

    def check(self) -> None:
        for lr, where in self.context.analysis(lr_expressions):
            origins, _ = self.context.evaluator.origins(lr, where)
            for origin, origin_where in origins:
                if not (isinstance(origin, cst.Call) and self.context.index.qualname(origin.func) in TENSOR_FACTORIES):
                    continue
                value = origin.args[-1 if self.context.index.qualname(origin.func) == "torch.full" else 0].value if origin.args else None
                zero = value is not None and self.context.evaluator.values(value, origin_where).triggers(is_zero)[1]
                message = "lr is a torch tensor: "
                if zero:
                    message += (
                        "it is 0, and tensor 0/0 in ckp1 = weight/weight_sum is NaN, not an exception: "
                        "y.lerp_(z, nan) writes NaN into every parameter of the group"
                    )
                else:
                    message += "the averaging weight becomes a tensor op per step; a float is what schedulefree expects"
                self.report(lr, message, severity="error" if zero else None, notes=("pass a Python float",))
                break
