"""The replay command's interface: arguments, configuration, exit status, output files, timeout."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sfdoctor.replay.command import replay

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "replay"


def invoke(*args: str) -> object:
    return CliRunner().invoke(replay, list(args))


def test_no_script_and_no_configuration_is_a_usage_error(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.chdir(tmp_path)
    result = invoke()
    assert result.exit_code == 2 and "no SCRIPT given" in result.output


def test_missing_script_is_a_one_line_error() -> None:
    result = invoke("does_not_exist.py")
    assert result.exit_code == 2 and "script not found: does_not_exist.py" in result.output


def test_script_args_and_steps_from_pyproject(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.sfdoctor.replay]\n"
        f"script = {json.dumps(os.path.relpath(FIXTURES / 'with_args.py', tmp_path))}\n"
        'args = ["--lr", "0.03"]\nsteps = 3\n'
    )
    monkeypatch.chdir(tmp_path)
    result = invoke("--output-format", "json")
    data = json.loads(result.stdout)
    assert result.exit_code == 0
    assert data["steps_requested"] == 3 and data["steps_run"] == 3 and data["args"] == ["--lr", "0.03"]


def test_full_report(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    result = invoke("fixtures/replay/warmup_scheduler_not_stepped.py", "--steps", "6")
    assert result.exit_code == 1
    out = result.stdout
    assert "stopped after 6 steps as asked" in out
    assert "scheduler LambdaLR created at fixtures/replay/warmup_scheduler_not_stepped.py:9" in out
    assert "fixtures/replay/warmup_scheduler_not_stepped.py:9:1: SF503 [error] group 0 never moved" in out
    assert "weight_sum ▁▁▁▁▁▁" in out
    assert "Found 2 replay findings (2 errors, 0 warnings)." in out


def test_out_folder(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = invoke(str(FIXTURES / "frozen_group_lr_zero.py"), "--steps", "5", "--out", str(tmp_path / "out"),
                    "--output-format", "json")
    assert result.exit_code == 1
    saved = json.loads((tmp_path / "out" / "trajectory.json").read_text())
    assert saved["findings"] == json.loads(result.stdout)["findings"] and saved["command"][:2] == ["sfdoctor", "replay"]
    rows = list(csv.DictReader((tmp_path / "out" / "trajectory.csv").open()))
    assert len(rows) == 10  # 5 steps x 2 groups
    assert {row["weight_sum"] for row in rows if row["group"] == "0"} == {"0.0"}
    assert (tmp_path / "out" / "trajectory.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_timeout_stops_a_hanging_script_with_a_report(tmp_path: Path) -> None:
    script = tmp_path / "hangs.py"
    script.write_text(
        "import time, torch, schedulefree\n"
        "model = torch.nn.Linear(2, 1)\n"
        "optimizer = schedulefree.SGDScheduleFree(model.parameters(), lr=0.1)\n"
        "optimizer.train()\n"
        "model(torch.ones(1, 2)).sum().backward()\n"
        "optimizer.step()\n"
        "time.sleep(60)  # a stuck data loader\n"
    )
    result = invoke(str(script), "--timeout", "1", "--output-format", "json")
    data = json.loads(result.stdout)
    assert data["stopped"] == "timeout" and data["steps_run"] == 1
    assert result.exit_code == 0


def test_device_cpu_hides_gpus_from_the_script_only(tmp_path: Path, monkeypatch, capfd) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    script = tmp_path / "env.py"
    script.write_text("import os, sys\nprint(repr(os.environ['CUDA_VISIBLE_DEVICES']), file=sys.stderr)\n")
    invoke(str(script), "--device", "cpu", "--output-format", "json")
    assert "''" in capfd.readouterr().err and os.environ["CUDA_VISIBLE_DEVICES"] == "0"


def test_non_finite_average_and_negative_lr(tmp_path: Path) -> None:
    script = tmp_path / "bad_lr.py"
    script.write_text(
        "import torch, schedulefree\n"
        "model = torch.nn.Linear(3, 1)\n"
        "optimizer = schedulefree.SGDScheduleFree([\n"
        "    {'params': [model.weight], 'lr': float('inf')},\n"
        "    {'params': [model.bias], 'lr': -0.1},\n"
        "])\n"
        "optimizer.train()\n"
        "for _ in range(3):\n"
        "    optimizer.zero_grad()\n"
        "    model(torch.ones(4, 3)).sum().backward()\n"
        "    optimizer.step()\n"
    )
    data = json.loads(invoke(str(script), "--output-format", "json").stdout)
    found = {(f["code"], f["group"], f["step"]) for f in data["findings"]}
    assert ("SF502", 0, 1) in found and ("SF510", 1, 1) in found
    assert data["optimizers"][0]["groups"][0]["trajectory"][0]["ckp1"] == "nan"


def test_eval_that_does_not_move(tmp_path: Path) -> None:
    script = tmp_path / "beta_one.py"
    script.write_text(
        "import torch, schedulefree\n"
        "model = torch.nn.Linear(3, 1)\n"
        "optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=0.1, betas=(1.0, 0.999))\n"
        "for _ in range(3):\n"
        "    optimizer.train()\n"
        "    optimizer.zero_grad()\n"
        "    model(torch.randn(4, 3)).sum().backward()\n"
        "    optimizer.step()\n"
        "    optimizer.eval()\n"
    )
    data = json.loads(invoke(str(script), "--output-format", "json").stdout)
    # after step 1, x = y = z: eval() has nothing to move whatever beta1 is
    assert [(f["code"], f["step"], f["location"]["row"]) for f in data["findings"]] == [
        ("SF507", 2, 9), ("SF507", 3, 9)]
    script.write_text(script.read_text().replace(", betas=(1.0, 0.999)", ""))
    assert json.loads(invoke(str(script), "--output-format", "json").stdout)["findings"] == []


def test_python_dash_m_subprocess(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    process = subprocess.run(
        [sys.executable, "-m", "sfdoctor", "replay", str(FIXTURES / "swallow_stop.py"), "--steps", "3",
         "--output-format", "json", "--", str(marker)],
        check=False, capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert process.returncode == 0, process.stderr
    assert json.loads(process.stdout)["steps_run"] == 3
    assert "after the loop" not in process.stderr and marker.read_text() == "finally ran after 2 steps\n"


def test_lr_written_by_the_script_itself(tmp_path: Path) -> None:
    script = tmp_path / "manual_warmup.py"
    script.write_text(
        "import torch, schedulefree\n"
        "model = torch.nn.Linear(3, 1)\n"
        "optimizer = schedulefree.SGDScheduleFree(model.parameters(), lr=0.1)\n"
        "optimizer.train()\n"
        "for step in range(4):\n"
        "    for group in optimizer.param_groups:\n"
        "        group['lr'] = 0.1 * step / 3  # a hand-written warm-up\n"
        "    optimizer.zero_grad()\n"
        "    model(torch.ones(4, 3)).sum().backward()\n"
        "    optimizer.step()\n"
    )
    data = json.loads(invoke(str(script), "--output-format", "json").stdout)
    found = {f["code"]: f for f in data["findings"]}
    assert "code other than an LR scheduler set lr from 0.1 to 0.0 before step 1" in found["SF501"]["message"]
    changed = found["SF504"]
    assert "changed between steps 3 times by code other than an LR scheduler" in changed["message"]
    assert changed["location"]["row"] == 10 and changed["step"] == 2  # the step() before which it was seen
