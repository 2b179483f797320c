"""Reports: the test-split evaluation report (``cryosse report``) and the loss comparison
(``cryosse compare-losses``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..io import pyplot, read_map, write_json, write_png, write_text
from ..metrics import CLASS3, prf_from_confusion
from .figures import _slice_figure
from .figures import bar_chart as _bar_chart
from .scores import _fmt

__all__ = ["write_report", "compare_scores"]


def write_report(eval_jsons: list[str | os.PathLike], out_dir: str | os.PathLike,
                 figure_sample: tuple[str, str, str, str] | None = None,
                 model_card: dict | None = None) -> dict:
    """Aggregate per-sample evaluations into ``report.md``, ``f1.json``, ``f1.png`` and a
    slice figure ``slice.png`` (``figure_sample`` = id, density, truth, prediction paths)."""
    out = Path(out_dir)
    cm = np.zeros((3, 3), np.int64)
    res_cm = np.zeros((3, 3), np.int64)
    per_sample = {}
    richest, richest_n = None, -1
    for p in sorted(Path(e) for e in eval_jsons):
        sid, n_sse, fig, ev_cm, f1, ev_res = _evaluation(p)
        if fig and n_sse > richest_n:
            richest, richest_n = (sid, *fig), n_sse
        cm += ev_cm
        per_sample[sid] = f1
        if ev_res is not None:
            res_cm += ev_res
    out.mkdir(parents=True, exist_ok=True)  # after every file is read: a bad one leaves nothing behind
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


def _record(p: Path, what: str, read):
    """``read(json of p)``; a file that is not JSON, or not the record ``what`` names (a missing
    key, a wrong type), is one line naming the file."""
    from ..errors import InputError

    try:
        return read(json.loads(p.read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(p, f"not a readable JSON file ({' '.join(str(exc).split())[:120]})") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        detail = f"no {exc}" if isinstance(exc, KeyError) else " ".join(str(exc).split())[:100]
        raise InputError(p, f"not {what} ({detail})") from None


def _evaluation(p: Path):
    """(id, helix + sheet voxels, (density, truth, prediction) or None, confusion, F1 per class,
    residue confusion or None) of one ``cryosse evaluate`` JSON."""
    def read(ev):
        cm = np.asarray(ev["confusion"], np.int64).reshape(3, 3)
        n_sse = int(ev["classes"]["helix"]["support"]) + int(ev["classes"]["sheet"]["support"])
        fig = (str(ev["density"]), str(ev["truth"]), str(ev["prediction"])) if ev.get("density") else None
        f1 = {c: float(ev["classes"][c]["f1"]) for c in CLASS3}
        res = np.asarray(ev["residues"]["confusion"], np.int64).reshape(3, 3) if "residues" in ev else None
        return str(ev.get("id", p.stem)), n_sse, fig, cm, f1, res

    return _record(p, "an evaluation from 'cryosse evaluate'", read)


def _score_row(p: Path) -> dict:
    """One loss's row of the comparison from a ``cryosse score`` JSON."""
    def read(s):
        row = {"loss": str(s.get("loss") or p.parent.name), "n_test": int(s["n_samples"])}
        for c in ("helix", "sheet"):
            for k in ("f1", "precision", "recall"):
                row[f"voxel_{c}_{k}"] = float(s["voxel"][c][k])
            row[f"residue_{c}_f1"] = float(s.get("residue", {}).get(c, {}).get("f1", float("nan")))
        return row

    return _record(p, "a score file from 'cryosse score'", read)


def compare_scores(score_jsons: list[str | os.PathLike], out_dir: str | os.PathLike) -> list[dict]:
    """Table (``comparison.md``, ``comparison.tsv``) and bar chart (``comparison.png``) of
    helix/sheet F1 per loss (or per checkpoint), as in Mu et al. 2024 (Fig. 2)."""
    from ..io import write_tsv

    plt = pyplot()

    rows = [_score_row(Path(p)) for p in score_jsons]
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
