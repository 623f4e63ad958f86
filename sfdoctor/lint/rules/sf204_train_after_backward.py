from ...findings import RuleInfo
from ..analysis.modes import BACKWARD, kinds, mode_analysis
from ..rule import Rule


class TrainAfterBackward(Rule):
    info = RuleInfo(
        "SF204",
        "train-after-backward",
        "warning",
        "optimizer.train() after backward() and before step(): the gradient was taken at x.",
    )

    def check(self) -> None:
        analysis = self.context.analysis(mode_analysis)
        for event in analysis.events_of("mode"):
            if event.mode != "train" or all(analysis.sites[c].is_closure for c in event.key):
                continue
            pending = analysis.resolve(event, BACKWARD)
            facts = analysis.resolve(event, event.key)
            if kinds(pending) != {"backward"} or kinds(facts) == {"train"}:
                continue  # no gradient waiting, or train() is a no-op here
            # the order is wrong wherever train() is not a no-op: not "possible" even on mixed paths
            backward = max((node for _, node in pending), key=lambda n: analysis.order.get(n, 0))
            self.report(
                event.node,
                "optimizer.train() after backward() and before step(): the gradient was computed with the "
                "model at x (eval mode), but step() applies it at y",
                related=(self.context.related("backward() here", backward),),
                notes=("move optimizer.train() before the forward pass (next to model.train())",),
            )
