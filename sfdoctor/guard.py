"""`sfdoctor.watch`: a guard for a whole training run, with the checks and the safe division of replay.

Hooks around each watched optimizer's `step()` apply the safe division and check what Python
already holds (lr, beta1, mode, a float weight_sum). Everything that lives on the device (tensor lr,
parameters, gradients) is kept as tensors and read only every `log_every` steps, so the other steps
never wait for the device. Each problem is reported once, as the `Finding` that lint and replay use.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import torch
from torch.optim import lr_scheduler

from .findings import Finding, Location, RuleInfo
from .groups import group_beta, is_schedulefree_group, lift_weight_sum, sample, unlift_weight_sum
from .output import finding_line, make_console, plural, print_full, source_line
from .replay import codes
from .replay.frames import Site, display_path, user_site

if TYPE_CHECKING:
    from typing_extensions import Self

ON_PROBLEM = ("warn", "raise", "log")
WRAPPER_CLASSES = ("ScheduleFreeWrapper", "ScheduleFreeWrapperReference")
LOW_PRECISION = (torch.bfloat16, torch.float16)
WRITTEN_KEYS = ("lr", "betas", "momentum")
METRICS = ("scheduled_lr", "weight_sum", "ckp1", "train_mode", "beta1")
logger = logging.getLogger("sfdoctor")


class SFDoctorWarning(UserWarning):
    """A finding of `sfdoctor.watch` with on_problem="warn"."""


class SFDoctorError(RuntimeError):
    """A finding of `sfdoctor.watch` with on_problem="raise"; `.finding` is the `Finding`."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding_text(finding))
        self.finding = finding


def finding_text(finding: Finding, located: bool = True) -> str:
    """The finding's line and help; `located=False` leaves out the location a warning shows itself."""
    line = finding_line(finding) if located else f"{finding.code} [{finding.severity}] {finding.message}"
    return "\n".join([line, *(f"  help: {note}" for note in finding.notes)])


@dataclass(frozen=True)
class Writer:
    """Who last assigned lr / betas / momentum of a group: an LR scheduler or user code, and where."""

    site: Site | None
    scheduler: str | None

    def __str__(self) -> str:
        where = f" at {self.site}" if self.site else ""
        if self.scheduler is not None:
            return f"{self.scheduler}{where}"
        return f"user code{where}" if self.site else "code outside the user's files"


class WatchedGroup(dict):
    """A param group that remembers who last wrote lr / betas / momentum (a cost on writes only)."""

    def __setitem__(self, key: str, value: Any) -> None:
        if key in WRITTEN_KEYS:
            self.__dict__[key] = _writer()
        super().__setitem__(key, value)

    def writer(self, key: str) -> Writer | None:
        return self.__dict__.get(key)


def _writer() -> Writer:
    """Called from WatchedGroup.__setitem__: the LR scheduler on the stack that wrote, or user code."""
    frame = sys._getframe(2)
    while frame is not None:
        scheduler = frame.f_locals.get("self")
        if isinstance(scheduler, lr_scheduler.LRScheduler):
            return Writer(user_site(frame), type(scheduler).__name__)
        frame = frame.f_back
    return Writer(user_site(sys._getframe(2)), None)


@dataclass
class GroupState:
    """What the guard keeps of one param group between steps."""

    last_lr: Any
    last_beta: Any
    window: list[torch.Tensor]  # sampled parameters at the start of the check window (SF503)
    lift: Any = 0.0
    weight_sum_before: Any = 0.0  # lifted
    ckp1: Any = 0.0
    probe: tuple | None = None  # (params, gradient norms, sampled params) at a checking step (SF508)


@dataclass
class Watched:
    index: int
    optimizer: Any  # the ScheduleFree optimizer itself, under any wrappers
    is_wrapper: bool
    groups: list[GroupState] = field(default_factory=list)
    steps: int = 0
    window_start: int = 0

    @property
    def name(self) -> str:
        return f"{type(self.optimizer).__name__} (optimizer {self.index})"

    def train_mode(self) -> bool | None:
        if self.is_wrapper:
            return self.optimizer.train_mode
        return self.optimizer.param_groups[0].get("train_mode")  # None: closure classes have no mode

    def beta(self, group: dict) -> Any:
        return self.optimizer.momentum if self.is_wrapper else group_beta(group)


def find_schedulefree(optimizer: Any) -> Any:
    """The ScheduleFree optimizer under wrappers: accelerate's AcceleratedOptimizer (`.optimizer`),
    Lightning's LightningOptimizer (`._optimizer`); their param_groups are the inner optimizer's."""
    found = optimizer
    while not _is_schedulefree(found):
        found = _inner(found)
        if found is None:
            raise TypeError(f"sfdoctor.watch: {type(optimizer).__name__} is not a ScheduleFree optimizer "
                            "and wraps none")
    return found


def _is_schedulefree(optimizer: Any) -> bool:
    if type(optimizer).__name__ in WRAPPER_CLASSES:
        return True
    groups = getattr(optimizer, "param_groups", [])
    return _inner(optimizer) is None and any(is_schedulefree_group(group) for group in groups)


def _inner(optimizer: Any) -> Any:
    return getattr(optimizer, "optimizer", None) or getattr(optimizer, "_optimizer", None)


def wraps_schedulefree(optimizer: Any) -> bool:
    try:
        find_schedulefree(optimizer)
    except TypeError:
        return False
    return True


def scheduled_lr(group: dict) -> Any:
    return group.get("scheduled_lr", group["lr"] * group.get("d", 1.0))


def as_float(value: Any) -> float:
    return float(value.item() if isinstance(value, torch.Tensor) else value)


class Guard:
    """Watches ScheduleFree optimizers for a whole run; see `sfdoctor.watch`."""

    def __init__(self, optimizers: list[Any], on_problem: str = "warn", log_every: int = 50,
                 safe_division: bool = True, logger: Any = None) -> None:
        if on_problem not in ON_PROBLEM:
            raise ValueError(f"on_problem must be one of {', '.join(ON_PROBLEM)}, not {on_problem!r}")
        if log_every < 1:
            raise ValueError(f"log_every must be at least 1, not {log_every}")
        self.on_problem = on_problem
        self.log_every = log_every
        self.safe_division = safe_division
        self.findings: list[Finding] = []
        self._sink = metrics_sink(logger)
        self._site = user_site()  # findings with no better line point at the watch() call
        self._reported: set[tuple] = set()
        self._deferred: list[tuple] = []  # (condition tensor, report arguments) read at the next check
        self._undo: list[Callable[[], None]] = []
        self._watched = [self._watch(index, find_schedulefree(o)) for index, o in enumerate(optimizers)]
        self._patch_torch_save()

    # -- public ------------------------------------------------------------------------------------

    def report(self, stream: IO[str] | None = None) -> None:
        """Print the findings so far as `sfdoctor lint` and `replay` do (the `full` format)."""
        console = make_console(stream)
        print_full(self.findings, console)
        steps = ", ".join(f"{w.name}: {plural(w.steps, 'step')}" for w in self._watched)
        if not self.findings:
            console.print(f"[bold green]No problems found[/] ({steps}).")
            return
        errors = sum(1 for f in self.findings if f.severity == "error")
        console.print(f"Found {plural(len(self.findings), 'finding')} ({plural(errors, 'error')}, "
                      f"{plural(len(self.findings) - errors, 'warning')}) in {steps}.")

    def metrics(self) -> dict[str, float]:
        """`sf/<name>` per optimizer and group as Python floats (reads the device: call it when logging)."""
        return {key: value for w in self._watched for key, value in self._metrics_of(w).items()}

    def _metrics_of(self, w: Watched) -> dict[str, float]:
        metrics = {}
        groups = w.optimizer.param_groups
        for index, (state, group) in enumerate(zip(w.groups, groups)):
            suffix = (f"/opt{w.index}" if len(self._watched) > 1 else "") + (f"/group{index}" if len(groups) > 1 else "")
            values = {
                "scheduled_lr": scheduled_lr(group), "weight_sum": group.get("weight_sum", 0.0),
                "ckp1": state.ckp1, "train_mode": w.train_mode(), "beta1": w.beta(group),
            }
            metrics.update({f"sf/{name}{suffix}": as_float(values[name]) for name in METRICS
                            if values[name] is not None})
        return metrics

    def close(self) -> None:
        """Remove every hook and patch; the findings stay."""
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- installing --------------------------------------------------------------------------------

    def _watch(self, index: int, optimizer: Any) -> Watched:
        w = Watched(index, optimizer, type(optimizer).__name__ in WRAPPER_CLASSES)
        self._track(w)
        if w.is_wrapper:  # not a torch Optimizer: no step hooks, so its step() is wrapped on the instance
            step = optimizer.step

            def guarded_step(closure: Callable | None = None) -> Any:
                self._before(w)
                result = step(closure)
                self._after(w)
                return result
            optimizer.step = guarded_step
            self._undo.append(lambda: vars(optimizer).pop("step", None))
        else:
            handles = [optimizer.register_step_pre_hook(lambda *_: self._before(w)),
                       optimizer.register_step_post_hook(lambda *_: self._after(w))]
            self._undo += [handle.remove for handle in handles]
        self._undo.append(lambda: self._untrack(w))
        return w

    def _track(self, w: Watched) -> None:
        """Make every group a WatchedGroup (new ones come from add_param_group and load_state_dict)."""
        groups = w.optimizer.param_groups
        for index, group in enumerate(groups):
            if type(group) is not WatchedGroup:
                groups[index] = WatchedGroup(group)
        for group in groups[len(w.groups):]:
            w.groups.append(GroupState(group["lr"], w.beta(group), _samples(group["params"])))

    def _untrack(self, w: Watched) -> None:
        self._undo_lifts(w)
        groups = w.optimizer.param_groups
        for index, group in enumerate(groups):
            if type(group) is WatchedGroup:
                groups[index] = dict(group)

    def _patch_torch_save(self) -> None:
        original = torch.save

        def save(obj: Any, *args: Any, **kwargs: Any) -> Any:
            self._check_save(obj)
            return original(obj, *args, **kwargs)

        def restore() -> None:
            if torch.save is save:  # a guard opened later and still active keeps its own patch
                torch.save = original
        torch.save = save
        self._undo.append(restore)

    # -- steps -------------------------------------------------------------------------------------

    def _before(self, w: Watched) -> None:
        self._undo_lifts(w)  # a step that raised left its lift behind
        self._track(w)
        step = w.steps + 1
        groups = w.optimizer.param_groups
        if w.train_mode() is False:
            self._report(codes.SF506, w, None, step,
                         f"step {step} of {w.name} was called while the optimizer was in eval mode (since "
                         "schedulefree 1.3 optimizers start in eval mode)",
                         ("call optimizer.train() before training (next to model.train()) and after load_state_dict",))
        for index, (state, group) in enumerate(zip(w.groups, groups)):
            lr, beta = group["lr"], w.beta(group)
            if w.steps and _changed(lr, state.last_lr):
                self._changed(codes.SF504, w, index, step, "lr", state.last_lr, lr, group.writer("lr"),
                              "remove the scheduler and its step() calls; for a warm-up pass warmup_steps=N "
                              "to the optimizer")
            if w.steps and _changed(beta, state.last_beta):
                self._changed(codes.SF505, w, index, step, "beta1 / momentum", state.last_beta, beta,
                              group.writer("betas" if "betas" in group else "momentum"),
                              "keep beta1 / momentum fixed: cycle_momentum=False on OneCycleLR / CyclicLR, "
                              "no writes to group['betas'] or group['momentum']")
            state.last_lr, state.last_beta = lr, beta
        checking = step % self.log_every == 0
        for state, group in zip(w.groups, groups):  # after the checks: a raised finding leaves no lift
            state.lift = lift_weight_sum(group) if self.safe_division else 0.0
            state.weight_sum_before = group.get("weight_sum", 0.0)
            state.probe = _probe(group) if checking else None

    def _undo_lifts(self, w: Watched) -> None:
        for state, group in zip(w.groups, w.optimizer.param_groups):
            if isinstance(state.lift, torch.Tensor) or state.lift:
                group["weight_sum"] = unlift_weight_sum(group.get("weight_sum", 0.0), state.lift)
                state.lift = 0.0

    @torch.no_grad()
    def _after(self, w: Watched) -> None:
        w.steps += 1
        step = w.steps
        groups = w.optimizer.param_groups
        for state, group in zip(w.groups, groups):
            weight_sum = group.get("weight_sum", 0.0)
            weight = weight_sum - state.weight_sum_before
            state.ckp1 = weight / weight_sum if isinstance(weight_sum, torch.Tensor) or weight_sum else 0.0
            group["weight_sum"] = unlift_weight_sum(weight_sum, state.lift)
            state.lift = 0.0
        for index, (state, group) in enumerate(zip(w.groups, groups)):
            self._check_step(w, index, state, group, step)
        if step == 1:
            self._check_precision(w)
        if step % self.log_every == 0:
            self._check_window(w, step)

    def _check_step(self, w: Watched, index: int, state: GroupState, group: dict, step: int) -> None:
        weight_sum, lr = group["weight_sum"], scheduled_lr(group)
        zero_sum = weight_sum == 0
        if "silent_sgd_phase" in group:  # RAdamScheduleFree: lr 0 on its first steps by design
            zero_sum = zero_sum & (group["lr"] == 0)
        self._check(zero_sum, codes.SF501, w, index, step, lambda: (
            f"group {index} had weight_sum 0 at step {step}: weight/weight_sum was 0/0, {self._zero_division(w, group)}; "
            f"{_lr_cause(w, group)}"),
            ("give the group a positive lr; to freeze parameters use requires_grad_(False) or leave them out",))
        self._check(_not_finite(state.ckp1), codes.SF502, w, index, step, lambda: (
            f"group {index} at step {step}: ckp1 was {as_float(state.ckp1)} (lr {group['lr']}, weight_sum "
            f"{as_float(weight_sum)}); {_lr_cause(w, group)}"))
        self._check(lr < 0, codes.SF510, w, index, step, lambda: (
            f"group {index} stepped with a negative lr ({as_float(lr)}) at step {step}; {_lr_cause(w, group)}"),
            ("give a positive lr",))

    def _zero_division(self, w: Watched, group: dict) -> str:
        if w.is_wrapper:
            upstream = f"which raises ZeroDivisionError in {type(w.optimizer).__name__} (no version guards it)"
        elif isinstance(group["lr"], torch.Tensor):
            upstream = "which with a tensor lr writes NaN into every parameter of the group"
        else:
            upstream = "a ZeroDivisionError in schedulefree < 1.2.2 and 1.2.3, ckp1 = 0 (no learning) in later releases"
        return upstream + ("; the guard divided safely and the run went on" if self.safe_division
                           else "; safe_division is off")

    def _check_precision(self, w: Watched) -> None:
        for index, group in enumerate(w.optimizer.param_groups):
            tensors = [p for p in group["params"] if p.grad is not None]
            tensors += [w.optimizer.state[p]["z"] for p in tensors if "z" in w.optimizer.state.get(p, {})]
            low = [t.dtype for t in tensors if t.dtype in LOW_PRECISION]
            if low:
                self._report(codes.SF512, w, index, 1,
                             f"group {index}: {len(low)} parameters or z buffers are {low[0]}: the average x "
                             "barely moves in low precision", ("keep fp32 parameters (autocast for speed)",))

    def _check_window(self, w: Watched, step: int) -> None:
        """Every log_every steps: the checks that read the device, then the metrics."""
        self._flush_deferred()
        for index, (state, group) in enumerate(zip(w.groups, w.optimizer.param_groups)):
            if state.probe is not None:
                self._check_zero_grads(w, index, state.probe, step)
            trained = [(p, before) for p, before in zip(group["params"], state.window)
                       if p.grad is not None and sample(p).shape == before.shape]
            # RAdamScheduleFree does not move in its first steps by design (weight_sum stays 0 there)
            rectifying = "silent_sgd_phase" in group and group["weight_sum"] == 0 and group["lr"] != 0
            if trained and not rectifying and not _moved([sample(p) for p, _ in trained], [before for _, before in trained]).any():
                self._report(codes.SF503, w, index, step,
                             f"group {index} did not move in steps {w.window_start + 1}-{step} (scheduled lr "
                             f"{as_float(scheduled_lr(group))}): the run does not learn; {_lr_cause(w, group)}",
                             ("give the group a positive lr; to freeze parameters use requires_grad_(False)",))
            if group["params"] and not torch.stack(torch._foreach_norm(group["params"])).isfinite().all():
                self._report(codes.SF502, w, index, step,
                             f"group {index}: parameters became NaN or infinite by step {step} (lr {group['lr']}, "
                             f"weight_sum {as_float(group.get('weight_sum', 0.0))}); {_lr_cause(w, group)}")
            state.window = _samples(group["params"])
        w.window_start = step
        self._compare_ranks(w, step)
        if self._sink is not None and _rank() == 0:
            self._sink(self._metrics_of(w), step)

    def _check_zero_grads(self, w: Watched, index: int, probe: tuple, step: int) -> None:
        params, grad_norms, before = probe
        moved = int(((grad_norms == 0) & (_moved([sample(p) for p in params], before))).sum())
        if moved:
            self._report(codes.SF508, w, index, step,
                         f"group {index}: {moved} parameters whose gradient was all zeros moved at step {step}: "
                         "zeroing gradients does not freeze parameters under ScheduleFree (y keeps moving "
                         "toward z, weight decay still acts)",
                         ("freeze with p.requires_grad_(False) or set p.grad = None; or leave the parameters out",))

    def _compare_ranks(self, w: Watched, step: int) -> None:
        """SF509: one all_gather of (lr, weight_sum, mode) per group at the checking step of every rank."""
        import torch.distributed as dist

        from .replay.distributed import RANK_FIX, rank_divergence

        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        mode = w.train_mode()
        values = torch.tensor([[as_float(scheduled_lr(g)), as_float(g.get("weight_sum", 0.0)),
                                -1.0 if mode is None else float(mode)] for g in w.optimizer.param_groups],
                              dtype=torch.float64, device=device)
        gathered = [torch.empty_like(values) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, values)
        for group in range(len(values)):
            rows = {rank: row[group].tolist() for rank, row in enumerate(gathered)}
            divergence = rank_divergence({rank: {"scheduled_lr": lr, "weight_sum": weight_sum,
                                                 **({"train_mode": mode == 1} if mode >= 0 else {})}
                                          for rank, (lr, weight_sum, mode) in rows.items()})
            if divergence is not None:
                self._report(codes.SF509, w, group, step, f"group {group} at step {step}: the ranks disagree on "
                             f"{divergence}: they train different models", (RANK_FIX,))
                return

    # -- saves -------------------------------------------------------------------------------------

    def _check_save(self, obj: Any) -> None:
        in_train = [w for w in self._watched if w.steps and w.train_mode()]
        if not in_train:
            return
        saved = _tensor_pointers(obj)
        for w in in_train:
            if any(p.numel() and p.data_ptr() in saved for group in w.optimizer.param_groups for p in group["params"]):
                self.saved_in_train_mode(w, "torch.save")

    def saved_in_train_mode(self, w: Watched | None = None, what: str = "a checkpoint") -> None:
        """SF513 for `what`, saved now; the callbacks call it for their frameworks' checkpoints."""
        for watched in [w] if w else self._watched:
            if watched.steps and watched.train_mode():
                self._report(codes.SF513, watched, None, watched.steps,
                             f"{what} at step {watched.steps} saved the model while {watched.name} was in train "
                             "mode: the checkpoint holds y, not the averaged x",
                             ("call optimizer.eval() before saving and optimizer.train() after it",))

    # -- findings ----------------------------------------------------------------------------------

    def _changed(self, rule: RuleInfo, w: Watched, index: int, step: int, label: str, before: Any, after: Any,
                 writer: Writer | None, fix: str) -> None:
        who = writer or "code outside the user's files"
        self._report(rule, w, index, step,
                     f"group {index} {label} changed between steps by {who}: {before} -> {after} before step {step}",
                     (fix,), writer.site if writer else None)

    def _check(self, condition: Any, rule: RuleInfo, w: Watched, index: int, step: int,
               message: Callable[[], str], notes: tuple[str, ...] = ()) -> None:
        """Report when `condition` holds; a tensor condition waits for the next check to be read."""
        if (rule.code, w.index, index) in self._reported:
            return
        if isinstance(condition, torch.Tensor):
            self._deferred.append((condition, rule, w, index, step, message, notes))
        elif condition:
            self._report(rule, w, index, step, message(), notes)

    def _flush_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        for condition, rule, w, index, step, message, notes in deferred:
            if (rule.code, w.index, index) not in self._reported and bool(condition):
                self._report(rule, w, index, step, message(), notes)

    def _report(self, rule: RuleInfo, w: Watched, group: int | None, step: int, message: str,
                notes: tuple[str, ...] = (), site: Site | None = None) -> None:
        key = (rule.code, w.index, group)
        if key in self._reported:
            return
        self._reported.add(key)
        site = site or user_site() or self._site
        filename = display_path(site.filename) if site else "<unknown>"
        row = site.row if site else 1
        end = len(source_line(site.filename, row).rstrip("\n")) + 1 if site else 1
        finding = Finding(rule=rule, message=message, filename=filename, location=Location(row, 1),
                          end_location=Location(row, end), step=step, optimizer=w.index, group=group, notes=notes)
        self.findings.append(finding)
        if self.on_problem == "raise":
            raise SFDoctorError(finding)
        if self.on_problem == "warn":  # shown at the user's line, like a warning their code raised
            warnings.warn_explicit(finding_text(finding, located=False), SFDoctorWarning, filename, row)
        else:
            logger.log(logging.ERROR if finding.severity == "error" else logging.WARNING, finding_text(finding))


# -- helpers ---------------------------------------------------------------------------------------


def _changed(value: Any, last: Any) -> bool:
    # tensors are not compared: that would wait for the device on every step
    return value is not last and not isinstance(value, torch.Tensor) and value != last


def _not_finite(value: Any) -> Any:
    return ~torch.isfinite(value) if isinstance(value, torch.Tensor) else not math.isfinite(value)


def _lr_cause(w: Watched, group: WatchedGroup) -> str:
    writer = group.writer("lr")
    if writer is None:
        return f"{w.name} has lr={group['lr']} for this group since sfdoctor.watch() was called"
    return f"{writer} last set lr to {group['lr']}"


def _samples(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [sample(p).clone() for p in params]


def _probe(group: dict) -> tuple | None:
    params = [p for p in group["params"] if p.grad is not None]
    if not params:
        return None
    return params, torch.stack(torch._foreach_norm([p.grad for p in params])), _samples(params)


def _moved(now: list[torch.Tensor], before: list[torch.Tensor]) -> torch.Tensor:
    """Per parameter: did its sampled elements change (a tensor of bools, on the device)."""
    return torch.stack(torch._foreach_norm(torch._foreach_sub(now, before))) > 0


def _tensor_pointers(obj: Any, depth: int = 4) -> set[int]:
    """Data pointers of the tensors in a saved object: a state dict, a checkpoint dict, a module."""
    if isinstance(obj, torch.Tensor):
        return {obj.data_ptr()}
    if isinstance(obj, torch.nn.Module):
        return {p.data_ptr() for p in obj.parameters()}
    if depth == 0:
        return set()
    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
    return set().union(*(_tensor_pointers(item, depth - 1) for item in items))


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def metrics_sink(target: Any) -> Callable[[dict[str, float], int], None] | None:
    """`logger=`: None (no metrics), a callable taking (metrics, step), or a CSV file path."""
    if target is None or callable(target):
        return target
    if isinstance(target, (str, os.PathLike)):
        return CsvLog(target)
    raise TypeError(f"logger must be a callable or a CSV file path, not {type(target).__name__}")


class CsvLog:
    """Appends one row per logging step. The columns are those of the first row: a param group added
    later is left out of the file (a callable logger gets it)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = path
        self.columns: list[str] | None = None

    def __call__(self, metrics: dict[str, float], step: int) -> None:
        row = {"step": step, **metrics}
        with open(self.path, "a" if self.columns else "w", newline="", encoding="utf-8") as file:
            if self.columns is None:
                self.columns = list(row)
                csv.DictWriter(file, self.columns).writeheader()
            csv.DictWriter(file, self.columns, extrasaction="ignore").writerow(row)
