from ...findings import RuleInfo
from ..analysis.lightning import EVAL_HOOKS, TRAIN_HOOKS
from ..project.facts import EVIDENCE
from ..project.lightning import lightning_modules
from ..rule import Rule

EVIDENCE_NOTE = ("configure_optimizers shows no ScheduleFree class, but the module calls train()/eval() on its "
                 "optimizer, so it is taken to be ScheduleFree")


class LightningModeHooks(Rule):
    info = RuleInfo(
        "SF404",
        "lightning-mode-hooks",
        "warning",
        "A LightningModule with a ScheduleFree optimizer that does not call train() in a per-batch or "
        "post-validation hook.",
    )

    def check(self) -> None:
        for module in self.context.analysis(lightning_modules):
            methods, statement = module.facts.methods, module.node
            if any("train" in methods.get(hook, ()) for hook in TRAIN_HOOKS):
                continue
            evaluates = any("eval" in methods.get(hook, ()) for hook in EVAL_HOOKS)
            evidence = module.optimizer.condition == EVIDENCE  # no construction to point at
            self.report(
                statement.name,
                f"{statement.name.value} trains with {module.optimizer.class_name} but calls optimizer.train() in no "
                "per-batch or post-validation hook (its own or inherited): Lightning does not switch ScheduleFree "
                "modes, so step() runs in eval mode (schedulefree >= 1.3 raises) or, after a validation, at the "
                "wrong point"
                + ("" if evaluates else "; nor does it call optimizer.eval() before validation and checkpointing"),
                possible=module.optimizer.possible,
                related=() if evidence else (self.context.created(module.optimizer),),
                notes=(
                    *(EVIDENCE_NOTE,) * evidence,
                    "def on_train_batch_start(self, batch, batch_idx): self.optimizers().train()",
                    "def on_validation_epoch_start(self): self.optimizers().eval()",
                    "def on_validation_epoch_end(self): self.optimizers().train()",
                    "def on_save_checkpoint(self, checkpoint): self.optimizers().eval()",
                ),
            )
