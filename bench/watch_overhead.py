"""Overhead of sfdoctor.watch at log_every=50: the replay benchmark's training loop with and without the guard.

Usage: python bench/watch_overhead.py [--runs 5] [--steps 200] [--batch 256] [--threads N] [--device cpu]
"""

from __future__ import annotations

from replay_overhead import main, train

import sfdoctor


def watched(steps: int, batch: int, device: str) -> float:
    return train(steps, batch, device, around=lambda optimizer: sfdoctor.watch(optimizer, log_every=50))


if __name__ == "__main__":
    main(watched, "watched", __doc__.splitlines()[0])
