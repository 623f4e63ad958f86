"""Overhead of sfdoctor.watch at log_every=50: the replay benchmark's training loop with and without the guard.

Usage: python bench/watch_overhead.py [--runs 5] [--steps 200] [--batch 256] [--threads N] [--device cpu]
                                     [--clock wall|cpu]
After the alternated runs it profiles one more guarded run and prints the share of the loop's time spent
in the guard (its step hooks and checks): on a machine shared with other work the alternated runs' noise
is larger than the guard's cost, and that share is not affected by it (cProfile slows the guard's Python
more than torch's kernels, so the share is an upper bound).
"""

from __future__ import annotations

import cProfile
import pstats
import time
from collections.abc import Callable

from replay_overhead import main, train

import sfdoctor
import sfdoctor.guard

GUARD_ENTRY_POINTS = ("_before", "_after")  # every step hook and check runs inside one of these


def watched(steps: int, batch: int, device: str, clock: Callable[[], float]) -> float:
    return train(steps, batch, device, clock, around=lambda optimizer: sfdoctor.watch(optimizer, log_every=50))


def guard_share(steps: int, batch: int, device: str) -> float:
    profiler = cProfile.Profile(time.process_time)  # the clock the loop is timed with
    loop = profiler.runcall(watched, steps, batch, device, time.process_time)
    stats = pstats.Stats(profiler).stats  # (file, line, function) -> (calls, ..., total, cumulative, callers)
    in_guard = sum(cumulative for (filename, _, function), (_, _, _, cumulative, _) in stats.items()
                   if filename == sfdoctor.guard.__file__ and function in GUARD_ENTRY_POINTS)
    return in_guard / loop


if __name__ == "__main__":
    options = main(watched, "watched", __doc__.splitlines()[0])
    share = guard_share(options.steps, options.batch, options.device)
    print(f"time in the guard (cProfile, cpu clock): {100 * share:.2f}% of the loop, at most {1 + share:.3f}x")
