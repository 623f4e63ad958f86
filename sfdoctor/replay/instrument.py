"""Hooks and patches that watch every ScheduleFree optimizer while the user's script runs.

The real upstream `step()` always runs. Around it the instrumentation records each param group,
applies the safe division (`sfdoctor.groups.lift_weight_sum`) and stops the script after the
requested number of steps. The script's objects keep their types (param groups stay plain dicts,
which torch.compile requires), and every hook and patch runs outside torch.compile's tracing
(`torch.compiler.disable`).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
from torch.optim import lr_scheduler
from torch.optim.optimizer import (
    Optimizer,
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

from ..groups import group_beta, is_schedulefree_group, lift_weight_sum, sample, unlift_weight_sum
from .frames import Site, framework_on_stack, user_frame, user_site
from .record import Change, Event, GroupTrace, OptimizerTrace, SchedulerTrace, Writer

# Attributes under which framework wrappers hold the optimizer: accelerate's AcceleratedOptimizer (and so the
# Trainer's), Lightning's LightningOptimizer.
WRAPPED_OPTIMIZER_ATTRIBUTES = ("optimizer", "_optimizer")


class ReplayStop(BaseException):
    """Ends the script early. Not an Exception, so `except Exception:` in the script cannot swallow it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "steps", or why the replay's child process was told to stop


def differs(before: Any, after: Any) -> bool:
    """A changed lr or beta1; tensors are not compared: that would synchronise with the device."""
    tensors = isinstance(before, torch.Tensor) or isinstance(after, torch.Tensor)
    return before is not after and not tensors and before != after


def scalar_copy(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, torch.Tensor) else value


@dataclass
class _PendingGroup:
    """What `_begin_step` saw, for `_finish_step` to compare with."""

    trace: GroupTrace
    group: dict
    record: dict
    weight_sum_before: Any  # after the lift
    lift: Any
    params: list[torch.Tensor]
    snapshots: list[torch.Tensor]
    grad_norms: torch.Tensor | None


class Instrumentation:
    def __init__(self, max_steps: int, on_step: Callable[[int], None] | None = None) -> None:
        self.max_steps = max_steps
        self.on_step = on_step  # called after every step of every optimizer with the replay's step count
        self.optimizers: list[OptimizerTrace] = []
        self.stop_reason: str | None = None
        self.steps = 0  # the replay's step count, which --steps limits (see _count_step)
        self.pacer: OptimizerTrace | None = None
        self._steps_since_pacer: dict[int, int] = {}  # optimizer index -> its steps since the pacer's last one
        self._traces: dict[int, OptimizerTrace] = {}
        self._objects: list[Any] = []  # keeps traced objects alive so their ids stay unique
        self._wrapped_bases: dict[int, OptimizerTrace] = {}
        self._schedulers: dict[int, tuple[OptimizerTrace, SchedulerTrace]] = {}  # by id() of the scheduler
        # The last scheduler that changed lr / beta1 of a group, and the value it left: (id(group), key) -> both.
        self._writers: dict[tuple[int, str], tuple[Writer, Any]] = {}
        self._pending: dict[int, list[_PendingGroup]] = {}  # by id() of the trace
        # Optimizers with a weight_sum entry but not schedulefree's keys, until their first step shows a z buffer.
        self._look_alikes: dict[int, OptimizerTrace] = {}
        self._snapshots: dict[int, torch.Tensor] = {}
        self._last_loss: torch.Tensor | None = None
        self._patches: list[tuple[type, str, Any]] = []
        self._handles: list[Any] = []
        self._config_sites: dict[int, Site | None] = {}  # id() of a TrainingArguments or Trainer -> user's line
        self._last_eval: dict[int, tuple[Site | None, str, int]] = {}  # optimizer index -> (site, "in f()", step)
        self._import_watcher = _ImportWatcher({
            "transformers.training_args": lambda module: self._patch(
                module.TrainingArguments, "__post_init__", self._training_arguments_init),
            "transformers.trainer": lambda module: self._patch(module.Trainer, "__init__", self._trainer_init),
        })

    # -- installing -------------------------------------------------------------------------

    def install(self) -> None:
        self._handles = [
            register_optimizer_step_pre_hook(torch.compiler.disable(self._pre_step_hook)),
            register_optimizer_step_post_hook(torch.compiler.disable(self._post_step_hook)),
        ]
        self._patch(Optimizer, "__init__", self._optimizer_init)
        self._patch(Optimizer, "load_state_dict", self._load_state_dict)
        sys.meta_path.insert(0, self._import_watcher)
        self._patch(lr_scheduler.LRScheduler, "__init__", self._scheduler_init)
        self._patch(torch.Tensor, "backward", self._backward)
        try:
            import schedulefree
        except ImportError:
            return
        for name in ("ScheduleFreeWrapper", "ScheduleFreeWrapperReference"):
            wrapper_class = getattr(schedulefree, name, None)
            if wrapper_class is not None:
                self._patch(wrapper_class, "__init__", self._wrapper_init)
                self._patch(wrapper_class, "step", self._wrapper_step)
                self._patch_eval(wrapper_class)

    def uninstall(self) -> None:
        for handle in self._handles:
            handle.remove()
        if self._import_watcher in sys.meta_path:
            sys.meta_path.remove(self._import_watcher)
        for owner, name, original in reversed(self._patches):
            if original is None:
                delattr(owner, name)  # it was inherited: let the base class's method show through again
            else:
                setattr(owner, name, original)
        self._patches.clear()
        for trace in self.optimizers:
            self._abort_step(trace)
            for group in trace.groups:
                note_moved(group)
                group.initial = {}  # free the copies

    def _patch(self, owner: type, name: str, make: Callable[[Any], Any]) -> None:
        self._patches.append((owner, name, owner.__dict__.get(name)))
        setattr(owner, name, torch.compiler.disable(make(getattr(owner, name))))

    def _patch_eval(self, cls: type) -> None:
        if not any(owner is cls and name == "eval" for owner, name, _ in self._patches):
            self._patch(cls, "eval", self._eval)

    # -- registering optimizers and schedulers ------------------------------------------------

    def _register(self, optimizer: Any, is_wrapper: bool, created_at: Any) -> OptimizerTrace:
        trace = self._new_trace(optimizer, is_wrapper, created_at)
        self._adopt(optimizer, trace)
        return trace

    def _new_trace(self, optimizer: Any, is_wrapper: bool, created_at: Any) -> OptimizerTrace:
        trace = OptimizerTrace(-1, type(optimizer).__name__, created_at, is_wrapper, id(optimizer))
        self._objects.append(optimizer)
        self._track_groups(trace, optimizer.param_groups)
        return trace

    def _adopt(self, optimizer: Any, trace: OptimizerTrace) -> None:
        """From now on the trace is reported (the parent knows optimizers by their index)."""
        trace.index = len(self.optimizers)
        self.optimizers.append(trace)
        self._traces[id(optimizer)] = trace
        if hasattr(type(optimizer), "eval"):
            self._patch_eval(type(optimizer))

    def _confirm_look_alike(self, optimizer: Any) -> OptimizerTrace | None:
        """After its first step: an optimizer with a weight_sum entry is a ScheduleFree look-alike if it keeps a
        `z` buffer (pytorch_optimizer's classes create it in step()). Its first step was recorded meanwhile."""
        trace = self._look_alikes.pop(id(optimizer))
        if not any("z" in optimizer.state.get(p, {}) for group in optimizer.param_groups for p in group["params"]):
            self._abort_step(trace)  # not ScheduleFree: leave it as it was, and never look again
            return None
        trace.look_alike = True
        self._adopt(optimizer, trace)
        return trace

    def _track_groups(self, trace: OptimizerTrace, groups: list[dict]) -> None:
        """A GroupTrace for every new group (they come from add_param_group / load_state_dict too)."""
        for group in groups[len(trace.groups):]:
            trace.groups.append(GroupTrace(
                index=len(trace.groups),
                initial_lr=scalar_copy(group["lr"]),
                builtin_zero_lr_phase="silent_sgd_phase" in group,
                last_lr=group["lr"],
                last_beta=group_beta(group),
            ))
            trace.tensor_lr = trace.tensor_lr or isinstance(group["lr"], torch.Tensor)

    def _owner(self, optimizer: Any) -> OptimizerTrace | None:
        """The trace of `optimizer`, or of the one a framework wrapper holds (its schedulers and eval() count)."""
        for _ in range(4):  # a wrapper of a wrapper at most, in practice
            trace = (self._traces.get(id(optimizer)) or self._wrapped_bases.get(id(optimizer))
                     or self._look_alikes.get(id(optimizer)))
            if trace is not None:
                return trace
            optimizer = next((vars(optimizer)[name] for name in WRAPPED_OPTIMIZER_ATTRIBUTES
                              if name in getattr(optimizer, "__dict__", {})), None)
        return None

    def _optimizer_init(self, original: Callable) -> Callable:
        def __init__(optimizer: Optimizer, *args: Any, **kwargs: Any) -> None:
            original(optimizer, *args, **kwargs)
            if "weight_sum" in optimizer.defaults and not is_schedulefree_group(optimizer.defaults):
                self._look_alikes[id(optimizer)] = self._new_trace(optimizer, is_wrapper=False, created_at=user_site())
            if is_schedulefree_group(optimizer.defaults):
                trace = self._register(optimizer, is_wrapper=False, created_at=user_site())
                trace.framework = framework_on_stack()
                trace.configured_at = self._configured_at() if trace.framework == "Trainer" else None
        return __init__

    def _configured_at(self) -> Site | None:
        """The user's TrainingArguments(...) / Trainer(...) line of the Trainer whose method is running, if any."""
        frame = sys._getframe(1)
        while frame is not None:
            owner = frame.f_locals.get("self")
            if id(owner) in self._config_sites:
                return self._config_sites[id(owner)]
            frame = frame.f_back
        return None

    def _training_arguments_init(self, original: Callable) -> Callable:
        def __post_init__(arguments: Any, *args: Any, **kwargs: Any) -> None:
            self._config_sites[id(arguments)] = user_site()
            self._objects.append(arguments)
            original(arguments, *args, **kwargs)
        return __post_init__

    def _trainer_init(self, original: Callable) -> Callable:
        def __init__(trainer: Any, *args: Any, **kwargs: Any) -> None:
            site = user_site()
            original(trainer, *args, **kwargs)
            self._config_sites[id(trainer)] = self._config_sites.get(id(getattr(trainer, "args", None))) or site
            self._objects.append(trainer)
        return __init__

    def _load_state_dict(self, original: Callable) -> Callable:
        def load_state_dict(optimizer: Optimizer, *args: Any, **kwargs: Any) -> None:
            trace = self._traces.get(id(optimizer))
            old_groups = list(optimizer.param_groups)
            original(optimizer, *args, **kwargs)
            if trace is None:
                return
            # torch replaces the group dicts: the scheduler that wrote a value stays its author.
            for old, new in zip(old_groups, optimizer.param_groups):
                for key in ("lr", "beta1"):
                    if (id(old), key) in self._writers:
                        self._writers[(id(new), key)] = self._writers.pop((id(old), key))
            trace.framework = trace.framework or framework_on_stack()  # accelerate's prepare() loads it
        return load_state_dict

    def _wrapper_init(self, original: Callable) -> Callable:
        def __init__(wrapper: Any, base: Optimizer, *args: Any, **kwargs: Any) -> None:
            original(wrapper, base, *args, **kwargs)
            self._wrapped_bases[id(base)] = self._register(wrapper, is_wrapper=True, created_at=user_site())
        return __init__

    def _scheduler_init(self, original: Callable) -> Callable:
        def __init__(scheduler: Any, optimizer: Any, *args: Any, **kwargs: Any) -> None:
            owner = self._owner(optimizer)
            if owner is None:
                return original(scheduler, optimizer, *args, **kwargs)
            trace = SchedulerTrace(
                index=len(owner.schedulers),
                cls=type(scheduler).__name__,
                created_at=user_site(),
                lr_before=[scalar_copy(group["lr"]) for group in optimizer.param_groups],
            )
            owner.schedulers.append(trace)
            self._schedulers[id(scheduler)] = (owner, trace)
            self._objects.append(scheduler)
            self._patch_scheduler_step(type(scheduler))
            original(scheduler, optimizer, *args, **kwargs)
            trace.lr_after = [scalar_copy(group["lr"]) for group in optimizer.param_groups]
            # Compared with the values the optimizer had, not at this call: a subclass's constructor body
            # (OneCycleLR sets betas) runs before LRScheduler.__init__.
            known = [(group.last_lr, group.last_beta) for group in owner.groups]
            self._note_writes(optimizer.param_groups, known, Writer(
                trace.created_at, trace.cls, trace.created_at, (owner.index, trace.index), in_constructor=True))
        return __init__

    def _patch_scheduler_step(self, cls: type) -> None:
        if any(owner is cls and name == "step" for owner, name, _ in self._patches):
            return

        def make(original: Callable) -> Callable:
            def step(scheduler: Any, *args: Any, **kwargs: Any) -> Any:
                owner, trace = self._schedulers.get(id(scheduler), (None, None))
                # trace.lr_after is set once the constructor (which calls step() itself) returned.
                if trace is None or not trace.lr_after:
                    return original(scheduler, *args, **kwargs)
                trace.steps += 1
                trace.last_step_at = site = user_site()
                groups = scheduler.optimizer.param_groups
                before = [(group["lr"], group_beta(group)) for group in groups]
                result = original(scheduler, *args, **kwargs)
                self._note_writes(groups, before, Writer(site, trace.cls, trace.created_at,
                                                         (owner.index, trace.index)))
                return result
            return step
        self._patch(cls, "step", make)

    def _note_writes(self, groups: list[dict], before: list[tuple[Any, Any]], writer: Writer) -> None:
        """Remember `writer` as the author of every lr / beta1 that differs from `before` (a scheduler's call)."""
        for group, (lr, beta) in zip(groups, before):
            for key, old, new in (("lr", lr, group["lr"]), ("beta1", beta, group_beta(group))):
                if differs(old, new):
                    self._writers[(id(group), key)] = (writer, new)

    # -- steps --------------------------------------------------------------------------------

    def _pre_step_hook(self, optimizer: Optimizer, args: tuple, kwargs: dict) -> tuple | None:
        if id(optimizer) in self._wrapped_bases:
            return None  # the wrapper's own step() records it
        trace = self._traces.get(id(optimizer)) or self._look_alikes.get(id(optimizer))
        if trace is None:
            if not any(is_schedulefree_group(group) for group in optimizer.param_groups):
                return None
            trace = self._register(optimizer, is_wrapper=False, created_at=None)
        train_mode = optimizer.param_groups[0].get("train_mode")
        self._begin_step(trace, optimizer.param_groups, train_mode, [group_beta(g) for g in optimizer.param_groups])
        if kwargs.get("closure") is not None:
            return args, {**kwargs, "closure": self._capturing(kwargs["closure"])}
        if len(args) > 1 and args[1] is not None:
            return (args[0], self._capturing(args[1]), *args[2:]), kwargs
        return None

    def _post_step_hook(self, optimizer: Optimizer, args: tuple, kwargs: dict) -> None:
        trace = self._traces.get(id(optimizer))
        if trace is None and id(optimizer) in self._look_alikes:
            trace = self._confirm_look_alike(optimizer)
        if trace is not None and id(trace) in self._pending:
            self._finish_step(trace)

    def _wrapper_step(self, original: Callable) -> Callable:
        def step(wrapper: Any, closure: Callable | None = None) -> Any:
            trace = self._traces.get(id(wrapper))
            if trace is None:
                return original(wrapper, closure)
            groups = wrapper.param_groups
            self._begin_step(trace, groups, wrapper.train_mode, [wrapper.momentum] * len(groups))
            try:
                loss = original(wrapper, self._capturing(closure))
            except BaseException:
                self._abort_step(trace)
                raise
            self._finish_step(trace)
            return loss
        return step

    def _check_stop(self) -> None:
        if self.stop_reason is not None:
            raise ReplayStop(self.stop_reason)  # again, if the script swallowed the first one

    @torch.no_grad()
    def _begin_step(self, trace: OptimizerTrace, groups: list[dict], train_mode: Any, betas: list) -> None:
        self._check_stop()
        self._abort_step(trace)  # the previous step raised before its post hook
        self._track_groups(trace, groups)
        step = trace.steps + 1
        site = user_site()
        trace.step_sites.append(site)
        if train_mode is False:
            eval_site, where, after = self._last_eval.get(trace.index, (None, "", 0))
            when = f"after step {after}" if after else "before the first step"
            trace.events.append(Event("SF506", step, site, f"{where}{when}", eval_site))
        pending = []
        for group, group_trace, beta in zip(groups, trace.groups, betas):
            self._note_change(group_trace, group, step, "lr", group["lr"], group_trace.last_lr)
            self._note_change(group_trace, group, step, "beta1", beta, group_trace.last_beta)
            group_trace.last_lr, group_trace.last_beta = group["lr"], beta
            params = [p for p in group["params"] if p.grad is not None]
            self._keep_initial(group_trace, params)
            lift = lift_weight_sum(group)
            record = {
                "step": step, "k": group.get("k", 0), "lr": scalar_copy(group["lr"]),
                "train_mode": train_mode, "beta1": beta, "params_with_grad": len(params),
            }
            pending.append(_PendingGroup(
                group_trace, group, record, group.get("weight_sum", 0.0), lift, params,
                self._snapshot([sample(p) for p in params]),
                torch.stack(torch._foreach_norm([p.grad for p in params])) if params else None,
            ))
        self._pending[id(trace)] = pending

    def _note_change(self, trace: GroupTrace, group: dict, step: int, key: str, value: Any, last: Any) -> None:
        if not differs(last, value):
            return
        writer, written = self._writers.get((id(group), key), (None, None))
        # Code other than a scheduler changed it if the value is not the one the last scheduler left.
        trace.changes.append(Change(step, key, last, value, writer if not differs(written, value) else None))

    @staticmethod
    def _keep_initial(trace: GroupTrace, params: list[torch.Tensor]) -> None:
        """A full copy of each parameter at its first step: `note_moved` tells exactly whether it ever moved."""
        if trace.moved:
            return  # known already: the copies were freed
        for p in params:
            if id(p) not in trace.initial:
                trace.initial[id(p)] = (p, p.detach().clone())

    def _snapshot(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        snapshots = []
        for p in params:
            buffer = self._snapshots.get(id(p))
            if buffer is None or buffer.shape != p.shape or buffer.dtype != p.dtype or buffer.device != p.device:
                buffer = self._snapshots[id(p)] = torch.empty_like(p, memory_format=torch.preserve_format)
            snapshots.append(buffer)
        if params:
            torch._foreach_copy_(snapshots, params)
        return snapshots

    @torch.no_grad()
    def _finish_step(self, trace: OptimizerTrace) -> None:
        for pending in self._pending.pop(id(trace)):
            group, record = pending.group, pending.record
            weight_sum = group.get("weight_sum", 0.0)
            weight = weight_sum - pending.weight_sum_before
            record["ckp1"] = weight / weight_sum if isinstance(weight_sum, torch.Tensor) or weight_sum else 0.0
            weight_sum = group["weight_sum"] = unlift_weight_sum(weight_sum, pending.lift)
            # The safe division was needed where upstream divided 0 by 0 (tensors: & keeps it on the device).
            record["safe_division"] = (pending.lift > 0) & (weight_sum == 0)
            lr = record["lr"]
            record["scheduled_lr"] = scalar_copy(group.get("scheduled_lr", lr * group.get("d", 1.0)))
            record["lr_max"] = scalar_copy(group.get("lr_max"))
            record["weight"] = weight
            record["weight_sum"] = scalar_copy(weight_sum)
            record["loss"] = self._last_loss
            if pending.params:
                torch._foreach_sub_(pending.snapshots, [sample(p) for p in pending.params])
                record["change_norms"] = torch.stack(torch._foreach_norm(pending.snapshots))
                record["change_scales"] = [math.sqrt(p.numel() / s.numel()) for p, s in
                                           zip(pending.params, pending.snapshots)]
                record["grad_norms"] = pending.grad_norms
            pending.trace.steps.append(record)
        self._last_loss = None
        trace.steps += 1
        counted = self._count_step(trace)
        if counted and self.steps >= self.max_steps:
            self.stop_reason = "steps"
        if self.on_step is not None:
            self.on_step(self.steps)
        if counted and self.stop_reason is not None:
            raise ReplayStop(self.stop_reason)

    def _count_step(self, trace: OptimizerTrace) -> bool:
        """Count the pacer's steps: the first optimizer that stepped, or one that stepped twice since the pacer's
        last step (it replaced the pacer, e.g. an optimizer rebuilt mid-run); its steps since then count too."""
        if self.pacer is None:
            self.pacer = trace
        if trace is self.pacer:
            self.steps += 1
        else:
            since = self._steps_since_pacer[trace.index] = self._steps_since_pacer.get(trace.index, 0) + 1
            if since < 2:
                return False  # e.g. a second optimizer stepping once per pacer step (GAN, closure variants)
            self.pacer = trace
            self.steps += since
        self._steps_since_pacer.clear()
        return True

    def _abort_step(self, trace: OptimizerTrace) -> None:
        """A step raised: undo its lift so the optimizer is left as upstream would leave it."""
        for pending in self._pending.pop(id(trace), []):
            pending.group["weight_sum"] = unlift_weight_sum(pending.group.get("weight_sum", 0.0), pending.lift)

    # -- closures, losses and eval() ----------------------------------------------------------

    def _capturing(self, closure: Callable | None) -> Callable | None:
        """The closure, keeping its loss for the record."""
        if closure is None:
            return None

        def capturing_closure() -> Any:
            loss = closure()
            if isinstance(loss, torch.Tensor) and loss.numel() == 1:
                self._last_loss = loss.detach()
            return loss
        return capturing_closure

    def _backward(self, original: Callable) -> Callable:
        def backward(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if tensor.numel() == 1:
                self._last_loss = tensor.detach()  # kept on its device: reading it would synchronise
            return original(tensor, *args, **kwargs)
        return backward

    def _eval(self, original: Callable) -> Callable:
        def eval(optimizer: Any) -> Any:
            trace = self._owner(optimizer)
            in_train = getattr(optimizer, "train_mode", None) if trace and trace.is_wrapper else (
                optimizer.param_groups[0].get("train_mode") if trace else None)
            if in_train:  # this eval() is the one that leaves it in eval mode, until a train()
                frame = user_frame()
                function = frame.f_code.co_name if frame else "<module>"
                where = f"in {function}() " if function != "<module>" else ""
                self._last_eval[trace.index] = (user_site(frame), where, trace.steps)
            params = [p for g in optimizer.param_groups for p in g["params"] if "z" in optimizer.state.get(p, {})]
            if not in_train or not params:
                return original(optimizer)
            before = torch._foreach_norm(params)
            result = original(optimizer)
            after = torch._foreach_norm(params)
            # once per eval(), not per step; y == z (all of x, y and z after the first step) leaves
            # nothing to move
            if all(torch.equal(a, b) for a, b in zip(before, after)) and not all(
                torch.equal(p, optimizer.state[p]["z"]) for p in params
            ):
                trace.events.append(Event("SF507", trace.steps, user_site(), f"{len(params)} parameters"))
            return result
        return eval


def note_moved(group: GroupTrace) -> None:
    """Whether a parameter of the group differs from its copy taken at its first step (once it did, it moved)."""
    if group.moved or not group.initial:
        return
    pairs = list(group.initial.values())  # copied at once: the script's steps may add to it meanwhile
    changed = [torch.ne(p, initial).any() for p, initial in pairs]
    group.moved = bool(torch.stack([flag.to(changed[0].device) for flag in changed]).any())  # one read-back


class _ImportWatcher(importlib.abc.MetaPathFinder):
    """Patches a framework's module right after the script imports it (install() runs before the script)."""

    def __init__(self, patches: dict[str, Callable[[ModuleType], None]]) -> None:
        self.patches = patches

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        patch = self.patches.get(name)
        spec = importlib.machinery.PathFinder.find_spec(name, path, target) if patch else None
        if spec is None or spec.loader is None:
            return None
        del self.patches[name]  # once: a second import of the module (a reload) is not patched again
        load = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            load(module)
            patch(module)
        spec.loader.exec_module = exec_module
        return spec
