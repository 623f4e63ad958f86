"""How `sfdoctor replay` ends on the audit's hostile scripts (fixtures/replay/hostile/): status, report, time.

Usage: python bench/replay_ends.py   (from the repository root; prints one row per case)

Each case runs `python -m sfdoctor replay SCRIPT OPTIONS --output-format json` and checks that stdout is
one JSON document. `endless.py + SIGTERM` sends SIGTERM to sfdoctor once the script is in its endless loop,
and its time is from the signal to sfdoctor's exit.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "fixtures" / "replay" / "hostile"
CASES = [
    ("../correct.py", "--steps 25"),
    ("os_exit.py", "--steps 20"),
    ("sys_exit_finally.py", "--steps 20"),
    ("fd1_stdout.py", "--steps 20"),
    ("forks.py", "--steps 20"),
    ("thread_steps_main_waits_queue.py", "--steps 30"),
    ("recreate_optimizer_forever.py", "--steps 20"),
    ("catch_base_exception_forever.py", "--steps 20"),
    ("catch_base_exception_loop.py", "--steps 20"),
    ("alarm_ignored_then_stuck.py", "--steps 50 --timeout 5"),
    ("alarm_cancelled_then_stuck.py", "--steps 50 --timeout 5"),
    ("own_watchdog_stuck.py", "--steps 50 --timeout 5"),
    ("infinite_loop_before_steps.py", "--steps 50 --timeout 5"),
    ("compiled_step.py", "--steps 3"),
    ("compiled_opt_step.py", "--steps 3"),
]


def command(script: str, options: str) -> list[str]:
    return [sys.executable, "-m", "sfdoctor", "replay", str(HOSTILE / script), *options.split(),
            "--output-format", "json"]


def run(script: str, options: str) -> tuple[int, str, float]:
    started = time.monotonic()
    process = subprocess.run(command(script, options), cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, check=False)
    return process.returncode, process.stdout, time.monotonic() - started


def run_with_sigterm() -> tuple[int, str, float]:
    process = subprocess.Popen(command("endless.py", ""), cwd=ROOT, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if "stuck in an endless loop" in line:
            break
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate()
    return process.returncode, stdout, time.monotonic() - started


def row(name: str, options: str, status: int, stdout: str, seconds: float) -> str:
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        return f"{name:34} {options:24} {status:>4}  stdout is not one JSON document  {seconds:6.1f}"
    killed = " force-killed" if data["force_killed"] else ""
    return (f"{name:34} {options:24} {status:>4}  {data['stopped'] or '-':8} {data['end']:8} {data['steps_run']:>5}"
            f"{killed:13} {seconds:6.1f}")


def main() -> None:
    print(f"{'script':34} {'options':24} exit  stopped  end      steps              seconds")
    for script, options in CASES:
        print(row(Path(script).name, options, *run(script, options)), flush=True)
    print(row("endless.py + SIGTERM", "", *run_with_sigterm()))


if __name__ == "__main__":
    main()
