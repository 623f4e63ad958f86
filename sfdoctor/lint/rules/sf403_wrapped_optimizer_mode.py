from ...findings import RuleInfo
from ..analysis.modes import mode_analysis
from ..analysis.values import Evaluator, Where
from ..rule import Rule


class WrappedOptimizerMode(Rule):
    info = RuleInfo(
        "SF403",
        "wrapped-optimizer-mode",
        "warning",
        "A ScheduleFree optimizer handed to deepspeed.initialize, with mode calls on the inner optimizer.",
    )

    def check(self) -> None:
        analysis = self.context.analysis(mode_analysis)
        if not analysis.sites:
            return
        for site in self.context.index.calls:
            if site.qualname != "deepspeed.initialize":
                continue
            argument = Evaluator.argument(site.node, "optimizer", 2)
            if argument is None:
                continue
            optimizers = self.context.evaluator.optimizers(argument, Where(site.statement, site.function))
            calls = {s.call for s in optimizers.sites}
            mode_calls = [e.node for e in analysis.events_of("mode") if e.key & calls]
            if not mode_calls:
                continue
            mode_calls.sort(key=lambda n: analysis.order.get(n, 0))
            self.report(
                site.node,
                f"{optimizers.sites[0].class_name} handed to deepspeed.initialize, and train()/eval() called on it: "
                "DeepSpeed steps its own fp32 copies of the parameters (ZeRO partitions them), so the inner "
                "optimizer's mode switches may not reach the module's weights that are evaluated and saved",
                possible=not optimizers.certain,
                related=tuple(self.context.related("mode call on the inner optimizer", n) for n in mode_calls[:2]),
                notes=(("verify with `sfdoctor replay` that eval() changes the evaluated weights (SF507); under ZeRO "
                       "or with fp16/bf16 master weights, copy the averaged weights into the module before evaluating "
                       "and saving"),),
            )
