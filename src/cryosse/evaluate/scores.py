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
from .io import Map, pyplot, read_map, write_json, write_png, write_text
from .train.metrics import CLASS3, confusion, prf_from_confusion

__all__ = ["evaluate_maps", "format_table", "write_report", "same_grid", "evaluate_residues",
           "score_checkpoint", "compare_scores", "write_slice_figure"]


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


def _bar_chart(png: Path, pooled: dict, mean: dict) -> None:
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


def write_report(eval_jsons: list[str | os.PathLike], out_dir: str | os.PathLike,
                 figure_sample: tuple[str, str, str, str] | None = None,
                 model_card: dict | None = None) -> dict:
    """Aggregate per-sample evaluations into ``report.md``, ``f1.json``, ``f1.png`` and a
    slice figure ``slice.png`` (``figure_sample`` = id, density, truth, prediction paths)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cm = np.zeros((3, 3), np.int64)
    res_cm = np.zeros((3, 3), np.int64)
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
        if "residues" in ev:
            res_cm += np.asarray(ev["residues"]["confusion"], np.int64)
    pooled = prf_from_confusion(cm)
    mean = {c: float(np.nanmean([s[c] for s in per_sample.values()])) if per_sample else float("nan")
            for c in CLASS3}
    result = {"pooled": pooled, "mean_f1": mean, "per_sample": per_sample, "n_samples": len(per_sample)}
    residues = prf_from_confusion(res_cm) if res_cm.sum() else None
    if residues:
        result["residues_pooled"] = residues
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
    if residues:
        lines += ["", "Residue level (a residue takes the majority class of predicted voxels within 3 Å "
                  "of its heavy atoms; truth: its DSSP class):", "",
                  "| class | precision | recall | F1 | residues |", "|---|---|---|---|---|"]
        for c in ("helix", "sheet", "other"):
            s = residues[c]
            lines.append(f"| {c} | {_fmt(s['precision'])} | {_fmt(s['recall'])} | {_fmt(s['f1'])} | {s['support']} |")
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


# ----------------------------------------------------------------------------- residues

def residue_truth(structure, chain: str | None, sse) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heavy-atom positions, their residue index and each residue's DSSP class (0 other,
    1 helix, 2 sheet) for one chain (or all protein chains when ``chain`` is None)."""
    from .io import protein_atoms
    from .labels import residue_classes
    from .train.metrics import to_three_class

    atoms = protein_atoms(structure, [chain] if chain else None)
    return atoms.xyz, atoms.residue, to_three_class(residue_classes(atoms, sse)).astype(np.int64)


def evaluate_residues(pred: Map, structure, chain: str | None, sse, radius_a: float = 3.0) -> dict:
    """Residue-level scores of a predicted label map (see :func:`cryosse.train.metrics.residue_scores`)."""
    from .train.metrics import residue_scores

    xyz, residue, truth = residue_truth(structure, chain, sse)
    return residue_scores(pred, xyz, residue, truth, radius_a)


def _sample_context(image: str) -> dict:
    meta = Path(image).with_name("meta.json")
    return json.loads(meta.read_text()) if meta.is_file() else {}


def score_checkpoint(checkpoint: str | os.PathLike, datalist: str | os.PathLike, split: str = "test",
                     device: str | None = None) -> dict:
    """Predict every sample of a datalist split with a checkpoint and score it: pooled and
    mean-over-samples voxel F1, and residue-level F1 where the sample's model is known."""
    from .predict import PredictConfig, predict_map
    from .train.checkpoint import load_checkpoint
    from .train.loop import load_datalist
    from .io import read_model
    from .sse import read_sse

    key = {"train": "training", "val": "validation", "test": "test"}.get(split, split)
    items = load_datalist(datalist).get(key, [])
    if not items:
        raise InputError(datalist, f"no samples in split {split!r}")
    net, card, _ = load_checkpoint(checkpoint)
    vox_cm = np.zeros((3, 3), np.int64)
    res_cm = np.zeros((3, 3), np.int64)
    per_sample = {}
    for it in items:
        dens, truth = read_map(it["image"]), read_map(it["label"])
        pred = predict_map(dens, net, card, PredictConfig(device=device)).labels
        ev = evaluate_maps(pred, truth)
        vox_cm += np.asarray(ev["confusion"])
        row = {f"voxel_{c}_f1": ev["classes"][c]["f1"] for c in CLASS3}
        ctx = _sample_context(it["image"])
        if ctx.get("model") and ctx.get("sse") and Path(ctx["model"]).is_file():
            rs = evaluate_residues(pred, read_model(ctx["model"]), ctx.get("chain"), read_sse(ctx["sse"]))
            res_cm += np.asarray(rs["confusion"])
            row.update({f"residue_{c}_f1": rs["classes"][c]["f1"] for c in CLASS3})
        per_sample[it["id"]] = row
    out = {"checkpoint": str(checkpoint), "loss": card.get("loss"), "preset": card["arch"].get("preset"),
           "split": split, "n_samples": len(items), "per_sample": per_sample,
           "voxel": prf_from_confusion(vox_cm), "voxel_confusion": vox_cm.tolist(),
           "voxel_mean_f1": {c: float(np.nanmean([r[f"voxel_{c}_f1"] for r in per_sample.values()]))
                             for c in CLASS3}}
    if res_cm.sum():
        out["residue"] = prf_from_confusion(res_cm)
        out["residue_confusion"] = res_cm.tolist()
    return out


def compare_scores(score_jsons: list[str | os.PathLike], out_dir: str | os.PathLike) -> list[dict]:
    """Table (``comparison.md``, ``comparison.tsv``) and bar chart (``comparison.png``) of
    helix/sheet F1 per loss (or per checkpoint), as in Mu et al. 2024 (Fig. 2)."""
    from .io import write_tsv

    plt = pyplot()

    rows = []
    for p in score_jsons:
        s = json.loads(Path(p).read_text())
        row = {"loss": s.get("loss") or Path(p).parent.name, "n_test": s["n_samples"]}
        for c in ("helix", "sheet"):
            row[f"voxel_{c}_f1"] = s["voxel"][c]["f1"]
            row[f"voxel_{c}_precision"] = s["voxel"][c]["precision"]
            row[f"voxel_{c}_recall"] = s["voxel"][c]["recall"]
            row[f"residue_{c}_f1"] = s.get("residue", {}).get(c, {}).get("f1", float("nan"))
        rows.append(row)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_tsv(out / "comparison.tsv", [{k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()}
                                       for r in rows])
    ce = next((r for r in rows if r["loss"] == "ce"), None)
    lines = ["| loss | voxel F1 helix | voxel F1 sheet | residue F1 helix | residue F1 sheet | "
             "sheet F1 vs ce (points) |", "|---|---|---|---|---|---|"]
    for r in rows:
        diff = f"{100 * (r['voxel_sheet_f1'] - ce['voxel_sheet_f1']):+.1f}" if ce else "n/a"
        lines.append(f"| {r['loss']} | {_fmt(r['voxel_helix_f1'])} | {_fmt(r['voxel_sheet_f1'])} | "
                     f"{_fmt(r['residue_helix_f1'])} | {_fmt(r['residue_sheet_f1'])} | {diff} |")
    write_text(out / "comparison.md", "\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["voxel_helix_f1"] for r in rows], 0.4, color="tab:red", label="helix")
    ax.bar(x + 0.2, [r["voxel_sheet_f1"] for r in rows], 0.4, color="tab:blue", label="sheet")
    ax.set_xticks(x, [r["loss"] for r in rows])
    ax.set(ylim=(0, 1), ylabel="voxel F1 (test split)", title="loss comparison")
    ax.legend()
    fig.tight_layout()
    write_png(fig, out / "comparison.png")
    return rows
