"""The training curve: training loss and validation F1 per class against step."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..io import pyplot, write_png

__all__ = ["plot_curve"]


def plot_curve(metrics_path: str | os.PathLike, png: str | os.PathLike) -> None:
    """Training loss and validation F1 per class against step."""
    plt = pyplot()
    recs = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in recs]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    a1.plot(steps, [r["train_loss"] for r in recs], "k.-")
    a1.set(xlabel="step", ylabel="training loss", title="loss")
    for c, col in (("helix", "tab:red"), ("sheet", "tab:blue"), ("other", "tab:gray")):
        if f"val_{c}_f1" in recs[0]:
            a2.plot(steps, [r[f"val_{c}_f1"] for r in recs], ".-", color=col, label=c)
        if f"valreal_{c}_f1" in recs[0] and c != "other":
            a2.plot(steps, [r[f"valreal_{c}_f1"] for r in recs], ".--", color=col, label=f"{c}, degraded")
    a2.set(xlabel="step", ylabel="voxel F1", title="validation", ylim=(0, 1))
    a2.legend()
    fig.tight_layout()
    write_png(fig, png)
