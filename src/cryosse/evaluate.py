"""Evaluation: per-class voxel precision, recall and F1 of predicted label maps, and reports.

Classes are the paper's three: helix (code 1), sheet (code 2) and other (all other codes).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .errors import InputError
from .io import Map, atomic_path, read_map, write_json, write_text
from .train.metrics import CLASS3, confusion, prf_from_confusion

__all__ = ["evaluate_maps", "format_table", "write_report", "same_grid"]


def same_grid(a: Map, b: Map, path_b: str = "truth") -> None:
    if a.data.shape != b.data.shape:
        raise InputError(path_b, f"grid {b.shape_xyz} differs from the prediction's {a.shape_xyz}")
    if not np.allclose(a.voxel_size_a, b.voxel_size_a, atol=1e-3) or \
            not np.allclose(a.origin_a, b.origin_a, atol=1e-2):
        raise InputError(path_b, "voxel size or origin differs from the prediction's")


def evaluate_maps(pred: Map, truth: Map, mask: np.ndarray | None = None) -> dict:
    """Scores of ``pred`` against ``truth`` (label maps on the same grid)."""
    same_grid(pred, truth, truth.meta.get("path", "truth"))
    cm = confusion(pred.data.astype(np.uint8), truth.data.astype(np.uint8), mask)
    return {"classes": prf_from_confusion(cm), "confusion": cm.tolist(),
            "confusion_axes": "rows truth, columns prediction: other, helix, sheet"}


def _fmt(v: float) -> str:
    return "  n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:5.3f}"


def format_table(scores: dict) -> str:
    """A readable table of per-class precision, recall, F1 and support."""
    lines = [f"{'class':<8}{'precision':>10}{'recall':>8}{'F1':>8}{'voxels':>10}"]
    for c in CLASS3[1:] + CLASS3[:1]:
        s = scores["classes"][c]
        lines.append(f"{c:<8}{_fmt(s['precision']):>10}{_fmt(s['recall']):>8}{_fmt(s['f1']):>8}"
                     f"{s['support']:>10}")
    return "\n".join(lines)


def _slice_figure(png: Path, density: Map, truth: Map, pred: Map, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

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
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _bar_chart(png: Path, pooled: dict, mean: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = ["helix", "sheet", "other"]
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(x - 0.2, [pooled[c]["f1"] for c in classes], 0.4, label="pooled voxels")
    ax.bar(x + 0.2, [mean[c] for c in classes], 0.4, label="mean over samples")
    ax.set_xticks(x, classes)
    ax.set(ylim=(0, 1), ylabel="voxel F1", title="test split")
    ax.legend()
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_report(eval_jsons: list[str | os.PathLike], out_dir: str | os.PathLike,
                 figure_sample: tuple[str, str, str, str] | None = None,
                 model_card: dict | None = None) -> dict:
    """Aggregate per-sample evaluations into ``report.md``, ``f1.json``, ``f1.png`` and a
    slice figure ``slice.png`` (``figure_sample`` = id, density, truth, prediction paths)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cm = np.zeros((3, 3), np.int64)
    per_sample = {}
    richest, richest_n = None, -1
    for p in sorted(Path(e) for e in eval_jsons):
        ev = json.loads(p.read_text())
        sid = ev.get("id", p.stem)
        n_sse = ev["classes"]["helix"]["support"] + ev["classes"]["sheet"]["support"]
        if ev.get("density") and n_sse > richest_n:
            richest, richest_n = (sid, ev["density"], ev["truth"], ev["prediction"]), n_sse
        cm += np.asarray(ev["confusion"], np.int64)
        per_sample[sid] = {c: ev["classes"][c]["f1"] for c in CLASS3}
    pooled = prf_from_confusion(cm)
    mean = {c: float(np.nanmean([s[c] for s in per_sample.values()])) if per_sample else float("nan")
            for c in CLASS3}
    result = {"pooled": pooled, "mean_f1": mean, "per_sample": per_sample, "n_samples": len(per_sample)}
    write_json(out / "f1.json", result)
    _bar_chart(out / "f1.png", pooled, mean)
    figure_sample = figure_sample or richest
    if figure_sample:
        sid, dens, truth, pred = figure_sample
        _slice_figure(out / "slice.png", read_map(dens), read_map(truth), read_map(pred), sid)
    lines = ["# cryosse evaluation report", "",
             f"Test split: {len(per_sample)} held-out chain components "
             "(voxel labels: 1 helix, 2 sheet, other = everything else).", "",
             "| class | precision (pooled) | recall (pooled) | F1 (pooled) | F1 (mean over samples) |",
             "|---|---|---|---|---|"]
    for c in ("helix", "sheet", "other"):
        s = pooled[c]
        lines.append(f"| {c} | {_fmt(s['precision'])} | {_fmt(s['recall'])} | {_fmt(s['f1'])} | {_fmt(mean[c])} |")
    lines += ["", "![F1 per class](f1.png)", ""]
    if figure_sample:
        lines += [f"![slice of {figure_sample[0]}](slice.png)", ""]
    if model_card:
        m = model_card.get("metrics") or {}
        lines += ["![training curve](../model/training_curve.png)", ""]
        lines += ["## Model", "",
                  f"- network preset `{model_card['arch'].get('preset')}`, loss `{model_card['loss']}`, "
                  f"working voxel {model_card['voxel_size_a']} Å, {model_card.get('step')} steps kept "
                  f"(best validation), training time {model_card.get('train_time_s', 'n/a')} s",
                  f"- validation F1 at that step: helix {_fmt(m.get('val_helix_f1'))}, "
                  f"sheet {_fmt(m.get('val_sheet_f1'))}", ""]
    lines += ["## Per sample (voxel F1)", "", "| sample | helix | sheet | other |", "|---|---|---|---|"]
    for sid, s in per_sample.items():
        lines.append(f"| {sid} | {_fmt(s['helix'])} | {_fmt(s['sheet'])} | {_fmt(s['other'])} |")
    write_text(out / "report.md", "\n".join(lines) + "\n")
    return result
