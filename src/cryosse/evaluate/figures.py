"""Figures of an evaluation: density with true and predicted labels on a slice; F1 bars."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io import Map, pyplot, write_png

__all__ = ["write_slice_figure", "bar_chart"]


def write_slice_figure(png: str | os.PathLike, density: Map, truth: Map, pred: Map, title: str) -> None:
    """Density, true and predicted labels on the z-slice with the most true helix and sheet."""
    _slice_figure(Path(png), density, truth, pred, title)


def _slice_figure(png: Path, density: Map, truth: Map, pred: Map, title: str) -> None:
    from matplotlib.colors import ListedColormap

    plt = pyplot()

    # the z-slice with the most secondary structure in the truth
    sse = ((truth.data == 1) | (truth.data == 2)).sum(axis=(1, 2))
    k = int(np.argmax(sse))
    cmap = ListedColormap(["#ffffff", "#e41a1c", "#377eb8", "#bbbbbb"])
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    axes[0].imshow(density.data[k], cmap="gray", origin="lower")
    axes[0].set_title("density")
    for ax, lab, name in ((axes[1], truth, "true labels"), (axes[2], pred, "predicted labels")):
        ax.imshow(density.data[k], cmap="gray", origin="lower")
        overlay = np.ma.masked_where(lab.data[k] == 0, lab.data[k])
        ax.imshow(overlay, cmap=cmap, vmin=0, vmax=3, alpha=0.6, origin="lower", interpolation="nearest")
        ax.set_title(name)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{title}: z-slice {k} (red helix, blue sheet, grey other protein)")
    fig.tight_layout()
    write_png(fig, png)


def bar_chart(png: Path, pooled: dict, mean: dict) -> None:
    plt = pyplot()

    classes = ["helix", "sheet", "other"]
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(x - 0.2, [pooled[c]["f1"] for c in classes], 0.4, label="pooled voxels")
    ax.bar(x + 0.2, [mean[c] for c in classes], 0.4, label="mean over samples")
    ax.set_xticks(x, classes)
    ax.set(ylim=(0, 1), ylabel="voxel F1", title="test split")
    ax.legend()
    fig.tight_layout()
    write_png(fig, png)
