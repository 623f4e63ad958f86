import libcst as cst

from ...findings import RuleInfo
from ..index import Function, dotted_name
from ..modes import OPTIMIZER_NAME
from ..rule import Rule
from ..values import Where, last_name

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


class LightningModeHooks(Rule):
    info = RuleInfo(
        "SF404",
        "lightning-mode-hooks",
        "warning",
        "A LightningModule with a ScheduleFree optimizer that does not call train() in a per-batch or "
        "post-validation hook.",
    )

    def check(self) -> None:
        index = self.context.index
        for statement in index.parent_statement:
            if not isinstance(statement, cst.ClassDef):
                continue
            if not any(last_name(base.value) == "LightningModule" for base in statement.bases):
                continue
            methods = {f.name: f for f in index.functions if f.class_name == statement.name.value}
            configure = methods.get("configure_optimizers")
            created = self._returned_optimizer(configure) if configure else None
            if created is None:
                continue
            if any(self._switches(methods[hook], "train") for hook in TRAIN_HOOKS if hook in methods):
                continue
            evaluates = any(self._switches(methods[hook], "eval") for hook in EVAL_HOOKS if hook in methods)
            self.report(
                statement.name,
                f"{statement.name.value} trains with {last_name(created.func)} but calls optimizer.train() in no "
                "per-batch or post-validation hook: Lightning does not switch ScheduleFree modes, so step() runs "
                "in eval mode (schedulefree >= 1.3 raises) or, after a validation, at the wrong point"
                + ("" if evaluates else "; nor does it call optimizer.eval() before validation and checkpointing"),
                related=(self.context.related("optimizer created here", created),),
                notes=(
                    "def on_train_batch_start(self, batch, batch_idx): self.optimizers().train()",
                    "def on_validation_epoch_start(self): self.optimizers().eval()",
                    "def on_validation_epoch_end(self): self.optimizers().train()",
                    "def on_save_checkpoint(self, checkpoint): self.optimizers().eval()",
                ),
            )

    def _returned_optimizer(self, configure: Function) -> cst.Call | None:
        """The ScheduleFree construction configure_optimizers returns (alone, in a list, or in a dict)."""
        evaluator = self.context.evaluator
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
                                    if isinstance(e, cst.DictElement) and self.context.index.code(e.key) in
                                    ('"optimizer"', "'optimizer'")]
                    else:
                        sites = evaluator.optimizers(origin, where).sites
                        if sites:
                            return sites[0].call
        return None

    def _switches(self, hook: Function, mode: str) -> bool:
        """`self.optimizers().train()`, `opt.train()`, `for opt in self.trainer.optimizers: opt.train()`."""
        index = self.context.index
        for site in index.calls:
            func = site.node.func
            if site.function is not hook or not isinstance(func, cst.Attribute) or func.attr.value != mode:
                continue
            receiver = func.value
            text = index.code(receiver)
            if isinstance(receiver, cst.Name):
                found, _ = index.reaching_bindings(receiver.value, site.statement, hook)
                text += " ".join(index.code(b.value) for b in found if isinstance(b.value, cst.BaseExpression))
            if OPTIMIZER_NAME.search(text.lower()) or "optimizers()" in text or dotted_name(receiver) is None:
                return True
        return False
