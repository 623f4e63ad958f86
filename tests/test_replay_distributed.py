"""Distributed replay: real 2-process gloo jobs on CPU, under torchrun and with --nproc, reported as one."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from sfdoctor.replay.distributed import rank_divergence

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = "fixtures/replay/distributed"
LIMIT = 180  # seconds: --timeout ends every replay long before


def run(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=LIMIT)


def torchrun(script: str, *options: str) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node 2 --no-python sfdoctor replay ...`, as a user runs it."""
    return run(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(_free_port()),
               "--no-python", sys.executable, "-m", "sfdoctor", "replay", f"{FIXTURES}/{script}", *options)


def nproc(script: str, *options: str) -> subprocess.CompletedProcess:
    return run(sys.executable, "-m", "sfdoctor", "replay", "--nproc", "2", f"{FIXTURES}/{script}", *options)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_correct_ddp_script_under_torchrun_is_one_json_document_without_findings() -> None:
    result = torchrun("correct.py", "--steps", "4", "--timeout", "60", "--output-format", "json")
    data = json.loads(result.stdout)  # one document: the other rank printed nothing
    assert result.returncode == 0, result.stderr
    assert data["exit_status"] == 0 and data["findings"] == [] and data["summary"] == "No problems found."
    assert [(r["rank"], r["stopped"], r["steps_run"]) for r in data["ranks"]] == [(0, "steps", 4), (1, "steps", 4)]
    trajectory = data["optimizers"][0]["groups"][0]["trajectory"]
    assert [(record["rank"], record["step"]) for record in trajectory] == [(0, 1), (0, 2), (0, 3), (0, 4),
                                                                            (1, 1), (1, 2), (1, 3), (1, 4)]


def test_eval_on_rank_0_only_is_a_rank_divergence_at_its_step() -> None:
    result = torchrun("eval_on_rank0.py", "--steps", "8", "--timeout", "60")
    out = result.stdout
    assert result.returncode == 1, result.stderr
    assert out.count("sfdoctor replay fixtures/replay/distributed/eval_on_rank0.py on 2 ranks") == 1
    assert "  rank 0: the script crashed after 3 steps\n" in out
    assert (f"{FIXTURES}/_ddp.py:26:1: SF509 [error] group 0 at step 4: the ranks disagree on train mode: rank 0 has "
            "False, rank 1 has True: they train different models") in out
    # SF506 points at the eval() that rank 0 alone called
    assert (f"{FIXTURES}/eval_on_rank0.py:17:1: SF506 [error] rank 0: step 4 of AdamWScheduleFree was called while the "
            f"optimizer was in eval mode (optimizer.eval() at {FIXTURES}/eval_on_rank0.py:17 after step 3") in out
    assert "exit status 1 because the script failed: rank 0: step() was called in eval mode" in out


def test_warmup_scheduler_with_nproc_is_reported_once_and_out_holds_every_rank(tmp_path: Path) -> None:
    result = nproc("warmup_scheduler.py", "--steps", "3", "--timeout", "60", "--output-format", "json",
                   "--out", str(tmp_path))
    data = json.loads(result.stdout)
    assert result.returncode == 1, result.stderr
    assert [(f["code"], f["step"]) for f in data["findings"]] == [("SF501", 1), ("SF504", 2)]  # not once per rank
    assert data["findings"][0]["message"].startswith("group 0 had weight_sum 0 on 1 of 3 steps")  # every rank: no label
    saved = json.loads((tmp_path / "trajectory.json").read_text())
    assert saved["findings"] == data["findings"] and saved["world_size"] == 2
    assert {(record["rank"], record["step"]) for record in saved["optimizers"][0]["groups"][0]["trajectory"]} == {
        (rank, step) for rank in (0, 1) for step in (1, 2, 3)}
    rows = list(csv.DictReader((tmp_path / "trajectory.csv").open()))
    assert [(row["rank"], row["step"], row["weight_sum"]) for row in rows][:2] == [("0", "1", "0.0"), ("0", "2",
                                                                                                          "1.5625e-06")]
    assert len(rows) == 6


def test_a_rank_that_crashes_is_named_and_the_other_still_reports() -> None:
    result = nproc("crash_on_rank1.py", "--steps", "6", "--timeout", "60", "--output-format", "json")
    data = json.loads(result.stdout)
    assert result.returncode == 1, result.stderr
    assert [(r["rank"], r["end"], r["steps_run"]) for r in data["ranks"]] == [(0, "crash", 2), (1, "crash", 2)]
    assert data["ranks"][1]["script_error"]["message"] == "rank 1: corrupt batch 3"
    assert "Connection closed by peer" in data["ranks"][0]["script_error"]["message"]  # the consequence, on rank 0
    assert data["summary"] == ("No replay findings; exit status 1 because the script failed: rank 1: ValueError: "
                               "rank 1: corrupt batch 3.")


def test_a_rank_stuck_outside_a_collective_is_stopped_by_timeout_and_both_report() -> None:
    result = nproc("hang_on_rank1.py", "--steps", "6", "--timeout", "5")
    out = result.stdout
    assert result.returncode == 1, result.stderr
    assert "  rank 1: stopped by --timeout (5s) after 2 steps\n" in out
    assert "  rank 0: stopped by --timeout (5s) after 2 steps" in out
    assert "exit status 1 because the script failed: rank 0 (after another rank ended or was stopped): RuntimeError" \
        in out


def test_a_rank_that_never_reports_is_named_after_the_timeout() -> None:
    """Rank 0 of a world of 2 whose rank 1 never started: rank 0 still reports, and names rank 1."""
    env = {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    result = run(sys.executable, "-m", "sfdoctor", "replay", "fixtures/replay/correct.py", "--steps", "2",
                 "--timeout", "1", env=env)
    assert result.returncode == 1, result.stderr
    assert "  rank 0: stopped after 2 steps as asked\n" in result.stdout
    assert "  rank 1: no report: none came within 13s after rank 0's replay ended" in result.stdout


def test_rank_divergence_names_the_field_and_the_ranks_and_ignores_rounding() -> None:
    same = {"scheduled_lr": 0.01, "weight_sum": 2.0, "train_mode": True, "param_change_norm": 0.1234567}
    assert rank_divergence({0: same, 1: {**same, "param_change_norm": 0.1234567 * (1 + 1e-9)}}) is None
    assert rank_divergence({0: same, 1: {**same, "param_change_norm": 0.2}, 2: same}) == (
        "parameter change: ranks 0, 2 have 0.1234567, rank 1 has 0.2")
    assert rank_divergence({0: same, 1: {"train_mode": False}}) == "train mode: rank 0 has True, rank 1 has False"


def test_nproc_runs_a_module_on_every_rank() -> None:
    """`sfdoctor replay --nproc 2 -m pkg.train`: each rank runs the module as `python -m` would, from the cwd."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "sfdoctor", "replay", "--nproc", "2", "--steps", "3", "--timeout", "60",
         "--output-format", "json", "-m", "trainpkg.train", "--", "--lr", "0.02"],
        check=False, cwd=ROOT / "fixtures" / "replay", env=env, capture_output=True, text=True, timeout=LIMIT,
    )
    data = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert data["module"] == "trainpkg.train" and data["summary"] == "No problems found."
    assert [(r["rank"], r["stopped"], r["steps_run"]) for r in data["ranks"]] == [(0, "steps", 3), (1, "steps", 3)]
    assert {record["scheduled_lr"] for record in data["optimizers"][0]["groups"][0]["trajectory"]} == {0.02}
