"""Replay always reports: the audit's hostile scripts (issue 10, R1-R14), replayed by the real CLI in a subprocess.

The scripts are the audit's reproductions, copied to fixtures/replay/hostile/ (endless.py prints one line
before its endless loop, so that the test knows when to signal sfdoctor). Timeouts here only guard the suite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "fixtures" / "replay" / "hostile"
GUARD = 180  # seconds: only so that a regression fails instead of hanging the suite


def sfdoctor(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sfdoctor", "replay", *args], cwd=cwd, env=_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=GUARD, check=False)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def replay_json(script: str, *options: str, cwd: Path = ROOT) -> tuple[int, dict, str]:
    process = sfdoctor(str(HOSTILE / script), *options, "--output-format", "json", cwd=cwd)
    return process.returncode, json.loads(process.stdout), process.stderr  # stdout is the report alone


def trajectory(data: dict, optimizer: int = 0) -> list[dict]:
    return data["optimizers"][optimizer]["groups"][0]["trajectory"]


def test_os_exit_still_gets_a_report_with_every_step() -> None:  # R1
    status, data, _ = replay_json("os_exit.py", "--steps", "20")
    assert data["end"] == "exit" and data["exit_code"] == 3 and data["stopped"] is None
    assert data["steps_run"] == 6 and len(trajectory(data)) == 6
    assert status == data["exit_status"] == 1 and "exited with status 3" in data["summary"]


@pytest.mark.parametrize("script", ["catch_base_exception_forever.py", "catch_base_exception_loop.py"])
def test_a_script_that_swallows_every_stop_is_killed_and_reported(script: str) -> None:  # R2
    status, data, stderr = replay_json(script, "--steps", "20")
    assert "ignoring ReplayStop" in stderr
    assert data["stopped"] == "steps" and data["steps_run"] == 20 and len(trajectory(data)) == 20
    # Ended by the replay's SIGTERM (one that lands in its except: block escapes it) or, failing that, SIGKILL.
    assert data["end"] == "stopped" and data["script_error"] is None
    assert status == 0 and data["summary"] == "No problems found."


@pytest.mark.parametrize("script", ["alarm_ignored_then_stuck.py", "alarm_cancelled_then_stuck.py",
                                    "own_watchdog_stuck.py"])
def test_timeout_whatever_the_script_does_with_sigalrm(script: str) -> None:  # R3, R4, R5
    status, data, _ = replay_json(script, "--steps", "50", "--timeout", "3")
    assert data["stopped"] == "timeout" and data["end"] == "stopped" and not data["force_killed"]
    assert data["steps_run"] == 3 and data["script_error"] is None  # own_watchdog_stuck's alarm is at 30 s
    assert status == 0


def test_a_worker_thread_steps_while_the_main_thread_waits_on_a_queue() -> None:  # R6
    status, data, _ = replay_json("thread_steps_main_waits_queue.py", "--steps", "30")
    assert data["stopped"] == "steps" and data["steps_run"] == 30 and not data["force_killed"]
    assert status == 0


def test_writes_to_fd_1_go_to_stderr() -> None:  # R10
    status, data, stderr = replay_json("fd1_stdout.py", "--steps", "20")
    assert data["steps_run"] == 20 and status == 0
    for line in ("progress written straight to fd 1", "progress via sys.__stdout__", "a child process"):
        assert line in stderr


def test_a_forking_script_gives_one_report() -> None:  # R11
    status, data, _ = replay_json("forks.py", "--steps", "20")
    assert data["steps_run"] == 20 and len(data["optimizers"]) == 1 and len(trajectory(data)) == 20
    assert status == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_to_sfdoctor_reports_then_exits(signum: int) -> None:  # R12
    process = subprocess.Popen(
        [sys.executable, "-m", "sfdoctor", "replay", str(HOSTILE / "endless.py"), "--output-format", "json"],
        cwd=ROOT, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        for line in process.stderr:  # the script's prints come on sfdoctor's stderr
            if "stuck in an endless loop" in line:
                break
        process.send_signal(signum)
        stdout, _ = process.communicate(timeout=GUARD)
    finally:
        process.kill()
    data = json.loads(stdout)
    name = signal.Signals(signum).name
    assert data["stopped"] == "killed" and data["interrupted_by"] == name and data["end"] == "stopped"
    assert data["steps_run"] == 5 and len(trajectory(data)) == 5
    assert process.returncode == data["exit_status"] == 128 + signum and name in data["summary"]


def test_timeout_before_the_first_step_says_so() -> None:  # R13
    status, data, stderr = replay_json("infinite_loop_before_steps.py", "--steps", "50", "--timeout", "2")
    assert data["stopped"] == "timeout" and data["steps_run"] == 0
    assert status == 2 and "--timeout (2s) stopped" in stderr and "before its first ScheduleFree" in stderr


def test_text_and_exit_status_agree_after_sys_exit_in_finally() -> None:  # R14
    process = sfdoctor(str(HOSTILE / "sys_exit_finally.py"), "--steps", "20")
    assert process.returncode == 1
    assert "stopped after 20 steps as asked" in process.stdout and "No problems found" not in process.stdout
    assert process.stdout.rstrip().endswith(
        "No replay findings; exit status 1 because the script failed: the script called sys.exit(4).")


def test_out_is_resolved_before_the_script_changes_folder(tmp_path: Path) -> None:  # R8
    status, data, _ = replay_json("chdir_script.py", "--steps", "5", "--out", "replay-out", cwd=tmp_path)
    saved = json.loads((tmp_path / "replay-out" / "trajectory.json").read_text())
    assert saved["steps_run"] == data["steps_run"] == 5 and status == 0


@pytest.mark.parametrize("script", ["recreate_optimizer.py", "recreate_optimizer_forever.py"])
def test_steps_count_over_a_recreated_optimizer(script: str) -> None:  # R9
    status, data, _ = replay_json(script, "--steps", "20")
    assert data["stopped"] == "steps" and data["steps_run"] == 20
    assert [optimizer["steps"] for optimizer in data["optimizers"]] == [5, 15]
    assert status == 0


def test_a_signal_that_ends_the_script_is_reported(tmp_path: Path) -> None:
    script = tmp_path / "killed.py"
    script.write_text(
        "import os, signal, time, torch, schedulefree\n"
        "model = torch.nn.Linear(2, 1)\n"
        "optimizer = schedulefree.SGDScheduleFree(model.parameters(), lr=0.1)\n"
        "optimizer.train()\n"
        "for step in range(4):\n"
        "    model(torch.ones(1, 2)).sum().backward()\n"
        "    optimizer.step()\n"
        "time.sleep(1.5)  # evaluating, say: the child sends the records about every second meanwhile\n"
        "os.kill(os.getpid(), signal.SIGKILL)  # like the kernel's OOM killer\n"
    )
    process = sfdoctor(str(script), "--output-format", "json")
    data = json.loads(process.stdout)
    assert data["end"] == "signal" and data["signal"] == "SIGKILL" and data["stopped"] is None
    # SIGKILL leaves no time to send records: the report has what was sent up to a second before it.
    assert data["steps_run"] == 4 and len(trajectory(data)) == 4
    assert process.returncode == 1 and "ended by SIGKILL" in data["summary"]


@pytest.mark.parametrize("script", ["compiled_step.py", "compiled_opt_step.py"])
def test_torch_compile_of_the_train_step_or_of_opt_step_replays(script: str) -> None:  # R7
    status, data, _ = replay_json(script, "--steps", "3")
    assert data["script_error"] is None and data["stopped"] == "steps" and data["steps_run"] == 3
    steps = trajectory(data)
    assert [s["step"] for s in steps] == [1, 2, 3] and all(s["param_change_norm"] > 0 for s in steps)
    assert status == 0


def test_a_failure_of_sfdoctor_itself_is_not_blamed_on_the_script(tmp_path: Path) -> None:  # R7
    script = tmp_path / "breaks_the_instrumentation.py"
    script.write_text(
        "import torch, schedulefree\n"
        "model = torch.nn.Linear(2, 1)\n"
        "optimizer = schedulefree.SGDScheduleFree(model.parameters(), lr=0.1)\n"
        "optimizer.train()\n"
        "torch._foreach_norm = None  # used by sfdoctor's instrumentation, not by this script\n"
        "for _ in range(3):\n"
        "    model(torch.ones(1, 2)).sum().backward()\n"
        "    optimizer.step()\n"
    )
    process = sfdoctor(str(script))
    assert process.returncode == 2
    assert "internal error:" in process.stdout and "script error" not in process.stdout
    assert "TypeError in sfdoctor's own instrumentation (a bug in sfdoctor, not in the script" in process.stderr


def test_a_script_that_ignores_sigterm_is_killed_at_the_timeout(tmp_path: Path) -> None:
    script = tmp_path / "ignores_sigterm.py"
    script.write_text(
        "import signal, time, torch, schedulefree\n"
        "model = torch.nn.Linear(2, 1)\n"
        "optimizer = schedulefree.SGDScheduleFree(model.parameters(), lr=0.1)\n"
        "optimizer.train()\n"
        "for _ in range(3):\n"
        "    model(torch.ones(1, 2)).sum().backward()\n"
        "    optimizer.step()\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "while True:\n"
        "    time.sleep(0.1)\n"
    )
    process = sfdoctor(str(script), "--timeout", "2", "--output-format", "json")
    data = json.loads(process.stdout)
    assert data["stopped"] == "timeout" and data["force_killed"] and data["signal"] == "SIGKILL"
    assert data["end"] == "stopped" and data["steps_run"] == 3 and len(trajectory(data)) == 3
    assert process.returncode == 0
