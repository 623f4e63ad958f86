from ...findings import RuleInfo
from ..analysis.lightning import switches
from ..analysis.modes import conditions, kinds, mode_analysis, settled
from ..fixes.mode_fixes import train_before_loop
from ..project.lightning import lightning_modules
from ..rule import Rule


class StepWithoutTrain(Rule):
    info = RuleInfo(
        "SF201",
        "step-without-train",
        "error",
        "step() on a ScheduleFree optimizer that is in eval mode (no train() before it).",
    )

    def check(self) -> None:
        analysis = self.context.analysis(mode_analysis)
        index = self.context.index
        for event in analysis.events_of("step"):
            sites = [s for s in analysis.optimizers(event.key) if not s.is_closure]
            facts = analysis.resolve(event, event.key)
            if not sites or "eval" not in kinds(facts) or not settled(facts):
                continue
            _, optimizers = analysis.receivers[event.node]
            row = self.context.location(event.node)[0].row
            reasons, related = [], []
            for kind, origin in sorted(facts, key=lambda f: analysis.order.get(f[1], 0)):
                if kind != "eval":
                    continue
                if origin is None:
                    reasons.append("this file never calls .train() on it")
                elif origin in analysis.sites:
                    reasons.append(f"{analysis.sites[origin].class_name} starts in eval mode (schedulefree >= 1.3)")
                    related.append(self.context.related("optimizer created here, in eval mode", origin))
                else:
                    line = self.context.location(origin)[0].row
                    function = analysis.function_of.get(origin)
                    if function is not event.function:
                        how = f" (in {function.name}()) reaches it" if function else " reaches it"
                    else:
                        how = " reaches it through the loop" if line > row else " reaches it"
                    reasons.append(f"{index.code(origin.func)}() on line {line}{how}")
                    related.append(self.context.related("put in eval mode here", origin))
            always = analysis.always(event, event.key, "eval")
            # train() on an optimizer that may not be ScheduleFree could raise: no fix then
            known_optimizer = optimizers.certain and len(sites) == len(event.key)
            self.report(
                event.node,
                f"{index.code(event.node.func)}() while the optimizer {'is' if always else 'may be'} in eval mode: "
                f"{'; '.join(reasons)}, with no .train() in between; {_consequence(sites)}",
                possible=not (always and known_optimizer),
                related=tuple(related),
                notes=("call optimizer.train() next to model.train(), before the forward pass",
                       *conditions(analysis, {event.key})),
                fix=train_before_loop(self.context, event.node, facts) if known_optimizer else None,
            )
        self._lightning()

    def _lightning(self) -> None:
        """Lightning calls step() itself: with no train() anywhere, its first step raises."""
        modules = self.context.analysis(lightning_modules)
        if not modules or switches(self.context, "train"):
            return
        for module in modules:
            optimizer = module.optimizer
            if optimizer.is_closure or optimizer.is_adamc or optimizer.initial_mode != "eval":
                continue  # closures have no modes; ScheduleFree+ cannot be driven by Lightning at all (SF116)
            if any("train" in modes for modes in module.facts.methods.values()):
                continue  # a base class in another module calls train()
            self.report(
                module.node.name,
                f"{module.node.name.value} returns {optimizer.class_name} from configure_optimizers and nothing in "
                "this file or its base classes calls optimizer.train(): it starts in eval mode (schedulefree >= 1.3), so Lightning's "
                "first optimizer.step() raises \"Optimizer was not in train mode\"",
                possible=optimizer.possible,
                related=(self.context.created(optimizer),),
                notes=("def on_train_batch_start(self, batch, batch_idx): self.optimizers().train()",),
            )


def _consequence(sites: list) -> str:
    """What step() does in eval mode (checked on CPU for the look-alikes)."""
    silent = sorted({s.class_name for s in sites if s.is_lookalike and s.class_name != "ProdigyPlusScheduleFree"})
    if silent and len(silent) == len(sites):
        return (f"{', '.join(silent)} does not check the mode: no exception, the step runs silently on the "
                "averaged weights x that eval() put in the model, and training goes on from the wrong point")
    if all(s.class_name == "ProdigyPlusScheduleFree" for s in sites):
        return 'step() raises "Not in train mode!"'
    return 'step() raises "Optimizer was not in train mode"'
