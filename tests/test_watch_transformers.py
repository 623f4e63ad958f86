"""SFDoctorCallback with the real HF Trainer (tiny model, CPU): checkpoints at y, schedulers, metrics in TensorBoard."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import Trainer, TrainingArguments

from sfdoctor.integrations.transformers import SFDoctorCallback


class Regression(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict:
        return {"loss": torch.nn.functional.mse_loss(self.linear(x), labels)}


def run_trainer(tmp_path: Path, **arguments) -> tuple[SFDoctorCallback, Trainer]:
    torch.manual_seed(0)
    data = [{"x": torch.randn(4), "labels": torch.randn(1)} for _ in range(32)]
    callback = SFDoctorCallback(on_problem="log", log_every=4)
    args = TrainingArguments(
        output_dir=str(tmp_path), optim="schedule_free_adamw", learning_rate=1e-2, max_steps=8,
        per_device_train_batch_size=4, logging_steps=2, report_to=["tensorboard"], use_cpu=True,
        disable_tqdm=True, **arguments,
    )
    trainer = Trainer(model=Regression(), args=args, train_dataset=data, eval_dataset=data[:8], callbacks=[callback])
    trainer.train()
    return callback, trainer


def test_checkpoints_without_evaluation_and_the_default_scheduler_are_reported(tmp_path: Path) -> None:
    callback, _ = run_trainer(tmp_path, save_steps=4, warmup_steps=2)  # lr_scheduler_type="linear" by default
    found = sorted({(f.code, f.step) for f in callback.findings})
    assert found == [("SF501", 1), ("SF504", 2), ("SF513", 4)]
    saved = next(f for f in callback.findings if f.code == "SF513")
    assert saved.message.startswith("Trainer checkpoint-4 at step 4 saved the model while AdamWScheduleFree")
    assert saved.filename.endswith("test_watch_transformers.py")  # the trainer.train() line
    assert "LambdaLR at " in next(f for f in callback.findings if f.code == "SF504").message


def test_aligned_saves_are_quiet_and_metrics_reach_tensorboard(tmp_path: Path) -> None:
    callback, trainer = run_trainer(tmp_path, save_steps=4, eval_strategy="steps", eval_steps=4,
                                    lr_scheduler_type="constant")
    assert callback.findings == []
    assert trainer.state.log_history[0]["sf/scheduled_lr/group0"] == 1e-2
    (event_file,) = tmp_path.glob("runs/*/events.out.tfevents.*")
    events = EventAccumulator(str(event_file))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/sf/scheduled_lr/group0", "train/sf/weight_sum/group1", "train/sf/ckp1/group0",
            "train/sf/train_mode/group0", "train/sf/beta1/group1"} <= set(tags)
    lrs = events.Scalars("train/sf/scheduled_lr/group0")
    assert [e.step for e in lrs] == [2, 4, 6, 8] and all(e.value == pytest.approx(1e-2) for e in lrs)
    assert [e.value for e in events.Scalars("train/sf/train_mode/group0")] == [1.0] * 4
