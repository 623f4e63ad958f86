"""Lint speed on a large real tree: the installed torch package's own Python files.

Prints, for (1) a cold `sfdoctor lint` run (no cache; the whole-project analysis included), (2) a
warm run (the result cache from the previous run), (3) the analysis alone (prefilter off: every
file parsed and analysed) and (4) `ruff check --select ALL --no-cache` on the same tree: files,
lines, seconds, lines/s per core and peak memory, then the ratios. Pass a real project's folder
(a clone of kohya-ss/sd-scripts, say) to measure the project analysis on ScheduleFree-heavy code.

    python bench/lint_speed.py [TREE] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

# Runs one command and reports its wall time and the peak RSS of its process tree (Linux ru_maxrss).
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def default_tree() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        sys.exit("torch is not installed: pass a folder to measure")
    return Path(spec.origin).parent


def measure(command: list[str], repeat: int) -> dict:
    runs = [json.loads(subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True,
                                      text=True, check=True).stdout) for _ in range(repeat)]
    best = min(runs, key=lambda run: run["seconds"])
    return {"seconds": best["seconds"], "peak_mib": max(run["peak_mib"] for run in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", nargs="?", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest counts")
    args = parser.parse_args()
    tree = args.tree or default_tree()
    files = [p for p in tree.rglob("*.py") if "__pycache__" not in p.parts]
    lines = sum(p.read_bytes().count(b"\n") for p in files)
    cores = os.cpu_count() or 1
    sfdoctor = [sys.executable, "-m", "sfdoctor", "lint", "--exit-zero", "--quiet", "--output-format", "concise"]
    commands = {
        "sfdoctor lint --no-cache (cold)": [*sfdoctor, "--no-cache", str(tree)],
        "sfdoctor lint (warm: cache)": [*sfdoctor, str(tree)],
        "sfdoctor lint --no-prefilter --no-cache": [*sfdoctor, "--no-prefilter", "--no-cache", str(tree)],
    }
    ruff = shutil.which("ruff")
    if ruff:
        commands["ruff check --select ALL --no-cache"] = [
            ruff, "check", "--select", "ALL", "--no-cache", "--isolated", "--exit-zero", "--quiet", str(tree)
        ]
    print(f"tree: {tree}\nfiles: {len(files)}  lines: {lines}  cores: {cores}\n")
    print(f"{'run':<42} {'seconds':>8} {'lines/s/core':>13} {'peak MiB':>9}")
    results = {}
    for name, command in commands.items():
        if "warm" in name:  # fill the cache first: the first run of a new sfdoctor finds none
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        result = results[name] = measure(command, args.repeat)
        per_core = lines / result["seconds"] / cores
        print(f"{name:<42} {result['seconds']:>8.2f} {per_core:>13,.0f} {result['peak_mib']:>9.0f}")
    if ruff:
        ruff_seconds = results["ruff check --select ALL --no-cache"]["seconds"]
        for name in list(commands)[:3]:
            print(f"{name}: {results[name]['seconds'] / ruff_seconds:.2f}x ruff's time")


if __name__ == "__main__":
    main()
