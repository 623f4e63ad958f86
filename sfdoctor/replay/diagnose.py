"""Findings SF501-SF510 from a replay's recording, and the name of the crash when the script crashed."""

from __future__ import annotations

import linecache
import math
import os
from collections import Counter
from dataclasses import dataclass, replace
from itertools import groupby

from ..findings import Finding, Location, Related, RuleInfo
from ..lint.rules.sf113_zero_momentum import ZeroMomentum
from ..lint.rules.sf405_wrapper_base_unsupported import WrapperBaseUnsupported
from . import codes
from .frames import Site, display_path, is_sfdoctor_file, is_user_file
from .record import Change, Event, GroupTrace, OptimizerTrace
from .session import UNGUARDED_RELEASES, ReplayResult

FREEZE_FIX = "give the group a positive lr; to freeze parameters use requires_grad_(False) or leave them out"
REMOVE_SCHEDULER = "remove the scheduler and its step() calls; for a warm-up pass warmup_steps=N to the optimizer"
# Where a framework builds or steps the scheduler, the fix is in what the user gives the framework.
FRAMEWORK_SCHEDULER_FIXES = {
    "Trainer": 'pass lr_scheduler_type="constant" to TrainingArguments (and no scheduler in Trainer(optimizers=...)); '
               "for a warm-up give warmup_steps as an integer number of steps (Trainer hands it to the optimizer, "
               "whose own warm-up it becomes)",
    "Lightning": "return the optimizer alone from configure_optimizers (no lr_scheduler); for a warm-up pass "
                 "warmup_steps=N to the optimizer",
    "accelerate": "remove the scheduler (from accelerator.prepare(...) too) and its step() calls; for a warm-up pass "
                  "warmup_steps=N to the optimizer",
}


@dataclass(frozen=True)
class Crash:
    """The script's exception, named by the frame that raised it."""

    description: str
    rule: RuleInfo | None
    optimizer: OptimizerTrace | None
    site: Site | None  # the innermost frame of user code
    internal: bool = False  # sfdoctor's own instrumentation raised: not the script's fault


def diagnose(result: ReplayResult) -> tuple[list[Finding], Crash | None]:
    findings = []
    for trace in result.optimizers:
        for group in trace.groups:
            findings += _group_findings(result, trace, group)
        findings += _event_findings(trace, findings)
    crash = name_crash(result)
    if crash is not None and crash.rule is not None and not any(
        f.code == crash.rule.code and f.optimizer == (crash.optimizer.index if crash.optimizer else None)
        for f in findings
    ):
        findings.append(_crash_finding(crash, result))
    findings = _merge_groups(sorted(findings, key=lambda f: (f.optimizer or 0, f.group or 0, f.step or 0, f.code)))
    return findings, crash


def _merge_groups(findings: list[Finding]) -> list[Finding]:
    """One finding for the groups that got the same one (HF Trainer always makes two groups): "groups 0 and 1"."""
    merged: dict[tuple, list[Finding]] = {}
    for finding in findings:
        text = finding.message.replace(f"group {finding.group}", "", 1)
        key = (finding.code, finding.optimizer, finding.step, finding.filename, finding.location, text, finding.notes)
        merged.setdefault(key, []).append(finding)
    result = []
    for same in merged.values():
        first = same[0]
        if len(same) > 1:
            groups = [str(finding.group) for finding in same]
            label = f"groups {', '.join(groups[:-1])} and {groups[-1]}"
            first = replace(first, message=first.message.replace(f"group {first.group}", label, 1))
        result.append(first)
    return result


def _finding(rule: RuleInfo, message: str, site: Site | None, trace: OptimizerTrace, group: int | None,
             step: int | None, result: ReplayResult, notes: tuple[str, ...] = ()) -> Finding:
    # A Trainer runs every line in trainer.train(): its findings point at what the user wrote to configure it.
    site = trace.configured_at or site or trace.created_at or Site(str(result.script or result.target), 1)
    related = ()
    if trace.created_at is not None and trace.created_at != site:
        related = (Related(f"{trace.cls} constructed here", display_path(trace.created_at.filename),
                           Location(trace.created_at.row, 1)),)
    end = len(linecache.getline(site.filename, site.row).rstrip("\n")) + 1
    return Finding(
        rule=rule, message=message, filename=display_path(site.filename),
        location=Location(site.row, 1), end_location=Location(site.row, max(end, 1)),
        related=related, step=step, optimizer=trace.index, group=group, notes=notes,
    )


# -- per group -----------------------------------------------------------------------------------


def _group_findings(result: ReplayResult, trace: OptimizerTrace, group: GroupTrace) -> list[Finding]:
    steps = group.steps
    if not steps:
        return []
    findings = []
    name = f"group {group.index}"

    safe = [s for s in steps if s["safe_division"] and not (group.builtin_zero_lr_phase and s["lr"] != 0)]
    if safe:
        first = safe[0]["step"]
        cause, site = lr_cause(trace, group, first)
        findings.append(_finding(
            codes.SF501,
            f"{name} had weight_sum 0 on {_count(len(safe), len(steps))} (first at step {first}): weight/weight_sum "
            f"was 0/0, {_upstream_effect(trace, result)}; the replay divided safely and went on; {cause}",
            site, trace, group.index, first, result, notes=_lr_fix(trace, cause),
        ))

    # Sampled per-step changes can miss a change; the exact end-to-start comparison cannot.
    if not group.moved and not any(s["param_change_norm"] for s in steps) and any(s["params_with_grad"] for s in steps):
        reason = "lr was 0 on every step" if all(s["scheduled_lr"] == 0 for s in steps) else (
            "every gradient was 0" if all(s["zero_grad_params"] == s["params_with_grad"] for s in steps)
            else "nothing changed its parameters")
        cause, site = lr_cause(trace, group, steps[-1]["step"])
        findings.append(_finding(
            codes.SF503, f"{name} never moved in {len(steps)} steps: {reason}; {cause}",
            site, trace, group.index, steps[0]["step"], result, notes=_lr_fix(trace, cause),
        ))

    bad = next((s for s in steps if not (_finite(s["ckp1"]) and _finite(s["param_change_norm"]))), None)
    if bad is not None:
        what = f"ckp1 was {bad['ckp1']}" if not _finite(bad["ckp1"]) else "its parameters became NaN or infinite"
        cause, site = lr_cause(trace, group, bad["step"])
        findings.append(_finding(
            codes.SF502, f"{name} at step {bad['step']}: {what} (lr {bad['lr']}, weight_sum {bad['weight_sum']}); "
            f"{cause}", site, trace, group.index, bad["step"], result,
        ))

    negative = [s for s in steps if s["scheduled_lr"] < 0]
    if negative:
        cause, site = lr_cause(trace, group, negative[0]["step"])
        findings.append(_finding(
            codes.SF510, f"{name} stepped with a negative lr ({negative[0]['scheduled_lr']}) on "
            f"{_count(len(negative), len(steps))} (first at step {negative[0]['step']}); {cause}",
            site, trace, group.index, negative[0]["step"], result, notes=("give a positive lr",),
        ))

    zero_moved = [s for s in steps if s["zero_grad_moved"]]
    if zero_moved:
        first = zero_moved[0]
        findings.append(_finding(
            codes.SF508, f"{name}: {first['zero_grad_moved']} parameters whose gradient was all zeros moved at "
            f"step {first['step']} ({_count(len(zero_moved), len(steps))} like this): zeroing gradients does not "
            "freeze parameters under ScheduleFree (y keeps moving toward z, weight decay still acts)",
            trace.step_sites[first["step"] - 1], trace, group.index, first["step"], result,
            notes=("freeze with p.requires_grad_(False) or set p.grad = None; or leave the parameters out",),
        ))

    findings += _change_findings(result, trace, group, "lr", codes.SF504, scheduler_fix(trace))
    findings += _change_findings(result, trace, group, "beta1", codes.SF505,
                                 "keep beta1 / momentum fixed: cycle_momentum=False on OneCycleLR / CyclicLR, "
                                 "no writes to group['betas'] or group['momentum']")
    return findings


def _change_findings(result: ReplayResult, trace: OptimizerTrace, group: GroupTrace, key: str,
                     rule: RuleInfo, fix: str) -> list[Finding]:
    """One finding per writer of changes made between steps (changes before the first step are causes)."""
    changes = [c for c in group.changes if c.key == key and c.step > 1]
    by_writer = sorted(changes, key=_writer_text)
    findings = []
    for who, grouped in groupby(by_writer, key=_writer_text):
        grouped = list(grouped)
        first = grouped[0]
        label = "lr" if key == "lr" else "beta1 / momentum"
        site = first.writer.site if first.writer else trace.step_sites[first.step - 1]
        if first.writer and trace.framework in ("Lightning", "Trainer"):  # they step it: the user wrote its constructor
            site = first.writer.scheduler_created_at
        findings.append(_finding(
            rule, f"group {group.index} {label} changed between steps {_times(len(grouped))} by {who}: "
            f"{first.before} -> {first.after} before step {first.step}",
            site, trace, group.index, first.step, result, notes=(fix,),
        ))
    return findings


def lr_cause(trace: OptimizerTrace, group: GroupTrace, step: int) -> tuple[str, Site | None]:
    """Why the group's lr had the value it had at `step`: the last write before it, or the constructor."""
    change = next((c for c in reversed(group.changes) if c.key == "lr" and c.step <= step), None)
    if change is None:
        where = f" at {trace.created_at}" if trace.created_at else ""
        return f"{trace.cls} was constructed with lr={group.initial_lr} for this group{where}", trace.created_at
    writer = change.writer
    if writer is None:
        return (f"{_writer_text(change)} set lr from {change.before} to {change.after} before step {change.step}",
                trace.step_sites[change.step - 1])
    text = f"{writer.describe()} set lr from {change.before} to {change.after}"
    _, scheduler = writer.scheduler  # a scheduler of this optimizer: it wrote this optimizer's group
    if trace.schedulers[scheduler].steps == 0:
        text += " and was never stepped"
    return text, writer.site


def _lr_fix(trace: OptimizerTrace, cause: str) -> tuple[str, ...]:
    if "constructed at" in cause and "was constructed with" not in cause:
        return (scheduler_fix(trace),)
    return (FREEZE_FIX,)


def scheduler_fix(trace: OptimizerTrace) -> str:
    return FRAMEWORK_SCHEDULER_FIXES.get(trace.framework, REMOVE_SCHEDULER)


def _upstream_effect(trace: OptimizerTrace, result: ReplayResult) -> str:
    if trace.is_wrapper:
        return f"which raises ZeroDivisionError in {trace.cls} (no version guards it)"
    if trace.tensor_lr:
        return "which with a tensor lr writes NaN into every parameter of the group"
    if trace.look_alike:
        return f"which {trace.cls} turns into ckp1 = 0, so these steps do not learn"
    version = result.versions.get("schedulefree")
    if version in UNGUARDED_RELEASES:
        return f"which raises ZeroDivisionError in schedulefree {version}"
    return f"which schedulefree {version} hides with ckp1 = 0, so these steps do not learn"


def _writer_text(change: Change) -> str:
    return change.writer.describe() if change.writer else "code other than an LR scheduler"


def _count(part: int, whole: int) -> str:
    return f"{part} of {whole} steps" if part != whole else f"all {whole} steps"


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _finite(value: float | None) -> bool:
    return value is None or math.isfinite(value)


# -- events and crashes --------------------------------------------------------------------------


def _event_findings(trace: OptimizerTrace, so_far: list[Finding]) -> list[Finding]:
    findings = []
    never_moved = {f.group for f in so_far if f.code == "SF503" and f.optimizer == trace.index}
    # Steps in eval mode with one cause are one finding (look-alikes step on silently: one per step otherwise).
    eval_mode_steps = Counter(event.cause for event in trace.events if event.code == "SF506")
    reported_causes = set()
    for event in trace.events:
        site, related = event.site, ()
        if event.code == "SF506":
            if event.cause in reported_causes:
                continue
            reported_causes.add(event.cause)
            count = eval_mode_steps[event.cause]
            steps = f"step {event.step} of {trace.cls} was" if count == 1 else \
                f"{count} steps of {trace.cls}, the first at step {event.step}, were"
            message = f"{steps} called while the optimizer was in eval mode ({_eval_mode_cause(event)})"
            notes = ("call optimizer.train() before training (next to model.train()), and after load_state_dict",)
            if event.cause is not None:  # point at the eval() that left it there
                notes = ("call optimizer.train() when evaluation ends"
                         + (" (Lightning: in on_validation_epoch_end, or on_train_batch_start)"
                            if trace.framework == "Lightning" else ""),)
                site = event.cause
                related = (Related(f"step {event.step} called here", display_path(event.site.filename),
                                   Location(event.site.row, 1)),) if event.site else ()
            rule = codes.SF506
        elif len(never_moved) < len(trace.groups):  # SF507: eval() of an optimizer that never moved says nothing
            message = (f"{trace.cls}.eval() after step {event.step} left its {event.detail} unchanged although "
                       "the optimizer has state: evaluation and checkpoints see y, not the average x")
            notes = ("check that a wrapper (accelerate, DeepSpeed) forwards eval() and that beta1 < 1",)
            rule = codes.SF507
        else:
            continue
        findings.append(Finding(
            rule=rule, message=message, filename=display_path(site.filename) if site else "",
            location=Location(site.row if site else 1, 1), end_location=Location(site.row if site else 1, 1),
            related=related, step=event.step, optimizer=trace.index, notes=notes,
        ))
    return findings


def _eval_mode_cause(event: Event | None) -> str:
    """Why the optimizer was in eval mode at an SF506 step: the eval() call that left it there, if there was one."""
    if event is None or event.cause is None:
        return "train() was never called; since schedulefree 1.3 optimizers start in eval mode"
    return f"optimizer.eval() at {event.cause} {event.detail} left it there and no train() followed"


def name_crash(result: ReplayResult) -> Crash | None:
    """Why the script failed, if it did: its exception, a failing exit status, or the signal that ended it."""
    outcome = result.outcome
    error = outcome.error
    if not outcome.started and outcome.stop_reason is None:
        how = outcome.signal or f"status {outcome.exit_code}"
        return Crash(f"the replay's child process ended ({how}) before the script started; its error is above",
                     None, None, None, internal=True)
    if error is None:
        if outcome.end == "signal":
            return Crash(f"the script's process was ended by {outcome.signal}", None, None, None)
        if outcome.end == "exit" and outcome.exit_code not in (None, 0):
            return Crash(f"the script's process exited with status {outcome.exit_code} without an exception "
                         "(os._exit() or an exit outside Python)", None, None, None)
        return None
    frames = error.frames
    site = next((Site(f, row) for f, row, _ in reversed(frames) if is_user_file(f)), None)
    raising = frames[-1] if frames else ("", 0, "")
    source = linecache.getline(raising[0], raising[1])
    optimizer = result.optimizers[error.optimizer] if error.optimizer is not None else None
    if frames and is_sfdoctor_file(raising[0]):  # not when a function it wraps raised (that has frames of its own)
        return Crash(f"{error.type} in sfdoctor's own instrumentation (a bug in sfdoctor, not in the script; "
                     f"please report it): {error.message}", None, None, site, internal=True)
    if error.is_a("SystemExit"):
        return Crash(f"the script called sys.exit({outcome.exit_code!r})", None, None, site)
    if error.is_a("ZeroDivisionError") and "weight_sum" in source:
        return Crash("ZeroDivisionError in weight/weight_sum: a step with lr 0 while weight_sum was 0",
                     codes.SF501, optimizer, site)
    if error.is_a("ZeroDivisionError") and raising[2] in ("eval", "train"):
        return Crash(f"ZeroDivisionError in optimizer.{raising[2]}(): it divides by beta1 / momentum, which is 0",
                     ZeroMomentum.info, optimizer, site)
    if "not in train mode" in error.message:
        event = next((e for e in reversed(optimizer.events) if e.code == "SF506"), None) if optimizer else None
        return Crash(f"step() was called in eval mode: {_eval_mode_cause(event)}", codes.SF506, optimizer, site)
    if error.is_a("KeyError") and any(os.path.basename(f).startswith("wrap_schedulefree") for f, _, _ in frames):
        return Crash(f"KeyError {error.message} in the base optimizer of ScheduleFreeWrapper: it shares its state "
                     "dict and this base optimizer creates its state lazily", WrapperBaseUnsupported.info,
                     optimizer, site)
    if raising[0].endswith(os.path.join("optim", "lr_scheduler.py")):
        return Crash(f"{error.type} raised by torch's LR scheduler: {error.message}", None, optimizer, site)
    return Crash(f"{error.type}: {error.message}" if error.message else error.type, None, optimizer, site)


def _crash_finding(crash: Crash, result: ReplayResult) -> Finding:
    trace = crash.optimizer or (result.optimizers[0] if result.optimizers else None)
    site = crash.site or Site(str(result.script or result.target), 1)
    if trace is None:
        return Finding(rule=crash.rule, message=f"the script crashed: {crash.description}",
                       filename=display_path(site.filename), location=Location(site.row, 1),
                       end_location=Location(site.row, 1))
    in_step = any(function == "step" for _, _, function in result.outcome.error.frames)
    return _finding(crash.rule, f"the script crashed: {crash.description}", site, trace, None,
                    trace.steps + 1 if in_step else trace.steps, result)


