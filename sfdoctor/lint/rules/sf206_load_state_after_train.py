from ...findings import RuleInfo
from ..analysis.modes import kinds, mode_analysis, settled
from ..rule import Rule


class LoadStateAfterTrain(Rule):
    info = RuleInfo(
        "SF206",
        "load-state-after-train",
        "warning",
        "load_state_dict on a ScheduleFree optimizer after its train(), with no train() after the load.",
    )

    def check(self) -> None:
        analysis = self.context.analysis(mode_analysis)
        steps = analysis.events_of("step")
        for load in analysis.events_of("load"):
            if all(analysis.sites[c].is_wrapper for c in load.key):
                continue  # the wrappers keep their mode outside the state dict
            before = analysis.resolve(load, load.key)
            if "train" not in kinds(before) or not settled(before):
                continue
            if not any(("loaded", load.node) in analysis.resolve(s, s.key) for s in steps if s.key & load.key):
                continue
            # every path through the load that reaches a step() is wrong: only the mode before it can be unsure
            certain = kinds(before) == {"train"}
            origin = next((o for kind, o in before if kind == "train" and o is not None), None)
            self.report(
                load.node,
                "load_state_dict after optimizer.train(): train_mode is stored in param_groups, so the load "
                "restores the mode the checkpoint was saved in (eval, if it was saved correctly) and the next "
                "step() is not in train mode",
                possible=not certain,
                related=(self.context.related("train() before the load", origin),) if origin is not None else (),
                notes=("call optimizer.train() after load_state_dict, not before",),
            )
