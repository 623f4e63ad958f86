"""SF509 with two real processes (gloo, CPU): the ranks compare lr, weight_sum and mode at the checks."""

from __future__ import annotations

import json
from pathlib import Path

import schedulefree
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

import sfdoctor

WORLD = 2


def train_rank(rank: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=WORLD)
    try:
        found = {}
        for case in ("same", "rank_dependent_lr"):
            torch.manual_seed(0)
            model = DistributedDataParallel(torch.nn.Linear(4, 1))
            optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-2)
            with sfdoctor.watch(optimizer, on_problem="log", log_every=2) as guard:
                optimizer.train()
                for step in range(1, 5):
                    if case == "rank_dependent_lr" and rank == 0 and step == 3:
                        optimizer.param_groups[0]["lr"] = 5e-3  # a scheduler stepped on rank 0 only
                    optimizer.zero_grad()
                    inputs = torch.randn(8, 4)
                    torch.nn.functional.mse_loss(model(inputs), inputs[:, :1]).backward()
                    optimizer.step()
            found[case] = [(f.code, f.step, f.message) for f in guard.findings]
        Path(folder, f"rank{rank}.json").write_text(json.dumps(found))
    finally:
        dist.destroy_process_group()


def test_ranks_that_disagree_are_reported(tmp_path: Path) -> None:
    mp.spawn(train_rank, args=(str(tmp_path),), nprocs=WORLD)
    rank0, rank1 = (json.loads(Path(tmp_path, f"rank{r}.json").read_text()) for r in range(WORLD))
    assert rank0["same"] == rank1["same"] == []
    assert [code for code, _, _ in rank0["rank_dependent_lr"]] == ["SF504", "SF509"]  # rank 0 wrote the lr
    assert rank1["rank_dependent_lr"] == [[
        "SF509", 4,
        ("group 0 at step 4: the ranks disagree on scheduled lr: rank 0 has 0.005, rank 1 has 0.01: they train "
         "different models"),
    ]]
