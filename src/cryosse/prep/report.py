"""The data set report: Markdown with PNG figures (class balance, resolutions, thumbnails)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io import pyplot, read_map, read_tsv, write_png, write_text
from .split import SPLITS

__all__ = ["write_dataset_report"]

CLASSES = ("background", "helix", "sheet", "other")


def _summary(rows: list[dict], chains: list[dict]) -> dict:
    """Entries, chains, components, voxel counts (accepted components) and residue counts."""
    ok = [r for r in rows if r["status"] == "ok"]
    voxels = {c: sum(int(r[f"n_{c}"] or 0) for r in ok) for c in CLASSES}
    residues = {"helix": 0.0, "sheet": 0.0, "other": 0.0}
    for c in chains:
        if not c.get("n_residues"):
            continue  # a splits table without residue counts (hand-written)
        n = int(c["n_residues"])
        h, e = float(c["helix_fraction"]), float(c["sheet_fraction"])
        residues["helix"] += h * n
        residues["sheet"] += e * n
        residues["other"] += (1 - h - e) * n
    return {"entries": len({r["entry"] for r in rows}), "chains": len(chains),
            "components": len(rows), "accepted": len(ok), "rejected": len(rows) - len(ok),
            "voxels": voxels, "residues": {k: round(v) for k, v in residues.items()}, "_residues": residues}


def _class_balance_figure(png: Path, voxels: dict, residues: dict) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    protein = [voxels[c] for c in CLASSES[1:]]
    axes[0].bar(CLASSES[1:], protein, color=["tab:red", "tab:blue", "tab:gray"])
    axes[0].set_title(f"voxels (background: {voxels['background']})")
    axes[1].bar(list(residues), list(residues.values()), color=["tab:red", "tab:blue", "tab:gray"])
    axes[1].set_title("residues")
    fig.tight_layout()
    write_png(fig, png)


def _resolution_figure(png: Path, res: list[float]) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.hist(res, bins=10)
    ax.set_xlabel("resolution (Å)")
    ax.set_ylabel("components")
    fig.tight_layout()
    write_png(fig, png)


def _thumbnails_figure(png: Path, shown: list[dict], base: Path) -> None:
    """The central z slice of each component's density, helix in red and sheet in blue over it."""
    plt = pyplot()
    ncol = min(6, max(1, len(shown)))
    nrow = max(1, -(-len(shown) // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(max(2 * ncol, 4.5), 2 * nrow + 0.35), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, r in zip(axes.ravel(), shown):
        d, lab = read_map(base / r["density"]).data, read_map(base / r["labels"]).data
        k = d.shape[0] // 2
        ax.imshow(d[k], cmap="gray", origin="lower")
        over = np.zeros(d[k].shape + (4,))
        over[lab[k] == 1] = (1, 0, 0, 0.5)
        over[lab[k] == 2] = (0, 0.3, 1, 0.5)
        ax.imshow(over, origin="lower")
        ax.set_title(r["id"], fontsize=7)
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=(1, 0, 0, 0.5), label="helix"), Patch(color=(0, 0.3, 1, 0.5), label="sheet"),
                        Patch(facecolor="0.8", edgecolor="k", label="density (central z slice)")],
               loc="lower center", ncol=3, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.35 / (2 * nrow), 1, 1))
    write_png(fig, png)


def _markdown(summary: dict, ok: list[dict], rejected: list[dict], chains: list[dict], res: list[float],
              n_shown: int) -> str:
    voxels, residues = summary["voxels"], summary["_residues"]
    split_counts = {s: sum(r["split"] == s for r in ok) for s in SPLITS}
    folds = sorted({r.get("fold", "") for r in chains} - {"", "-1"}, key=int)
    lines = ["# Data set report", "",
             f"{summary['entries']} entries, {summary['chains']} chains, {summary['components']} components: "
             f"{summary['accepted']} accepted, {summary['rejected']} rejected.", "",
             "| split | accepted components |", "|---|---|",
             *[f"| {s} | {n} |" for s, n in split_counts.items()], ""]
    if folds:
        lines += [f"{len(folds)}-fold cross-validation over train+val chains (chains per fold): " +
                  ", ".join(f"fold {f}: {sum(r.get('fold') == f for r in chains)}" for f in folds), ""]
    tv, tr = sum(voxels[c] for c in CLASSES[1:]) or 1, sum(residues.values()) or 1
    lines += ["## Class balance", "", "| class | voxels | % of protein voxels | residues | % of residues |",
              "|---|---|---|---|---|",
              *[f"| {c} | {voxels[c]} | {100 * voxels[c] / tv:.1f} | {residues[c]:.0f} | "
                f"{100 * residues[c] / tr:.1f} |" for c in CLASSES[1:]],
              f"| background | {voxels['background']} | | | |", "",
              "![class balance](class_balance.png)", "", "## Resolution", "",
              f"{len(res)} accepted components, {min(res, default=0):.1f}–{max(res, default=0):.1f} Å.", "",
              "![resolution](resolution.png)", "", "## Samples", "",
              f"Central z slice of {n_shown} of {len(ok)} accepted components (density in grey, "
              "helix red, sheet blue).", "", "![thumbnails](thumbnails.png)", "", "## Rejected", ""]
    lines += (["| id | reason |", "|---|---|", *[f"| {r['id']} | {r['reason']} |" for r in rejected]]
              if rejected else ["None."])
    return "\n".join(lines) + "\n"


def write_dataset_report(manifest_path: str | os.PathLike, splits_path: str | os.PathLike,
                         out_dir: str | os.PathLike, max_thumbnails: int = 24) -> dict:
    """A Markdown report of the data set with PNG figures, in ``out_dir``.

    ``dataset_report.md``: entries, chains, accepted and rejected components (with reasons),
    class balance in voxels (from the manifest) and residues (from the splits table), per split
    and fold; ``class_balance.png``; ``resolution.png`` (histogram of the accepted components'
    resolutions); ``thumbnails.png`` (the central z slice of each accepted component's density,
    up to ``max_thumbnails``, with helix in red and sheet in blue over it). Returns the figures.
    """
    out = Path(out_dir)
    rows = read_tsv(manifest_path)
    chains = read_tsv(splits_path)
    base = Path(manifest_path).resolve().parent
    ok = [r for r in rows if r["status"] == "ok"]
    rejected = [r for r in rows if r["status"] != "ok"]
    summary = _summary(rows, chains)
    _class_balance_figure(out / "class_balance.png", summary["voxels"], summary["_residues"])
    res = [float(r["resolution_a"]) for r in ok if r.get("resolution_a")]
    _resolution_figure(out / "resolution.png", res)
    shown = ok[:max_thumbnails]
    _thumbnails_figure(out / "thumbnails.png", shown, base)
    write_text(out / "dataset_report.md", _markdown(summary, ok, rejected, chains, res, len(shown)))
    summary.pop("_residues")
    return summary
