"""Replays of real framework scripts (HF Trainer, accelerate, Lightning): blame lands on the user's lines."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sfdoctor.replay.command import replay
from sfdoctor.replay.diagnose import FRAMEWORK_SCHEDULER_FIXES, REMOVE_SCHEDULER
from sfdoctor.replay.frames import display_path

FRAMEWORKS = Path(__file__).resolve().parent.parent / "fixtures" / "replay" / "frameworks"


def run_replay(fixture: str, steps: int) -> tuple[int, dict]:
    result = CliRunner().invoke(replay, [str(FRAMEWORKS / fixture), "--steps", str(steps), "--output-format", "json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, json.loads(result.stdout)


def display(fixture: str) -> str:
    return display_path(str(FRAMEWORKS / fixture))


def line_of(fixture: str, text: str) -> int:
    lines = (FRAMEWORKS / fixture).read_text().splitlines()
    return next(row for row, line in enumerate(lines, start=1) if text in line)


def by_code(data: dict) -> dict[str, dict]:
    codes = [finding["code"] for finding in data["findings"]]
    assert len(codes) == len(set(codes)), codes  # one finding per code: groups are merged
    return {finding["code"]: finding for finding in data["findings"]}


def test_accelerate_prepare_keeps_the_warmup_scheduler_as_the_cause() -> None:
    status, data = run_replay("accelerate_warmup.py", steps=4)
    assert status == 1
    findings = by_code(data)
    assert set(findings) == {"SF501", "SF504"}
    scheduler_row = line_of("accelerate_warmup.py", "get_linear_schedule_with_warmup(optimizer")
    zero = findings["SF501"]
    assert zero["location"]["row"] == scheduler_row
    assert zero["message"].endswith(f"LambdaLR constructed at {display('accelerate_warmup.py')}:{scheduler_row} "
                                    "set lr from 0.01 to 0.0")
    assert zero["notes"] == [FRAMEWORK_SCHEDULER_FIXES["accelerate"]]
    assert "accelerator.prepare" in zero["notes"][0]
    assert findings["SF504"]["location"]["row"] == line_of("accelerate_warmup.py", "scheduler.step()")


def test_a_resumed_optimizer_keeps_the_warmup_scheduler_as_the_cause() -> None:
    status, data = run_replay("resume_warmup.py", steps=3)
    assert status == 1
    zero = by_code(data)["SF501"]
    scheduler_row = line_of("resume_warmup.py", "LambdaLR(")
    assert zero["location"]["row"] == scheduler_row
    assert f"LambdaLR constructed at {display('resume_warmup.py')}:{scheduler_row} set lr" in zero["message"]
    assert zero["notes"] == [REMOVE_SCHEDULER]


def test_trainer_findings_point_at_training_arguments_once_for_both_groups() -> None:
    status, data = run_replay("hf_trainer.py", steps=4)
    assert status == 1
    assert [len(optimizer["groups"]) for optimizer in data["optimizers"]] == [2]
    findings = by_code(data)
    assert set(findings) == {"SF501", "SF504"}
    arguments_row = line_of("hf_trainer.py", "args = TrainingArguments(")
    for finding in findings.values():
        assert finding["location"]["row"] == arguments_row
        assert finding["message"].startswith("groups 0 and 1 ")
        assert finding["notes"] == [FRAMEWORK_SCHEDULER_FIXES["Trainer"]]
        assert finding["related"][0]["location"]["row"] == line_of("hf_trainer.py", "trainer.train()")
    assert 'lr_scheduler_type="constant"' in findings["SF501"]["notes"][0]
    assert "warmup_steps as an integer" in findings["SF501"]["notes"][0]
    assert "LambdaLR constructed at" in findings["SF501"]["message"]


def test_lightning_scheduler_findings_point_into_configure_optimizers() -> None:
    status, data = run_replay("lightning_warmup.py", steps=4)
    assert status == 1
    findings = by_code(data)
    assert set(findings) == {"SF501", "SF504"}
    scheduler_row = line_of("lightning_warmup.py", "LambdaLR(")
    assert [finding["location"]["row"] for finding in findings.values()] == [scheduler_row, scheduler_row]
    assert findings["SF501"]["notes"] == [FRAMEWORK_SCHEDULER_FIXES["Lightning"]]
    assert "configure_optimizers" in findings["SF504"]["notes"][0]


def test_lightning_step_in_eval_mode_names_the_hook_that_called_eval() -> None:
    status, data = run_replay("lightning_eval_hook.py", steps=8)
    assert status == 1
    assert data["end"] == "crash" and data["steps_run"] == 4  # 16 samples / batch size 4: validation after step 4
    finding = by_code(data)["SF506"]
    eval_row = line_of("lightning_eval_hook.py", "self.optimizers().eval()")
    cause = f"optimizer.eval() at {display('lightning_eval_hook.py')}:{eval_row} in on_validation_epoch_start() " \
            "after step 4 left it there and no train() followed"
    assert finding["location"]["row"] == eval_row and finding["step"] == 5
    assert cause in finding["message"] and "never called" not in finding["message"]
    assert finding["related"][0]["location"]["row"] == line_of("lightning_eval_hook.py", "trainer.fit(")
    assert "on_validation_epoch_end" in finding["notes"][0]
    assert data["script_error"]["code"] == "SF506" and cause in data["script_error"]["diagnosis"]

