"""sfdoctor.watch on plain training loops: each check fires on the bug and stays quiet on the correct loop."""

from __future__ import annotations

import csv
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import schedulefree
import torch

import sfdoctor
from sfdoctor import Guard, SFDoctorError, SFDoctorWarning

STEPS = 8
LOG_EVERY = 4


def make_model(dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).to(dtype)


def train(model: torch.nn.Module, optimizer, steps: int = STEPS, before_step: Callable[[int], None] | None = None,
          after_step: Callable[[int], None] | None = None) -> None:
    generator = torch.Generator().manual_seed(1)
    model.train()
    optimizer.train()
    for step in range(1, steps + 1):
        inputs = torch.randn(16, 4, generator=generator).to(next(model.parameters()).dtype)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), inputs[:, :1]).backward()
        if before_step is not None:
            before_step(step)
        optimizer.step()
        if after_step is not None:
            after_step(step)


def negative_lr_optimizer(model: torch.nn.Module):
    optimizer = schedulefree.SGDScheduleFree(model.parameters(), lr=0.1)  # its constructor refuses lr < 0
    optimizer.param_groups[0]["lr"] = -0.1
    return optimizer


def guarded(*optimizers, **options) -> Guard:
    return sfdoctor.watch(*optimizers, on_problem="log", log_every=LOG_EVERY, **options)


def codes(guard: Guard) -> list[tuple[str, int | None, int | None]]:
    return [(f.code, f.group, f.step) for f in guard.findings]


def test_correct_loop_is_quiet_and_logs_floats(tmp_path: Path) -> None:
    model = make_model()
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-2, warmup_steps=2)
    rows = []
    with guarded(optimizer, logger=lambda metrics, step: rows.append((step, metrics))) as guard:
        def save(step: int) -> None:
            optimizer.eval()
            torch.save(model.state_dict(), tmp_path / f"step{step}.pt")
            optimizer.train()
        train(model, optimizer, after_step=save)
    assert guard.findings == []
    assert [step for step, _ in rows] == [4, 8]
    metrics = rows[-1][1]
    assert set(metrics) == {"sf/scheduled_lr", "sf/weight_sum", "sf/ckp1", "sf/train_mode", "sf/beta1"}
    assert all(type(value) is float for value in metrics.values())
    assert metrics["sf/scheduled_lr"] == 1e-2 and metrics["sf/train_mode"] == 1.0 and metrics["sf/beta1"] == 0.9
    assert metrics["sf/weight_sum"] == optimizer.param_groups[0]["weight_sum"] > 0
    assert 0 < metrics["sf/ckp1"] < 1


def test_csv_logger_names_each_group(tmp_path: Path) -> None:
    model = make_model()
    optimizer = schedulefree.SGDScheduleFree([{"params": model[0].parameters()},
                                              {"params": model[2].parameters(), "lr": 0.5}], lr=0.1)
    with guarded(optimizer, logger=tmp_path / "sf.csv") as guard:
        train(model, optimizer)
    with open(tmp_path / "sf.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert guard.findings == []
    assert [row["step"] for row in rows] == ["4", "8"]
    assert float(rows[1]["sf/scheduled_lr/group1"]) == 0.5 and float(rows[1]["sf/scheduled_lr/group0"]) == 0.1


def test_several_optimizers_are_named_in_the_metrics() -> None:
    model = make_model()
    first = schedulefree.AdamWScheduleFree(model[0].parameters(), lr=1e-2)
    second = schedulefree.SGDScheduleFree(model[2].parameters(), lr=0.1)
    with guarded(first, second) as guard:
        generator = torch.Generator().manual_seed(1)
        model.train()
        first.train()
        second.train()
        for _ in range(2):
            inputs = torch.randn(16, 4, generator=generator)
            torch.nn.functional.mse_loss(model(inputs), inputs[:, :1]).backward()
            first.step()
            second.step()
    metrics = guard.metrics()
    assert metrics["sf/scheduled_lr/opt0"] == 1e-2 and metrics["sf/scheduled_lr/opt1"] == 0.1
    assert len(metrics) == 10 and guard.findings == []


def test_zero_lr_is_reported_once_and_does_not_learn() -> None:
    model = make_model()
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=0.0)
    with guarded(optimizer) as guard:
        train(model, optimizer)
    assert codes(guard) == [("SF501", 0, 1), ("SF503", 0, 4)]
    assert guard.findings[0].filename.endswith("test_watch.py")
    assert "optimizer.step()" in Path(__file__).read_text().splitlines()[guard.findings[0].location.row - 1]


def test_radam_first_steps_without_movement_are_by_design() -> None:
    model = make_model()
    optimizer = schedulefree.RAdamScheduleFree(model.parameters(), lr=1e-2)
    with sfdoctor.watch(optimizer, on_problem="log", log_every=2) as guard:
        train(model, optimizer)
    assert guard.findings == []


def test_warmup_scheduler_is_named_as_the_cause() -> None:
    model = make_model()
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-2)
    with guarded(optimizer) as guard:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, step / 4))
        train(model, optimizer, after_step=lambda step: scheduler.step())
    assert codes(guard) == [("SF501", 0, 1), ("SF504", 0, 2)]
    assert "LambdaLR at " in guard.findings[0].message and "last set lr to 0.0" in guard.findings[0].message
    assert "group 0 lr changed between steps by LambdaLR at" in guard.findings[1].message


def train_with_lrs(make_optimizer, lrs: list[float], watch: bool) -> tuple[list | None, Guard | None]:
    """Parameters after a run whose steps use `lrs` (None when it raised ZeroDivisionError), and the guard."""
    model = make_model()
    optimizer = make_optimizer(model.parameters())
    guard = guarded(optimizer) if watch else None

    def set_lr(step: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lrs[step - 1]
    try:
        train(model, optimizer, steps=len(lrs), before_step=set_lr)
    except ZeroDivisionError:
        return None, guard
    finally:
        if guard is not None:
            guard.close()
    return [p.detach().clone() for p in model.parameters()], guard


LRS = [0.0, 0.0, 0.0, 0.02, 0.02, 0.02, 0.02, 0.02]


def test_safe_division_is_the_upstream_guard_bit_for_bit() -> None:
    def make(params):
        return schedulefree.AdamWScheduleFree(params, lr=0.0, weight_decay=0.01)

    upstream, _ = train_with_lrs(make, LRS, watch=False)
    watched, guard = train_with_lrs(make, LRS, watch=True)
    assert all(torch.equal(a, b) for a, b in zip(upstream, watched))
    assert [f.code for f in guard.findings] == ["SF501", "SF504"]  # the writes of set_lr after step 3


def test_wrapper_runs_instead_of_zero_division() -> None:
    def make(params):
        return schedulefree.ScheduleFreeWrapper(torch.optim.SGD(params, lr=0.0), momentum=0.9)

    upstream, _ = train_with_lrs(make, LRS, watch=False)
    watched, guard = train_with_lrs(make, LRS, watch=True)
    assert upstream is None  # no guard in the wrapper: ZeroDivisionError
    assert all(torch.isfinite(p).all() for p in watched)
    assert guard.findings[0].code == "SF501" and "ScheduleFreeWrapper (no version guards it)" in guard.findings[0].message


def test_wrapper_without_safe_division_still_raises() -> None:
    model = make_model()
    optimizer = schedulefree.ScheduleFreeWrapper(torch.optim.SGD(model.parameters(), lr=0.0), momentum=0.9)
    with guarded(optimizer, safe_division=False), pytest.raises(ZeroDivisionError):
        train(model, optimizer)


def test_tensor_lr_zero_gives_no_nan_and_is_read_at_the_check() -> None:
    model = make_model()
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=torch.tensor(0.0))
    with guarded(optimizer) as guard:
        train(model, optimizer, steps=3)
        assert guard.findings == []  # tensor values wait for the check at step 4
        train(model, optimizer, steps=1)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert ("SF501", 0, 1) in codes(guard)


def test_tensor_lr_without_safe_division_writes_nan() -> None:
    model = make_model()
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=torch.tensor(0.0))
    with guarded(optimizer, safe_division=False) as guard:
        train(model, optimizer)
    assert ("SF502", 0, 1) in codes(guard)


def test_momentum_cycling_scheduler() -> None:
    model = make_model()
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-2)
    with guarded(optimizer) as guard:
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=STEPS + 1)
        train(model, optimizer, after_step=lambda step: scheduler.step())
    assert ("SF505", 0, 2) in codes(guard)
    assert "beta1 / momentum changed between steps by OneCycleLR at" in guard.findings[-1].message


def test_step_in_eval_mode() -> None:
    model = make_model()
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-2)
    with guarded(optimizer) as guard, pytest.raises(Exception, match="not in train mode"):
        train(model, optimizer, before_step=lambda step: optimizer.eval() if step == 3 else None)
    assert codes(guard) == [("SF506", None, 3)]


def test_zeroed_gradients_move() -> None:
    model = make_model()
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-2, weight_decay=0.1)

    def freeze_first_layer(step: int) -> None:
        for p in model[0].parameters():
            p.grad.zero_()
    with guarded(optimizer) as guard:
        train(model, optimizer, before_step=freeze_first_layer)
    assert codes(guard) == [("SF508", 0, 4)]
    assert "2 parameters whose gradient was all zeros moved at step 4" in guard.findings[0].message


def test_negative_lr() -> None:
    model = make_model()
    optimizer = negative_lr_optimizer(model)
    with guarded(optimizer) as guard:
        train(model, optimizer)
    assert codes(guard) == [("SF510", 0, 1)]


def test_low_precision_parameters() -> None:
    model = make_model(torch.bfloat16)
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-2)
    with guarded(optimizer) as guard:
        train(model, optimizer, steps=2)
    assert codes(guard) == [("SF512", 0, 1)]
    assert "torch.bfloat16" in guard.findings[0].message


def test_save_in_train_mode(tmp_path: Path) -> None:
    model = make_model()
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-2)
    with guarded(optimizer) as guard:
        train(model, optimizer, steps=2)
        torch.save({"model": model.state_dict(), "step": 2}, tmp_path / "checkpoint.pt")
        torch.save({"optimizer": optimizer.state_dict()}, tmp_path / "optimizer.pt")  # not the model: fine
    assert codes(guard) == [("SF513", None, 2)]
    assert guard.findings[0].message.startswith("torch.save at step 2 saved the model while AdamWScheduleFree")
    assert "torch.save({\"model\"" in Path(__file__).read_text().splitlines()[guard.findings[0].location.row - 1]


def test_close_removes_every_hook_and_patch(tmp_path: Path) -> None:
    model = make_model()
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=0.0)
    original_save = torch.save
    guard = guarded(optimizer)
    assert torch.save is not original_save
    guard.close()
    assert torch.save is original_save
    assert all(type(group) is dict for group in optimizer.param_groups)
    train(model, optimizer)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    assert guard.findings == []


def test_on_problem_policies(caplog: pytest.LogCaptureFixture) -> None:
    model = make_model()
    optimizer = negative_lr_optimizer(model)
    with sfdoctor.watch(optimizer) as guard, pytest.warns(SFDoctorWarning, match="SF510 \\[error\\] group 0"):
        train(model, optimizer, steps=1)
    with sfdoctor.watch(optimizer, on_problem="raise"), pytest.raises(SFDoctorError) as raised:
        train(model, optimizer, steps=1)
    assert raised.value.finding.code == "SF510"
    assert optimizer.param_groups[0]["weight_sum"] > 0  # the step happened and no lift was left behind
    with caplog.at_level(logging.ERROR, logger="sfdoctor"), sfdoctor.watch(optimizer, on_problem="log"):
        train(model, optimizer, steps=1)
    assert [record.levelno for record in caplog.records] == [logging.ERROR]
    assert "SF510 [error]" in caplog.records[0].getMessage()
    assert [f.code for f in guard.findings] == ["SF510"]
    with pytest.raises(ValueError, match="on_problem"):
        sfdoctor.watch(optimizer, on_problem="ignore")


def test_report_prints_like_lint(capsys: pytest.CaptureFixture) -> None:
    model = make_model()
    optimizer = negative_lr_optimizer(model)
    with guarded(optimizer) as guard:
        train(model, optimizer, steps=2)
    guard.report()
    out = capsys.readouterr().out
    assert "test_watch.py:" in out and "SF510 [error] group 0 stepped with a negative lr (-0.1) at step 1" in out
    assert "help: give a positive lr" in out
    assert "Found 1 finding (1 error, 0 warnings) in SGDScheduleFree (optimizer 0): 2 steps." in out


def test_accelerate_wrapper() -> None:
    from accelerate import Accelerator

    model = make_model()
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=0.0)
    model, prepared = Accelerator(cpu=True).prepare(model, optimizer)
    with guarded(prepared) as guard:
        train(model, prepared)
    assert codes(guard) == [("SF501", 0, 1), ("SF503", 0, 4)]


def test_not_a_schedulefree_optimizer() -> None:
    with pytest.raises(TypeError, match="SGD is not a ScheduleFree optimizer"):
        sfdoctor.watch(torch.optim.SGD(make_model().parameters(), lr=0.1))


def test_import_sfdoctor_stays_light() -> None:
    code = (
        "import sys, schedulefree, torch, sfdoctor\n"
        "optimizer = schedulefree.AdamWScheduleFree(torch.nn.Linear(2, 1).parameters())\n"
        "with sfdoctor.watch(optimizer): pass\n"
        "print(sorted(m for m in ('libcst', 'click', 'sfdoctor.replay.runner', 'sfdoctor.replay.session', "
        "'sfdoctor.lint') if m in sys.modules))\n"
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert process.stdout.strip() == "[]"
