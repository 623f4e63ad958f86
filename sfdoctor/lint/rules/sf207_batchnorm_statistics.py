import re

from ...findings import RuleInfo
from ..analysis.modes import kinds, mode_analysis, settled
from ..analysis.values import last_name
from ..rule import Rule

BATCHNORM = re.compile(r"BatchNorm")
# torchvision models built with BatchNorm layers
BATCHNORM_MODELS = re.compile(
    r"^(resnet|resnext|wide_resnet|densenet|mobilenet|efficientnet|regnet|shufflenet|mnasnet|vgg\d+_bn|"
    r"inception_v3|googlenet)"
)
# torch.optim.swa_utils.update_bn, recalibrate_bn(...), recompute_bn_stats(...)
RECALIBRATION = re.compile(
    r"update_bn|calibrat|(reset|recompute|refresh|update)_(bn|batch_?norm)|(bn|batch_?norm)_(stats|statistics)",
    re.IGNORECASE,
)


class BatchnormStatistics(Rule):
    info = RuleInfo(
        "SF207",
        "batchnorm-statistics",
        "warning",
        "A BatchNorm model evaluated at the ScheduleFree average without recomputing its statistics.",
    )

    def check(self) -> None:
        analysis = self.context.analysis(mode_analysis)
        if not analysis.sites or not self._has_batchnorm() or self._recalibrates(analysis):
            return
        for event in sorted(analysis.events_of("evaluate"), key=lambda e: analysis.order.get(e.node, 0)):
            keys = analysis.concerned_keys(event)
            facts = [analysis.resolve(event, key) for key in keys]
            if facts and all(kinds(f) == {"eval"} and settled(f) for f in facts):
                self.report(
                    event.region or event.node,
                    "the model has BatchNorm layers, and their running statistics were collected at y during "
                    "training; evaluated at the average x (optimizer.eval()) without recomputing them, "
                    "the statistics do not match the weights",
                    notes=(
                        ("before evaluating: model.train(); optimizer.eval(); with torch.no_grad(): run ~50 "
                        "training batches through the model; then model.eval()"),
                    ),
                )
                return  # once per file: one recalibration pass fixes every evaluation

    def _has_batchnorm(self) -> bool:
        for site in self.context.index.calls:
            name = last_name(site.node.func) or ""
            if BATCHNORM.search(name):
                return True
            if (site.qualname or "").startswith("torchvision.models") and BATCHNORM_MODELS.match(name):
                return True
        return False

    def _recalibrates(self, analysis) -> bool:
        """A no_grad pass in train mode at x, or a call such as swa_utils.update_bn / recalibrate_bn."""
        if any(RECALIBRATION.search(last_name(site.node.func) or "") for site in self.context.index.calls):
            return True
        for event in analysis.events_of("recalibrate"):
            facts = [analysis.resolve(event, key) for key in analysis.concerned_keys(event)]
            if facts and all("eval" in kinds(f) for f in facts):
                return True
        return False
