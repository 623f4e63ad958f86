"""Replay on CUDA: device values are read back about once a second (never per step); --device cpu hides the GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "replay" / "on_device.py"

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def replay(*options: str) -> dict:
    # A subprocess: --device cpu must act before CUDA initialises, which this test process may have done.
    command = [sys.executable, "-m", "sfdoctor", "replay", str(FIXTURE), "--steps", "20", "--output-format", "json"]
    process = subprocess.run([*command, *options], check=False, capture_output=True, text=True, timeout=300)
    assert process.returncode in (0, 1), process.stderr
    return json.loads(process.stdout)


def test_replay_on_cuda_with_a_device_tensor_lr() -> None:
    data = replay()
    steps = data["optimizers"][0]["groups"][0]["trajectory"]
    assert len(steps) == 20
    assert all(s["weight_sum"] == 0.0 and s["ckp1"] == 0.0 and s["param_change_norm"] == 0.0 for s in steps)
    assert {f["code"] for f in data["findings"]} == {"SF501", "SF503"}
    assert all(isinstance(s["loss"], float) for s in steps)


def test_device_cpu_hides_the_gpu() -> None:
    data = replay("--device", "cpu")
    assert data["steps_run"] == 20 and data["warnings"] == []
