"""SFDoctorCallback with real Lightning (tiny model, CPU): checkpoints at y, metrics in CSVLogger's file."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import schedulefree
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from sfdoctor import SFDoctorError
from sfdoctor.integrations.lightning import SFDoctorCallback


class Regression(L.LightningModule):
    def __init__(self, eval_before_validation: bool) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)
        self.eval_before_validation = eval_before_validation

    def training_step(self, batch: tuple, index: int) -> torch.Tensor:
        inputs, targets = batch
        return torch.nn.functional.mse_loss(self.linear(inputs), targets)

    def validation_step(self, batch: tuple, index: int) -> None:
        inputs, targets = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.linear(inputs), targets))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return schedulefree.AdamWScheduleFree(self.parameters(), lr=1e-2)

    def on_train_batch_start(self, batch: tuple, index: int) -> None:
        self.optimizers().train()

    def on_validation_epoch_start(self) -> None:
        if self.eval_before_validation:
            self.optimizers().eval()  # the checkpoint after validation then holds x


def fit(tmp_path: Path, eval_before_validation: bool, on_problem: str = "log") -> SFDoctorCallback:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
    callback = SFDoctorCallback(on_problem=on_problem, log_every=2)
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", logger=CSVLogger(tmp_path), callbacks=[callback], default_root_dir=tmp_path,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )
    trainer.fit(Regression(eval_before_validation), DataLoader(data, batch_size=4), DataLoader(data, batch_size=8))
    return callback


def test_checkpoint_in_train_mode_is_reported(tmp_path: Path) -> None:
    callback = fit(tmp_path, eval_before_validation=False)
    assert [(f.code, f.step) for f in callback.findings] == [("SF513", 4)]
    assert callback.findings[0].message.startswith("Lightning checkpoint epoch=0-step=4.ckpt at step 4 saved the model")
    assert callback.findings[0].filename.endswith("test_watch_lightning.py")  # the trainer.fit() line


def test_eval_before_the_checkpoint_is_quiet_and_metrics_reach_the_csv_logger(tmp_path: Path) -> None:
    callback = fit(tmp_path, eval_before_validation=True)
    assert callback.findings == []
    (metrics_file,) = tmp_path.glob("lightning_logs/version_*/metrics.csv")
    with open(metrics_file, newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["sf/scheduled_lr"]]
    assert [int(row["step"]) for row in rows] == [2, 4, 6, 8]
    assert all(float(row["sf/scheduled_lr"]) == 1e-2 and float(row["sf/train_mode"]) == 1.0 for row in rows)
    assert 0 < float(rows[-1]["sf/ckp1"]) < 1 and float(rows[-1]["sf/weight_sum"]) > 0


def test_raise_stops_the_run_before_the_checkpoint_and_leaves_no_hook(tmp_path: Path) -> None:
    original_save = torch.save
    with pytest.raises(SFDoctorError, match="SF513"):
        fit(tmp_path, eval_before_validation=False, on_problem="raise")
    assert torch.save is original_save
    assert list(tmp_path.glob("**/*.ckpt")) == []
