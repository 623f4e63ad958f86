"""Fixes of the lr rules, applied through the real CLI to real files."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import lint

ONE_CYCLE = """\
import torch
import schedulefree
from torch.optim.lr_scheduler import OneCycleLR

model = torch.nn.Linear(2, 2)
opt = schedulefree.SGDScheduleFree(model.parameters(), lr=1.0)
inline = OneCycleLR(opt, max_lr=0.1, total_steps=100)
one_per_line = OneCycleLR(
    opt,
    max_lr=0.1,
    total_steps=100,
)
explicit = OneCycleLR(opt, max_lr=0.1, total_steps=100, cycle_momentum=True)
"""

FIXED = (
    ONE_CYCLE.replace("total_steps=100)\n", "total_steps=100, cycle_momentum=False)\n", 1)
    .replace("    total_steps=100,\n)", "    total_steps=100,\n    cycle_momentum=False,\n)")
    .replace("cycle_momentum=True", "cycle_momentum=False")
)


def codes(path: Path) -> list[str]:
    return [f["code"] for f in json.loads(lint("--isolated", "--output-format", "json", path).stdout)]


def test_sf103_fix_is_unsafe_and_sets_cycle_momentum_false(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(ONE_CYCLE)
    assert codes(script).count("SF103") == 3

    lint("--isolated", "--fix", script)  # the fix is unsafe: a plain --fix leaves the file alone
    assert script.read_text() == ONE_CYCLE

    lint("--isolated", "--fix", "--unsafe-fixes", script)
    assert script.read_text() == FIXED
    assert "SF103" not in codes(script)

    lint("--isolated", "--fix", "--unsafe-fixes", script)  # a second run changes nothing
    assert script.read_text() == FIXED
