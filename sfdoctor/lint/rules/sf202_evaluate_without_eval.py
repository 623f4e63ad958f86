from ...findings import RuleInfo
from ..analysis.modes import mode_reports
from ..fixes.mode_fixes import eval_around
from ..rule import Rule


class EvaluateWithoutEval(Rule):
    info = RuleInfo(
        "SF202",
        "evaluate-without-eval",
        "warning",
        "Evaluation while the ScheduleFree optimizer is in train mode.",
    )

    def check(self) -> None:
        for report in mode_reports(self.context, "evaluate"):
            self.report(
                report.node,
                "evaluation while the optimizer is in train mode: the model holds y, the gradient point, "
                "not the averaged weights x, so the metrics are worse than the model you will ship",
                possible=report.possible,
                related=report.related,
                fix=eval_around(self.context, report),
                notes=("call optimizer.eval() before evaluating and optimizer.train() after", *report.notes),
            )
