from ...findings import RuleInfo
from ..analysis.modes import mode_analysis
from ..rule import Rule


class ModeSwitchInAutocast(Rule):
    info = RuleInfo(
        "SF208",
        "mode-switch-in-autocast",
        "warning",
        "optimizer.train()/eval() inside an autocast block after a forward pass in it.",
    )

    def check(self) -> None:
        analysis = self.context.analysis(mode_analysis)
        index = self.context.index
        for event in analysis.events_of("mode"):
            if not event.in_autocast_after_forward:
                continue
            self.report(
                event.node,
                f"{index.code(event.node.func)}() inside an autocast block after a forward pass: autocast caches "
                "the low-precision copies of the weights until the block ends, so later forward passes in it "
                "still use the weights from before the switch",
                notes=("switch the mode outside the autocast block, or call torch.clear_autocast_cache() after it",),
            )
