"""trajectory.png: weight_sum, scheduled lr and ckp1 per group over the steps, findings marked."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: no window, no global figure state

PANELS = (("weight_sum", "weight_sum"), ("scheduled_lr", "lr (scheduled)"), ("ckp1", "ckp1"))


def plot_trajectory(data: dict, path: Path) -> None:
    figure = Figure(figsize=(8, 7))
    axes = figure.subplots(len(PANELS), 1, sharex=True)
    for optimizer in data["optimizers"]:
        for group in optimizer["groups"]:
            ranks = sorted({record.get("rank") for record in group["trajectory"]}, key=lambda rank: rank or 0)
            for rank in ranks:  # one line per rank in a distributed replay (None: a single process)
                records = [record for record in group["trajectory"] if record.get("rank") == rank]
                label = f"{optimizer['class']} [{optimizer['index']}] group {group['index']}" + (
                    f" rank {rank}" if rank is not None else "")
                for axis, (key, _) in zip(axes, PANELS):
                    axis.plot([record["step"] for record in records], [_number(record[key]) for record in records],
                              marker=".", label=label)
    for axis, (_, title) in zip(axes, PANELS):
        axis.set_ylabel(title)
        axis.grid(alpha=0.3)
    for finding in data["findings"]:
        if finding.get("step") is not None:
            for axis in axes:
                axis.axvline(finding["step"], color="red" if finding["severity"] == "error" else "orange",
                             alpha=0.4, linestyle="--")
            axes[0].annotate(finding["code"], (finding["step"], 1), xycoords=("data", "axes fraction"),
                             rotation=90, va="top", fontsize=8, color="red")
    axes[0].legend(fontsize=8, loc="best")
    axes[-1].set_xlabel("step")
    figure.suptitle(f"sfdoctor replay {data['script']}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def _number(value: object) -> float:
    return float(value) if value is not None else float("nan")
