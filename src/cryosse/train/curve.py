"""The training curve: the training loss of every step and the validation F1 per class (second
axis) against step, the legend outside the plot."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..io import pyplot, read_tsv, write_png, write_text

__all__ = ["plot_curve", "write_step_losses"]


def write_step_losses(path: str | os.PathLike, losses: list) -> None:
    """``step, loss`` of every training step as TSV (atomically)."""
    write_text(path, "step\tloss\n" + "".join(f"{int(s)}\t{float(v):.6g}\n" for s, v in losses))


def plot_curve(metrics_path: str | os.PathLike, png: str | os.PathLike,
               step_losses: str | os.PathLike | None = None) -> None:
    """Training loss (every step from ``step_losses`` when given, else the mean at each
    validation) on the left axis, validation F1 per class on the right axis."""
    plt = pyplot()
    recs = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in recs]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    per_step = read_tsv(step_losses) if step_losses and Path(step_losses).is_file() else []
    lines = []
    if per_step:
        lines += ax.plot([int(r["step"]) for r in per_step], [float(r["loss"]) for r in per_step], "-",
                         color="k", alpha=0.35, lw=0.8, label="training loss (every step)")
    lines += ax.plot(steps, [r["train_loss"] for r in recs], "k.-",
                     label="training loss (mean since the last validation)")
    ax.set(xlabel="step", ylabel="training loss")
    f1 = ax.twinx()
    for c, col in (("helix", "tab:red"), ("sheet", "tab:blue"), ("other", "tab:gray")):
        if recs and f"val_{c}_f1" in recs[0]:
            lines += f1.plot(steps, [r[f"val_{c}_f1"] for r in recs], "o-", ms=4, color=col,
                             label=f"validation F1 {c}")
        if recs and f"valreal_{c}_f1" in recs[0] and c != "other":
            lines += f1.plot(steps, [r[f"valreal_{c}_f1"] for r in recs], "s--", ms=4, color=col,
                             label=f"validation F1 {c}, degraded")
    f1.set(ylabel="validation voxel F1", ylim=(0, 1))
    ax.legend(handles=lines, loc="upper left", bbox_to_anchor=(1.1, 1.0), frameon=False, fontsize=8)
    ax.set_title("training curve")
    fig.tight_layout()
    write_png(fig, png)
