"""The replay command's interface: arguments, configuration, exit status, output files, timeout."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
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


def run_sfdoctor(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real command line in a fresh process: the script's own output (on our stderr) is captured too."""
    return subprocess.run([sys.executable, "-m", "sfdoctor", "replay", *args], check=False, capture_output=True,
                          text=True, cwd=cwd, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_module_runs_as_python_dash_m_and_gets_its_arguments() -> None:
    process = run_sfdoctor("-m", "trainpkg.train", "--steps", "3", "--output-format", "json", "--",
                           "--lr", "0.02", "--warmup-epochs", "1", "--step", "5", cwd=FIXTURES)
    assert process.returncode == 1, process.stderr
    data = json.loads(process.stdout)
    assert data["module"] == "trainpkg.train" and data["script"] is None
    assert data["args"] == ["--lr", "0.02", "--warmup-epochs", "1", "--step", "5"]
    # a relative import, __spec__ and __name__ as python -m sets them; --step 5 reached the script
    assert "trainpkg.train: __name__=__main__ __spec__.name=trainpkg.train lr=0.02 step=5" in process.stderr
    scheduler_row = next(row for row, line in enumerate(
        (FIXTURES / "trainpkg" / "train.py").read_text().splitlines(), start=1) if "LambdaLR(" in line)
    assert [(f["code"], f["filename"], f["location"]["row"]) for f in data["findings"]] == [
        ("SF501", "trainpkg/train.py", scheduler_row), ("SF503", "trainpkg/train.py", scheduler_row)]
    notes = [line for line in process.stderr.splitlines() if line.startswith("sfdoctor replay: ")]
    assert notes == [("sfdoctor replay: -m trainpkg.train receives the arguments --lr 0.02 --warmup-epochs 1 "
                      "--step 5 (--step: the script's, not sfdoctor replay's; replay's own options go before --)")]


def test_module_from_pyproject(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "trainpkg", tmp_path / "trainpkg")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.sfdoctor.replay]\nmodule = "trainpkg.train"\nargs = ["--lr", "0.03"]\nsteps = 2\n')
    process = run_sfdoctor("--output-format", "json", cwd=tmp_path)
    assert process.returncode == 0, process.stderr
    data = json.loads(process.stdout)
    assert (data["module"], data["args"], data["steps_run"], data["findings"]) == (
        "trainpkg.train", ["--lr", "0.03"], 2, [])
    assert "sfdoctor replay: " not in process.stderr  # --lr does not look like a replay option: no note


def test_script_that_does_not_parse_is_a_one_line_error(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("import torch\nbatch = (1,\nprint(batch)\n")
    result = invoke(str(script), "--steps", "3")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"sfdoctor replay: error: {script}:2: SyntaxError: '(' was never closed\n"
    result = invoke(str(script), "--output-format", "json")
    data = json.loads(result.stdout)
    assert result.exit_code == 2 and data["exit_status"] == 2 and data["steps_run"] == 0
    assert data["summary"] == f"{script}:2: SyntaxError: '(' was never closed"
    assert data["script_error"]["frames"] == [{"filename": str(script), "row": 2, "function": "<module>"}]


def test_crash_traceback_keeps_the_users_frames(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    result = invoke("fixtures/replay/frameworks/lightning_crash.py", "--steps", "6")
    assert result.exit_code == 1
    lines = result.stdout.split("script error: RuntimeError: mat1 and mat2 shapes cannot be multiplied")[1]
    frames = [line.strip() for line in lines.splitlines()[1:] if line.startswith("  ")]
    assert frames[0] == "fixtures/replay/frameworks/lightning_crash.py:31 in <module>"
    assert re.fullmatch(r"\.\.\. \d+ library frames", frames[1])
    assert frames[2] == "fixtures/replay/frameworks/lightning_crash.py:17 in training_step"
    assert len(frames) == 6 and frames[-1].endswith(" in forward") and "torch/nn/modules/linear.py:" in frames[-1]


def test_step_in_eval_mode_names_the_eval_call_of_a_plain_loop(tmp_path: Path) -> None:
    script = tmp_path / "validate_then_train.py"
    script.write_text(
        "import torch, schedulefree\n"
        "model = torch.nn.Linear(3, 1)\n"
        "optimizer = schedulefree.SGDScheduleFree(model.parameters(), lr=0.1)\n"
        "def validate():\n"
        "    optimizer.eval()\n"
        "optimizer.train()\n"
        "for step in range(1, 10):\n"
        "    model(torch.randn(4, 3)).sum().backward()\n"
        "    optimizer.step()\n"
        "    if step == 3:\n"
        "        validate()\n"
    )
    result = invoke(str(script), "--steps", "6", "--output-format", "json")
    assert result.exit_code == 1
    (finding,) = json.loads(result.stdout)["findings"]
    assert (finding["code"], finding["step"], finding["location"]["row"]) == ("SF506", 4, 5)
    assert f"optimizer.eval() at {script}:5 in validate() after step 3 left it there" in finding["message"]
    assert finding["related"][0]["location"]["row"] == 9
    assert finding["notes"] == ["call optimizer.train() when evaluation ends"]


def test_module_crash_traceback_starts_in_the_module(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "crashpkg").mkdir()
    (tmp_path / "crashpkg" / "__init__.py").write_text("")
    (tmp_path / "crashpkg" / "__main__.py").write_text(
        "import torch, schedulefree\n"
        "model = torch.nn.Linear(3, 1)\n"
        "optimizer = schedulefree.SGDScheduleFree(model.parameters(), lr=0.1)\n"
        "optimizer.train()\n"
        "model(torch.randn(4, 3)).sum().backward()\n"
        "optimizer.step()\n"
        "raise ValueError('config missing')\n"
    )
    monkeypatch.chdir(tmp_path)
    result = invoke("-m", "crashpkg", "--output-format", "json")
    data = json.loads(result.stdout)
    assert result.exit_code == 1 and data["steps_run"] == 1 and data["end"] == "crash"
    assert data["script_error"]["frames"] == [
        {"filename": str(tmp_path / "crashpkg" / "__main__.py"), "row": 7, "function": "<module>"}]
    assert data["summary"].endswith("the script failed: ValueError: config missing.")
