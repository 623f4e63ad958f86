import libcst as cst

from ...findings import Fix, RuleInfo
from ..analysis.modes import mode_analysis
from ..fixes.edits import call_statement, remove_statements
from ..rule import Rule


class ClosureModeMisuse(Rule):
    info = RuleInfo(
        "SF205",
        "closure-mode-misuse",
        "error",
        "train()/eval() on a ScheduleFree *Closure optimizer, or its step() without a closure.",
    )

    def check(self) -> None:
        analysis = self.context.analysis(mode_analysis)
        index = self.context.index
        for node, (key, optimizers) in analysis.receivers.items():
            closures = [s for s in analysis.optimizers(key) if s.is_closure]
            if not closures or not isinstance(node.func, cst.Attribute):
                continue  # `optimizer_eval_fn()` names no method of the optimizer itself
            method = node.func.attr.value
            possible = len(closures) < len(key) or not optimizers.certain
            related = (self.context.related("optimizer created here", closures[0].call),)
            name = closures[0].class_name
            if method in ("train", "eval"):
                self.report(
                    node,
                    f"{index.code(node.func)}() on {name}: the closure variants have no train()/eval() "
                    "(AttributeError): outside step(closure) the parameters already hold the average x",
                    possible=possible,
                    related=related,
                    fix=None if possible else self._removal(node),
                    notes=("remove the call",),
                )
            elif method == "step" and not node.args:
                self.report(
                    node,
                    f"{index.code(node.func)}() without a closure on {name}: its step(closure) needs a function "
                    "that recomputes the loss (TypeError)",
                    possible=possible,
                    related=related,
                    notes=(("pass a closure: def closure(): optimizer.zero_grad(); loss = ...; loss.backward(); "
                           "return loss"),),
                )

    def _removal(self, call: cst.Call) -> Fix | None:
        """Delete `optimizer.train()` where it is a statement of its own."""
        statement = call_statement(self.context, call)
        if statement is None:
            return None
        return Fix(f"remove {self.context.index.code(call)}", "safe", remove_statements(self.context, [statement]))
