"""HF Trainer switches a ScheduleFree optimizer to eval mode only around an evaluation (and leaves it
there until the next training step), so a checkpoint written on a step without an evaluation, or
`save_model()` after `train()` when training did not end with one, holds `y` (transformers 5.24)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import libcst as cst

from ...findings import RuleInfo
from ..analysis.index import CallSite, dotted_name
from ..analysis.modes import TRAINER_OPTIMS, TrainerArguments, trainer_arguments
from ..analysis.values import Evaluator, Where, last_name
from ..rule import Rule

# TrainingArguments defaults (transformers 5): eval_steps falls back to logging_steps.
DEFAULTS = {"save_strategy": "steps", "eval_strategy": "no", "save_steps": 500, "logging_steps": 500}
POST_TRAIN_SAVES = frozenset({"save_model", "push_to_hub"})
# Trainer methods that run its evaluation loop, which calls optimizer.eval().
EVALUATING = frozenset({"evaluate", "predict"})


@dataclass(frozen=True)
class _Trainer:
    call: cst.Call
    where: Where
    arguments: TrainerArguments | None  # the TrainingArguments it is given, when this file builds them
    reason: str  # why its optimizer is ScheduleFree


class TrainerSavesAtY(Rule):
    info = RuleInfo(
        "SF406",
        "trainer-saves-at-y",
        "warning",
        "HF Trainer with a ScheduleFree optimizer writing checkpoints in train mode (saves without an evaluation).",
    )

    def check(self) -> None:
        arguments = self.context.analysis(trainer_arguments)
        trainers = self._trainers(arguments)
        # TrainingArguments given to a Trainer with a ScheduleFree optimizer, whatever their optim
        checked = {t.arguments.call: t for t in trainers if t.arguments is not None}
        for argument in {**{a.call: a for a in arguments}, **{c: t.arguments for c, t in checked.items()}}.values():
            schedule_free = [v for v in argument.optim if v in TRAINER_OPTIMS]
            name = last_name(argument.call.func)
            if argument.call in checked and not schedule_free:
                self._check_schedule(argument, f"{name} of a Trainer with {checked[argument.call].reason}", False)
            elif schedule_free:
                possible = not argument.optim_known or len(schedule_free) < len(argument.optim)
                self._check_schedule(argument, f"{name}(optim={schedule_free[0]!r})", possible)
        for trainer in trainers:
            self._check_post_train_saves(trainer)

    def _value(self, argument: TrainerArguments, keyword: str) -> tuple[list[object], bool] | None:
        """The values a TrainingArguments keyword may take (its default when absent); None: unknown (**kwargs)."""
        node = Evaluator.argument(argument.call, keyword, None)
        if node is None and keyword == "eval_strategy":
            node = Evaluator.argument(argument.call, "evaluation_strategy", None)  # transformers < 4.46
        if node is None:
            if any(arg.star for arg in argument.call.args):
                return None
            return [DEFAULTS.get(keyword)], True
        if isinstance(node, cst.Attribute) and (dotted_name(node.value) or "").endswith("Strategy"):
            return [node.attr.value.lower()], True  # IntervalStrategy.STEPS, SaveStrategy.EPOCH
        values = self.context.evaluator.values(node, argument.where)
        options = [str(getattr(v, "value", v)).lower() if "strategy" in keyword else v for v in values.options]
        return (options, values.complete) if options else None

    def _check_schedule(self, argument: TrainerArguments, what: str, possible: bool) -> None:
        keywords = ("save_strategy", "eval_strategy", "save_steps", "eval_steps", "logging_steps")
        found = {k: self._value(argument, k) for k in keywords}
        if found["eval_steps"] == ([None], True):
            found["eval_steps"] = found["logging_steps"]
        if any(v is None for v in found.values()):
            return
        problems = [
            problem
            for save, evaluate, save_steps, eval_steps in itertools.product(
                *(found[k][0] for k in keywords[:4])  # type: ignore[index]
            )
            if (problem := _misaligned(save, evaluate, save_steps, eval_steps)) is not None
        ]
        if not problems:
            return
        combinations = 1
        for k in keywords[:4]:
            combinations *= len(found[k][0])  # type: ignore[index]
        certain = all(found[k][1] for k in keywords[:4]) and len(problems) == combinations  # type: ignore[index]
        node = next(
            (n for k in ("save_steps", "save_strategy") if (n := Evaluator.argument(argument.call, k, None))),
            argument.call,
        )
        self.report(
            node,
            f"{what}: {problems[0]}; Trainer switches the optimizer to eval "
            "mode only around an evaluation, so those checkpoints hold y, the gradient point, not the averaged "
            "weights x",
            possible=possible or not certain,
            notes=(('save on evaluation steps: eval_strategy equal to save_strategy and save_steps a multiple of '
                   'eval_steps, or save_strategy="best"'),),
        )

    def _trainers(self, arguments: list[TrainerArguments]) -> list[_Trainer]:
        """`Trainer(args=..., optimizers=(opt, sched))` calls whose optimizer is ScheduleFree."""
        by_call = {a.call: a for a in arguments}
        evaluator = self.context.evaluator
        found = []
        for site in self.context.index.calls:
            if not (last_name(site.node.func) or "").endswith("Trainer"):
                continue
            where = Where(site.statement, site.function)
            given = None
            args = Evaluator.argument(site.node, "args", 1)
            if args is not None:
                origins, _ = evaluator.origins(args, where)
                given = next((by_call.get(o) or TrainerArguments(o, w, (), True) for o, w in origins
                              if isinstance(o, cst.Call) and _is_training_arguments(o)), None)
            reason = None
            optimizers = Evaluator.argument(site.node, "optimizers", None)
            if optimizers is not None:
                for origin, place in evaluator.origins(optimizers, where)[0]:
                    elements = origin.elements if isinstance(origin, (cst.Tuple, cst.List)) else ()
                    sites = [s for e in elements[:1] for s in evaluator.optimizers(e.value, place).sites]
                    if sites and not any(s.is_closure for s in sites):
                        reason = f"optimizers=({sites[0].class_name}, ...)"
            if reason is None and given is not None:
                schedule_free = [v for v in given.optim if v in TRAINER_OPTIMS]
                reason = f"optim={schedule_free[0]!r}" if schedule_free else None
            if reason is not None:
                found.append(_Trainer(site.node, where, given, reason))
        return found

    def _check_post_train_saves(self, trainer: _Trainer) -> None:
        """`trainer.save_model()` / `push_to_hub()` after `trainer.train()`, in the same function, with
        no evaluation or optimizer.eval() in between."""
        if trainer.arguments is not None:
            evaluates = self._value(trainer.arguments, "eval_strategy")
            if evaluates is None:
                return
            options, complete = evaluates
            if "no" not in options:
                return  # training ends with an evaluation, which leaves the optimizer in eval mode
            certain = complete and set(options) == {"no"}
        else:
            certain = False  # its TrainingArguments are built elsewhere
        calls = sorted(
            (s for s in self.context.index.calls if s.function is trainer.where.function),
            key=lambda s: s.order,
        )
        trained = None
        for site in calls:
            method = _method_on(site, self._receivers(trainer))
            if method == "train":
                trained = site
            elif trained is not None and (method in EVALUATING or _optimizer_eval(site)):
                trained = None
            elif trained is not None and method in POST_TRAIN_SAVES:
                self.report(
                    site.node,
                    f"{method}() after train() of a Trainer with {trainer.reason}: training did not end with an "
                    "evaluation, so the optimizer is still in train mode and this saves y, not the averaged "
                    "weights x",
                    possible=not certain,
                    related=(self.context.related("trained here", trained.node),),
                    notes=("call trainer.optimizer.eval() (or trainer.evaluate()) before saving",),
                )

    def _receivers(self, trainer: _Trainer) -> frozenset[str]:
        """The names the Trainer is bound to (`trainer = Trainer(...)`)."""
        statement = trainer.where.statement
        names = set()
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is trainer.call:
                    targets = small.targets if isinstance(small, cst.Assign) else [small]
                    names |= {text for t in targets if (text := dotted_name(t.target))}
        return frozenset(names)


def _is_training_arguments(call: cst.Call) -> bool:
    name = last_name(call.func) or ""
    return name.endswith(("TrainingArguments", "Config"))


def _method_on(site: CallSite, receivers: frozenset[str]) -> str | None:
    func = site.node.func
    if isinstance(func, cst.Attribute) and dotted_name(func.value) in receivers:
        return func.attr.value
    return None


def _optimizer_eval(site: CallSite) -> bool:
    """`trainer.optimizer.eval()`, `optimizer.eval()`: a mode switch the user makes before saving."""
    func = site.node.func
    return isinstance(func, cst.Attribute) and func.attr.value == "eval" and "opt" in (dotted_name(func.value) or "")


def _misaligned(save: object, evaluate: object, save_steps: object, eval_steps: object) -> str | None:
    """Why checkpoints are written on steps without an evaluation, or None."""
    if save in ("no", "best"):
        return None  # "best" saves right after the evaluation that found it
    if evaluate == "no":
        every = f"every {save_steps} steps" if save == "steps" else "every epoch"
        return f"save_strategy={save!r} saves {every} and no evaluation ever runs"
    if save != evaluate:
        return f"save_strategy={save!r} saves on steps the eval_strategy={evaluate!r} does not evaluate on"
    if save == "steps":
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 1 for v in (save_steps, eval_steps)):
            return None  # ratios of the run (< 1) or unknown: no claim
        if save_steps % eval_steps:  # type: ignore[operator]
            return f"save_steps={save_steps} is not a multiple of eval_steps={eval_steps}"
    return None
