"""Replays of the real fixture scripts (real torch, real schedulefree), in-process through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sfdoctor.replay.command import replay

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "replay"


def run_replay(fixture: str, *options: str, script_args: tuple[str, ...] = ()) -> tuple[int, dict]:
    result = CliRunner().invoke(replay, [str(FIXTURES / fixture), *options, "--output-format", "json", "--",
                                         *script_args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, json.loads(result.stdout)


def codes(data: dict) -> list[tuple[str, int | None, int | None]]:
    return sorted((f["code"], f.get("step"), f.get("group")) for f in data["findings"])


def trajectory(data: dict, optimizer: int = 0, group: int = 0) -> list[dict]:
    return data["optimizers"][optimizer]["groups"][group]["trajectory"]


def line_of(fixture: str, text: str) -> int:
    lines = (FIXTURES / fixture).read_text().splitlines()
    return next(row for row, line in enumerate(lines, start=1) if text in line)


def test_warmup_scheduler_never_stepped() -> None:
    status, data = run_replay("warmup_scheduler_not_stepped.py", "--steps", "20")
    assert status == 1
    assert data["steps_run"] == 20 and data["stopped"] == "steps"
    assert codes(data) == [("SF501", 1, 0), ("SF503", 1, 0)]
    scheduler_row = line_of("warmup_scheduler_not_stepped.py", "LambdaLR(")
    never_moved = next(f for f in data["findings"] if f["code"] == "SF503")
    assert never_moved["location"]["row"] == scheduler_row
    assert f"LambdaLR constructed at fixtures/replay/warmup_scheduler_not_stepped.py:{scheduler_row} set lr " \
           "from 0.01 to 0.0 and was never stepped" in never_moved["message"]
    steps = trajectory(data)
    assert [s["weight_sum"] for s in steps] == [0.0] * 20
    assert all(s["ckp1"] == 0.0 and s["safe_division"] and s["param_change_norm"] == 0.0 for s in steps)
    assert data["optimizers"][0]["schedulers"] == [{
        "class": "LambdaLR", "created_at": {"filename": str(FIXTURES / "warmup_scheduler_not_stepped.py"),
                                            "row": scheduler_row},
        "lr_before": [0.01], "lr_after": [0.0], "steps": 0,
    }]


@pytest.mark.parametrize("fixture", ["warmup_scheduler_stepped.py", "hf_linear_warmup.py"])
def test_stepped_warmup_scheduler(fixture: str) -> None:
    status, data = run_replay(fixture, "--steps", "12")
    assert status == 1
    assert [c for c in codes(data) if c[0] == "SF501"] == [("SF501", 1, 0)]  # only step 1 had lr 0
    changed = next(f for f in data["findings"] if f["code"] == "SF504")
    assert changed["severity"] == "warning" and changed["step"] == 2
    assert changed["location"]["row"] == line_of(fixture, "scheduler.step()")
    assert "LambdaLR.step()" in changed["message"]
    steps = trajectory(data)
    assert steps[0]["weight_sum"] == 0.0 and steps[1]["weight_sum"] > 0
    assert steps[1]["scheduled_lr"] < steps[4]["scheduled_lr"]  # the warm-up is visible


def test_onecycle_changes_lr_and_beta1() -> None:
    status, data = run_replay("onecycle.py", "--steps", "10")
    assert status == 1
    assert {code for code, _, _ in codes(data)} == {"SF504", "SF505"}
    momentum = next(f for f in data["findings"] if f["code"] == "SF505")
    assert momentum["severity"] == "error" and "OneCycleLR.step()" in momentum["message"]
    betas = [s["beta1"] for s in trajectory(data)]
    assert len(set(betas)) == len(betas)  # a new beta1 on every step


def test_lr_zero_from_config() -> None:
    status, data = run_replay("lr_zero.py", "--steps", "8")
    assert status == 1
    assert codes(data) == [("SF501", 1, 0), ("SF503", 1, 0)]
    row = line_of("lr_zero.py", "SGDScheduleFree(")
    assert all(f["location"]["row"] == row for f in data["findings"])
    assert "constructed with lr=0.0" in data["findings"][0]["message"]


def test_group_frozen_with_lr_zero() -> None:
    status, data = run_replay("frozen_group_lr_zero.py", "--steps", "10")
    assert status == 1
    assert codes(data) == [("SF501", 1, 0), ("SF503", 1, 0)]
    assert [s["weight_sum"] for s in trajectory(data, group=0)] == [0.0] * 10
    head = trajectory(data, group=1)
    assert all(s["weight_sum"] > 0 and s["param_change_norm"] > 0 for s in head)


def test_zeroed_gradients_still_move() -> None:
    status, data = run_replay("zeroed_gradients.py", "--steps", "8")
    assert status == 1
    assert codes(data) == [("SF508", 4, 0)]
    steps = trajectory(data)
    assert [s["zero_grad_params"] for s in steps] == [0, 0, 0, 2, 2, 2, 2, 2]
    assert steps[3]["zero_grad_moved"] == 2


def test_tensor_lr_zero_gets_the_guarded_result_instead_of_nan() -> None:
    status, data = run_replay("tensor_lr_zero.py", "--steps", "5")
    assert status == 1
    assert codes(data) == [("SF501", 1, 0), ("SF503", 1, 0)]
    assert "tensor lr writes NaN" in data["findings"][0]["message"]
    assert all(s["ckp1"] == 0.0 and s["weight_sum"] == 0.0 for s in trajectory(data))


def test_wrapper_with_lr_zero_does_not_crash() -> None:
    status, data = run_replay("wrapper_lr_zero.py", "--steps", "6")
    assert status == 1 and data["script_error"] is None
    assert data["optimizers"][0]["class"] == "ScheduleFreeWrapper"
    assert codes(data) == [("SF501", 1, 0), ("SF503", 1, 0)]
    assert "raises ZeroDivisionError in ScheduleFreeWrapper" in data["findings"][0]["message"]


def test_wrapper_around_adamw_crash_is_named() -> None:
    status, data = run_replay("wrapper_adam_base.py", "--steps", "6")
    assert status == 1
    assert data["script_error"]["type"] == "KeyError" and data["script_error"]["code"] == "SF405"
    assert data["script_error"]["frames"][-1]["function"] == "_init_group"
    assert codes(data) == [("SF405", 1, None)]
    assert data["findings"][0]["location"]["row"] == line_of("wrapper_adam_base.py", "optimizer.step()")


def test_missing_train_call() -> None:
    status, data = run_replay("missing_train.py", "--steps", "6")
    assert status == 1
    assert data["script_error"]["code"] == "SF506" and data["steps_run"] == 0
    assert codes(data) == [("SF506", 1, None)]
    assert data["findings"][0]["location"]["row"] == line_of("missing_train.py", "optimizer.step()")


def test_zero_beta1_crash_in_eval() -> None:
    status, data = run_replay("zero_beta_eval.py", "--steps", "20")
    assert status == 1
    assert data["steps_run"] == 5
    assert data["script_error"]["type"] == "ZeroDivisionError"
    assert data["script_error"]["frames"][-1]["function"] == "eval"
    assert codes(data) == [("SF113", 5, None)]
    assert len(trajectory(data)) == 5


def test_correct_script_is_clean() -> None:
    status, data = run_replay("correct.py", "--steps", "25")
    assert status == 0
    assert data["findings"] == [] and data["script_error"] is None
    steps = trajectory(data)
    assert len(steps) == 25 and all(s["train_mode"] for s in steps)
    assert steps[0]["scheduled_lr"] == pytest.approx(5e-3 / 5)  # warmup_steps=5
    assert all(isinstance(s["loss"], float) for s in steps)


def test_script_crashing_on_its_own() -> None:
    status, data = run_replay("crashes.py", "--steps", "10")
    assert status == 1
    assert data["steps_run"] == 3 and len(trajectory(data)) == 3
    error = data["script_error"]
    assert error["type"] == "RuntimeError" and error["code"] is None
    assert error["frames"][0]["filename"].endswith("crashes.py")
    assert data["findings"] == []


def test_script_that_never_steps() -> None:
    status, data = run_replay("never_steps.py", "--steps", "10")
    assert status == 2  # a replay that checked nothing must not pass a CI job
    assert data["steps_run"] == 0 and data["stopped"] is None
    assert data["optimizers"][0]["groups"][0]["trajectory"] == []


def test_sys_exit_zero() -> None:
    status, data = run_replay("sys_exit.py", "--steps", "10")
    assert status == 0
    assert data["exit_code"] == 0 and data["steps_run"] == 3 and data["script_error"] is None


def test_argparse_arguments_and_sibling_import() -> None:
    status, data = run_replay("with_args.py", "--steps", "4", script_args=("--lr", "0.02", "--hidden", "4"))
    assert status == 0
    assert [s["lr"] for s in trajectory(data)] == [0.02] * 4
    assert data["args"] == ["--lr", "0.02", "--hidden", "4"]
    status, data = run_replay("with_args.py", "--steps", "4")  # the argparse default lr is 0
    assert {code for code, _, _ in codes(data)} == {"SF501", "SF503"}


def test_stop_cannot_be_swallowed_and_finally_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    status, data = run_replay("swallow_stop.py", "--steps", "7", script_args=(str(marker),))
    assert status == 0 and data["steps_run"] == 7 and data["stopped"] == "steps"
    # The stop is raised by step() after its update, so the script's counter misses the last one.
    assert marker.read_text() == "finally ran after 6 steps\n"


def test_radam_zero_lr_phase_is_not_a_finding_and_closure_loss_is_recorded() -> None:
    status, data = run_replay("radam_closure.py", "--steps", "10")
    assert status == 0 and data["findings"] == []
    radam = trajectory(data, optimizer=0)
    assert radam[0]["scheduled_lr"] == 0.0 and radam[0]["safe_division"]  # by design, not SF501
    closure = trajectory(data, optimizer=1)
    assert data["optimizers"][1]["class"] == "SGDScheduleFreeClosure"
    # The replay stops at the pacer's (RAdam's) 10th step, before the 10th closure step.
    assert len(closure) == 9 and all(isinstance(s["loss"], float) for s in closure)


def test_look_alike_optimizer_stepping_in_eval_mode() -> None:
    pytest.importorskip("pytorch_optimizer")
    status, data = run_replay("lookalike_eval.py", "--steps", "6")
    assert status == 1
    assert (data["optimizers"][0]["class"], data["optimizers"][0]["steps"]) == ("ScheduleFreeAdamW", 6)
    assert [s["train_mode"] for s in trajectory(data)] == [True] * 3 + [False] * 3
    (finding,) = data["findings"]  # one finding for the three steps in eval mode
    assert (finding["code"], finding["step"]) == ("SF506", 4)
    assert finding["location"]["row"] == line_of("lookalike_eval.py", "optimizer.eval()")
    assert finding["message"].startswith("3 steps of ScheduleFreeAdamW, the first at step 4, were called while")
    assert "in validate() after step 3 left it there" in finding["message"]
    status, data = run_replay("lookalike_eval.py", "--steps", "6", script_args=("--train-after-validation",))
    assert (status, data["findings"], data["optimizers"][0]["steps"]) == (0, [], 6)


def test_look_alike_optimizer_with_a_warmup_scheduler() -> None:
    pytest.importorskip("pytorch_optimizer")
    status, data = run_replay("lookalike_warmup.py", "--steps", "4")
    assert status == 1
    assert codes(data) == [("SF501", 1, 0), ("SF503", 1, 0)]
    zero = data["findings"][0]
    assert zero["location"]["row"] == line_of("lookalike_warmup.py", "LambdaLR(")
    assert "which ScheduleFreeSGD turns into ckp1 = 0, so these steps do not learn" in zero["message"]
    assert zero["message"].endswith("set lr from 0.01 to 0.0 and was never stepped")
    assert all(s["weight_sum"] == 0.0 and s["param_change_norm"] == 0.0 for s in trajectory(data))
