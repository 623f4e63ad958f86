import difflib

from ...findings import RuleInfo
from ..analysis.modes import TRAINER_OPTIMS, trainer_arguments
from ..analysis.values import Evaluator
from ..rule import Rule


class TrainerUnknownOptim(Rule):
    info = RuleInfo(
        "SF402",
        "trainer-unknown-optim",
        "error",
        "A TrainingArguments optim string that starts with schedule_free but is not one Trainer knows.",
    )

    def check(self) -> None:
        for arguments in self.context.analysis(trainer_arguments):
            unknown = [v for v in arguments.optim if v.startswith("schedule_free") and v not in TRAINER_OPTIMS]
            if not unknown:
                continue
            closest = difflib.get_close_matches(unknown[0], TRAINER_OPTIMS, n=1, cutoff=0)
            self.report(
                Evaluator.argument(arguments.call, "optim", None) or arguments.call,
                f"optim={unknown[0]!r} is not a Trainer optimizer: transformers raises ValueError; the ScheduleFree "
                f"names are {', '.join(TRAINER_OPTIMS)}",
                possible=not arguments.optim_known or len(unknown) < len(arguments.optim),
                notes=(f"did you mean {closest[0]!r}?",) if closest else (),
            )
