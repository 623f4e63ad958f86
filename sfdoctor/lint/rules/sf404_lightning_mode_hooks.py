from ...findings import RuleInfo
from ..analysis.lightning import lightning_modules, switches
from ..rule import Rule

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
        for module in lightning_modules(self.context):
            methods, statement = module.methods, module.node
            if any(switches(self.context, methods[hook], "train") for hook in TRAIN_HOOKS if hook in methods):
                continue
            evaluates = any(switches(self.context, methods[hook], "eval") for hook in EVAL_HOOKS if hook in methods)
            self.report(
                statement.name,
                f"{statement.name.value} trains with {module.optimizer.class_name} but calls optimizer.train() in no "
                "per-batch or post-validation hook: Lightning does not switch ScheduleFree modes, so step() runs "
                "in eval mode (schedulefree >= 1.3 raises) or, after a validation, at the wrong point"
                + ("" if evaluates else "; nor does it call optimizer.eval() before validation and checkpointing"),
                related=(self.context.related("optimizer created here", module.optimizer.call),),
                notes=(
                    "def on_train_batch_start(self, batch, batch_idx): self.optimizers().train()",
                    "def on_validation_epoch_start(self): self.optimizers().eval()",
                    "def on_validation_epoch_end(self): self.optimizers().train()",
                    "def on_save_checkpoint(self, checkpoint): self.optimizers().eval()",
                ),
            )
