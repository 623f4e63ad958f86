"""Overhead of the replay instrumentation: the same training loop with and without it.

With it, records are sent as the replay's child process sends them (here to /dev/null): device values read back
and pickled about once a second.

A ~10M-parameter MLP, 200 AdamWScheduleFree steps per run, runs alternated, medians compared.
Usage: python bench/replay_overhead.py [--runs 5] [--steps 200] [--batch 256] [--threads N] [--device cpu]
                                      [--clock wall|cpu]
The ratio is the median of per-pair ratios: each pair runs back to back, so load drift cancels. On a
machine shared with other work, `--clock cpu --threads 1` times the process's own CPU time instead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from itertools import pairwise

import schedulefree
import torch

from sfdoctor.replay.child import Stream
from sfdoctor.replay.instrument import Instrumentation
from sfdoctor.replay.record import Outcome


def make_model(device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    widths = [1024, 2048, 2048, 2048, 10]  # 10.5M parameters
    layers = []
    for width_in, width_out in pairwise(widths):
        layers += [torch.nn.Linear(width_in, width_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1]).to(device)


def train(steps: int, batch: int, device: str, clock: Callable[[], float] = time.perf_counter,
          around: Callable[[torch.optim.Optimizer], AbstractContextManager] = lambda optimizer: nullcontext()) -> float:
    """Seconds for `steps` steps, timed inside `around(optimizer)` (bench/watch_overhead.py: the guard)."""
    model = make_model(device)
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)
    inputs = torch.randn(batch, 1024, device=device)
    targets = torch.randint(0, 10, (batch,), device=device)
    model.train()
    optimizer.train()
    with around(optimizer):
        started = clock()
        for _ in range(steps):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(inputs), targets).backward()
            optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return clock() - started


def instrumented(steps: int, batch: int, device: str, clock: Callable[[], float]) -> float:
    instrumentation = Instrumentation(max_steps=steps + 1)
    with open(os.devnull, "wb") as devnull:
        stream = Stream(devnull.fileno(), instrumentation, os._exit)
        instrumentation.on_step = stream.after_step
        instrumentation.install()
        stream.start()
        try:
            return train(steps, batch, device, clock)
        finally:
            instrumentation.uninstall()
            stream.send(Outcome())  # the last update, which ends the sender thread


def main(candidate: Callable[[int, int, str, Callable[[], float]], float] = instrumented, label: str = "instrumented",
         description: str = __doc__.splitlines()[0]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    options = parser.parse_args()
    clock = time.process_time if options.clock == "cpu" else time.perf_counter
    torch.set_num_threads(options.threads)
    parameters = sum(p.numel() for p in make_model("cpu").parameters())
    print(f"{parameters / 1e6:.1f}M parameters, {options.steps} steps, batch {options.batch}, {options.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {options.clock} clock")
    train(10, options.batch, options.device)  # warm up allocator and kernels
    plain, replayed = [], []
    for _ in range(options.runs):  # alternated, so drifts in machine load hit both sides alike
        plain.append(train(options.steps, options.batch, options.device, clock))
        replayed.append(candidate(options.steps, options.batch, options.device, clock))
    plain_median, replayed_median = statistics.median(plain), statistics.median(replayed)
    print(f"{'plain:':<14}median {plain_median:.2f}s  runs {', '.join(f'{t:.2f}' for t in plain)}")
    print(f"{label + ':':<14}median {replayed_median:.2f}s  runs {', '.join(f'{t:.2f}' for t in replayed)}")
    pair_ratios = [r / p for p, r in zip(plain, replayed)]
    print(f"ratio of medians: {replayed_median / plain_median:.3f}x; "
          f"median of pair ratios: {statistics.median(pair_ratios):.3f}x")
    return options


if __name__ == "__main__":
    main()
