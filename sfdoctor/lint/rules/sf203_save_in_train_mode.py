from ...findings import RuleInfo
from ..analysis.modes import mode_reports
from ..fixes.mode_fixes import eval_around
from ..rule import Rule


class SaveInTrainMode(Rule):
    info = RuleInfo(
        "SF203",
        "save-in-train-mode",
        "warning",
        "A checkpoint saved while the ScheduleFree optimizer is in train mode.",
    )

    def check(self) -> None:
        for report in mode_reports(self.context, "save"):
            self.report(
                report.node,
                "the model is saved while the optimizer is in train mode: the checkpoint holds y, the gradient "
                "point, not the averaged weights x that ScheduleFree evaluates",
                possible=report.possible,
                related=report.related,
                fix=eval_around(self.context, report),
                notes=("call optimizer.eval() before saving (and optimizer.train() before training on)", *report.notes),
            )
