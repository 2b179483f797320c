"""Scoring a checkpoint on real experimental maps with fitted models.

The benchmark of the bundled model: each case is an EMDB map (native, or low-passed from high
resolution to a medium one) and its fitted model. The truth is our label rule applied on the
map's own grid (DSSP classes of the nearest heavy atom within 3 Å), and scores are counted
only within ``score_radius_a`` (6 Å) of the model's atoms: the rest of a map (neighbouring
subunits without a model, solvent) has no truth. Residue-level F1 is the majority vote of the
voxels within 3 Å of each residue's heavy atoms.

The maps are for evaluation only: nothing in the training recipe reads them.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .io import Map, read_map, read_model, protein_atoms, write_json, write_text

__all__ = ["RealCase", "CASES", "lowpass", "load_case", "score_case", "score_real_maps",
           "default_data_dir", "format_real_table", "clean_simulation", "grid_ceiling", "trace_oracle",
           "TRACE_ORACLE_RADII_A"]

#: Scores count voxels within this distance (Å) of the model's heavy atoms.
SCORE_RADIUS_A = 6.0

#: Radii (Å) the trace oracle tries; it reports the best (see :func:`trace_oracle`).
TRACE_ORACLE_RADII_A = (3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0)


@dataclass(frozen=True)
class RealCase:
    name: str
    map: str               # relative to the data folder
    model: str
    native_resolution_a: float
    lowpass_a: float | None = None   # low-pass to this resolution first (None: native map)
    has_sheet: bool = True            # sheets scored (the map's model has sheet)
    note: str = ""


#: The real maps of ``../shared/data`` (see its README) used to judge the bundled model.
CASES = (
    RealCase("emd_5168", "emd_5168/emd_5168.map", "emd_5168/3mfp_modeller.pdb", 6.6,
             note="native 6.6 Å F-actin map, whole (neighbouring protomers unmodelled)"),
    RealCase("emd_5168_monomer", "emd_5168/emd_5168_monomer_crop.mrc", "emd_5168/3mfp_modeller.pdb", 6.6,
             note="native 6.6 Å, masked single protomer"),
    RealCase("emd_2566_chain9", "emd_2566_chain9/emd_2566_3j6b_chain9_crop.mrc",
             "emd_2566_chain9/3j6b_chain9.pdb", 3.2, lowpass_a=6.0, has_sheet=False,
             note="3.2 Å map low-passed to 6 Å; alpha-rich chain (sheet not scored)"),
    RealCase("emd_0093", "emd_0093/emd_0093_hidedust.mrc.gz", "emd_0093/6gyn.pdb", 3.4, lowpass_a=7.0,
             note="3.4 Å HCN4 map low-passed to 7 Å, 4 chains"),
)


def default_data_dir() -> Path | None:
    """``$CRYOSSE_REAL_DATA`` or ``../shared/data`` beside the project, when present."""
    env = os.environ.get("CRYOSSE_REAL_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[3] / "shared" / "data"
    return here if here.is_dir() else None


def lowpass(m: Map, resolution_a: float, native_resolution_a: float = 0.0) -> Map:
    """Gaussian low-pass to ``resolution_a`` with the simulation's convention
    (sigma = 0.225 x resolution), removing what the map's own resolution already blurs."""
    from scipy.ndimage import gaussian_filter

    sigma_a = 0.225 * math.sqrt(max(resolution_a ** 2 - native_resolution_a ** 2, 0.0))
    sigma_vox = [sigma_a / v for v in m.voxel_size_a[::-1]]  # data is [z, y, x]
    return m.with_data(gaussian_filter(m.data.astype(np.float32), sigma_vox, mode="nearest"))


def load_case(case: RealCase, data_dir: str | os.PathLike):
    """(map as scored, structure, DSSP residues, truth label map on the map's grid, score mask)."""
    from .labels import atom_classes, label_voxels, within
    from .sse import assign_sse

    root = Path(data_dir)
    m = read_map(root / case.map)
    if case.lowpass_a:
        m = lowpass(m, case.lowpass_a, case.native_resolution_a)
    st = read_model(root / case.model)
    sse = assign_sse(st)
    atoms = protein_atoms(st)
    truth = label_voxels(m, atoms, atom_classes(atoms, sse))
    mask = within(m, atoms.xyz, SCORE_RADIUS_A)
    if not mask.any():
        raise InputError(root / case.map, "the model lies outside the map")
    return m, st, sse, truth, mask


def clean_simulation(m: Map, structure, resolution_a: float) -> Map:
    """A noise-free simulation of ``structure`` at ``resolution_a`` on ``m``'s grid: the map
    the network would get if the experiment were perfect (simulated on a 1 Å grid, then
    interpolated onto ``m``'s)."""
    from .density import resample_to_grid, simulate_density

    sim = simulate_density(structure, resolution_a, min(1.0, min(m.voxel_size_a)))
    return resample_to_grid(sim, m.origin_a, m.voxel_size_a, m.shape_xyz, order=1)


def grid_ceiling(truth: Map, mask: np.ndarray, voxel_size_a: float) -> dict:
    """Voxel F1 (helix, sheet) of the truth itself passed through a working grid of
    ``voxel_size_a`` Å the way a prediction is: each class's indicator averaged onto that grid
    (Gaussian, sigma = half a working voxel), interpolated back linearly, argmax. No network on
    that grid can do better than this, up to the averaging chosen."""
    from scipy.ndimage import gaussian_filter

    from .density import resample_to_grid
    from .train.metrics import confusion, prf_from_confusion, to_three_class

    t3 = to_three_class(truth.data)
    extent = (np.asarray(truth.shape_xyz) - 1) * np.asarray(truth.voxel_size_a)
    shape = np.floor(extent / voxel_size_a + 1e-6).astype(int) + 2
    sig = [0.5 * voxel_size_a / v for v in truth.voxel_size_a[::-1]]
    probs = []
    for c in range(3):
        ind = (t3 == c).astype(np.float32)
        if voxel_size_a > max(truth.voxel_size_a) + 1e-6:
            ind = gaussian_filter(ind, sig, mode="nearest")
        coarse = resample_to_grid(truth.with_data(ind), truth.origin_a, voxel_size_a, shape, order=1,
                                  mode="nearest")
        probs.append(resample_to_grid(coarse, truth.origin_a, truth.voxel_size_a, truth.shape_xyz,
                                      order=1, mode="nearest").data)
    cm = confusion(np.argmax(np.stack(probs), 0).astype(np.uint8), t3, mask)
    f = prf_from_confusion(cm)
    return {"helix": f["helix"]["f1"], "sheet": f["sheet"]["f1"]}


def trace_oracle(m: Map, structure, sse, truth: Map, mask: np.ndarray,
                 radii_a=TRACE_ORACLE_RADII_A) -> dict:
    """Voxel F1 (helix, sheet) of the **Cα-trace oracle**: a predictor that knows every
    residue's DSSP class and its Cα position exactly, but no other atom, and labels each voxel
    with the class of its nearest Cα within r (the best r of ``radii_a``, per class). A map at
    5–10 Å shows at most the trace, so this is about the best a network could do from a
    perfectly placed, perfectly classified trace: what the label rule's side chains cost.
    Returns ``{"helix", "sheet", "radius_a": {"helix", "sheet"}}``."""
    from .labels import atom_classes, label_voxels
    from .train.metrics import confusion, prf_from_confusion, to_three_class

    trace = structure.clone()
    for ch in trace[0]:
        for res in ch:
            for i in range(len(res) - 1, -1, -1):
                if res[i].name != "CA":
                    del res[i]
    ca = protein_atoms(trace)
    if not len(ca.xyz):
        raise InputError(structure.name or "model", "no CA atoms for the trace oracle")
    classes = atom_classes(ca, sse)
    t3 = to_three_class(truth.data)
    best = {"helix": (-1.0, None), "sheet": (-1.0, None)}
    for r in radii_a:
        lab = to_three_class(label_voxels(m, ca, classes, radius_a=float(r)).data)
        f = prf_from_confusion(confusion(lab, t3, mask))
        for cls in best:
            if f[cls]["f1"] > best[cls][0]:
                best[cls] = (f[cls]["f1"], float(r))
    return {"helix": best["helix"][0], "sheet": best["sheet"][0],
            "radius_a": {c: best[c][1] for c in best}}


def score_case(case: RealCase, data_dir, net, card: dict, *, device: str | None = None,
               tta: bool = False, diagnose: bool = False) -> dict:
    """Predict one real map and score it against its model (voxel and residue F1).

    With ``diagnose``, also: the voxel F1 on a clean simulation of the fitted model on the
    same grid (:func:`clean_simulation`: what is left when realism is perfect), the Cα-trace
    oracle (:func:`trace_oracle`: what a perfect trace with perfect classes reaches under the
    label rule) and the working grid's ceiling (:func:`grid_ceiling`)."""
    from .evaluate import evaluate_maps, evaluate_residues
    from .predict import PredictConfig, predict_map

    m, st, sse, truth, mask = load_case(case, data_dir)
    t0 = time.time()
    pred = predict_map(m, net, card, PredictConfig(device=device, tta=tta))
    seconds = time.time() - t0
    vox = evaluate_maps(pred.labels, truth, mask)
    diagnosis = None
    if diagnose:
        sim = clean_simulation(m, st, case.lowpass_a or case.native_resolution_a)
        sim_pred = predict_map(sim, net, card, PredictConfig(device=device, tta=tta))
        cs = evaluate_maps(sim_pred.labels, truth, mask)["classes"]
        diagnosis = {"clean_simulation": {"helix": cs["helix"]["f1"], "sheet": cs["sheet"]["f1"]},
                     "trace_oracle": trace_oracle(m, st, sse, truth, mask),
                     "grid_ceiling": grid_ceiling(truth, mask, float(card["voxel_size_a"]))}
    res = evaluate_residues(pred.labels, st, None, sse)
    # the trivial references: every scored voxel helix / every one sheet
    from .train.metrics import prf_from_confusion, confusion, to_three_class
    t3 = to_three_class(truth.data)
    trivial = {}
    for name, code in (("all_helix", 1), ("all_sheet", 2)):
        cm = confusion(np.full(t3.shape, code, np.uint8), t3, mask)
        trivial[name] = prf_from_confusion(cm)["helix" if code == 1 else "sheet"]["f1"]
    return {"case": case.name, "note": case.note, "has_sheet": case.has_sheet,
            "voxel": vox["classes"], "voxel_confusion": vox["confusion"],
            "residue": res["classes"], "trivial": trivial, "predict_s": round(seconds, 2),
            **({"diagnosis": diagnosis} if diagnosis else {}), "_arrays": (m, truth, mask, pred)}


def score_real_maps(checkpoint: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                    out_dir: str | os.PathLike | None = None, *, cases=CASES,
                    device: str | None = None, tta: bool = False, figures: bool = True,
                    diagnose: bool = False) -> dict:
    """Score ``checkpoint`` on every real case; write ``real_maps.json``/``.md`` (and slice
    figures) into ``out_dir`` when given. Returns the summary with the mean F1 over cases.
    ``diagnose`` adds the clean-simulation scores and the grid ceiling (see :func:`score_case`)."""
    from .train.checkpoint import load_checkpoint

    data_dir = Path(data_dir) if data_dir else default_data_dir()
    if data_dir is None or not data_dir.is_dir():
        raise InputError(str(data_dir or "../shared/data"), "real-map folder not found "
                         "(set CRYOSSE_REAL_DATA or pass --data)")
    net, card, _ = load_checkpoint(checkpoint)
    rows = []
    for case in cases:
        r = score_case(case, data_dir, net, card, device=device, tta=tta, diagnose=diagnose)
        arrays = r.pop("_arrays")
        if out_dir and figures:
            _figure(case.name, *arrays, Path(out_dir) / f"{case.name}.png")
        rows.append(r)
    summary = {"checkpoint": str(checkpoint), "data_dir": str(data_dir), "tta": tta,
               "mean_voxel_f1": _class_means(rows, lambda r, c: r["voxel"][c]["f1"]),
               "mean_residue_f1": _class_means(rows, lambda r, c: r["residue"][c]["f1"]),
               **({"diagnosis": {key: _class_means(rows, lambda r, c, key=key: r["diagnosis"][key][c])
                                 for key in ("clean_simulation", "trace_oracle", "grid_ceiling")}} if diagnose else {}),
               "cases": rows, "model_card": {k: card.get(k) for k in ("preset", "loss", "steps", "recipe")}}
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if diagnose and figures:
            _diagnosis_figure(summary, out / "diagnosis.png")
        write_json(out / "real_maps.json", summary)
        write_text(out / "real_maps.md", format_real_table(summary) + "\n")
    return summary


def _class_means(rows: list[dict], value) -> dict:
    """Mean of ``value(row, class)`` over the cases: helix over all of them, sheet over those
    that score it (NaN, without a warning, when none does)."""
    out = {}
    for cls in ("helix", "sheet"):
        vals = [value(r, cls) for r in rows if cls == "helix" or r["has_sheet"]]
        out[cls] = float(np.mean(vals)) if vals else float("nan")
    return out


def _f(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def format_real_table(summary: dict) -> str:
    lines = ["| map | voxel F1 helix | voxel F1 sheet | residue F1 helix | residue F1 sheet | "
             "all-helix F1 | predict (s) |", "|---|---|---|---|---|---|---|"]
    for r in summary["cases"]:
        sheet_v = _f(r["voxel"]["sheet"]["f1"]) if r["has_sheet"] else "(not scored)"
        sheet_r = _f(r["residue"]["sheet"]["f1"]) if r["has_sheet"] else "(not scored)"
        lines.append(f"| {r['case']} | {_f(r['voxel']['helix']['f1'])} | {sheet_v} | "
                     f"{_f(r['residue']['helix']['f1'])} | {sheet_r} | {_f(r['trivial']['all_helix'])} | "
                     f"{r['predict_s']} |")
    mv, mr = summary["mean_voxel_f1"], summary["mean_residue_f1"]
    lines.append(f"| **mean** | **{_f(mv['helix'])}** | **{_f(mv['sheet'])}** | {_f(mr['helix'])} | "
                 f"{_f(mr['sheet'])} | | |")
    if "diagnosis" in summary:
        lines += ["", "Diagnosis (voxel F1 helix / sheet): the same network on a clean simulation of "
                  "each fitted model on the map's grid; the Cα-trace oracle (each voxel labelled by its "
                  "nearest Cα, exact positions and classes, best radius); the working grid's ceiling.", "",
                  "| map | real map | clean simulation | Cα-trace oracle | grid ceiling |",
                  "|---|---|---|---|---|"]

        def hs(d, has_sheet):
            return f"{_f(d['helix'])} / {_f(d['sheet']) if has_sheet else '–'}"
        for r in summary["cases"]:
            d = r["diagnosis"]
            real = {"helix": r["voxel"]["helix"]["f1"], "sheet": r["voxel"]["sheet"]["f1"]}
            lines.append(f"| {r['case']} | {hs(real, r['has_sheet'])} | "
                         f"{hs(d['clean_simulation'], r['has_sheet'])} | "
                         f"{hs(d['trace_oracle'], r['has_sheet'])} | {hs(d['grid_ceiling'], r['has_sheet'])} |")
        d = summary["diagnosis"]
        lines.append(f"| **mean** | {hs(mv, True)} | {hs(d['clean_simulation'], True)} | "
                     f"{hs(d['trace_oracle'], True)} | {hs(d['grid_ceiling'], True)} |")
    return "\n".join(lines)


def _diagnosis_figure(summary: dict, png: Path) -> None:
    """Per map and class: F1 on the real map, on the clean simulation, the Cα-trace oracle and
    the grid ceiling."""
    from .io import pyplot, write_png

    plt = pyplot()
    cases = summary["cases"]
    bars = (("real map", lambda r, c: r["voxel"][c]["f1"], "tab:gray"),
            ("clean simulation", lambda r, c: r["diagnosis"]["clean_simulation"][c], "tab:green"),
            ("Cα-trace oracle", lambda r, c: r["diagnosis"]["trace_oracle"][c], "tab:blue"),
            ("grid ceiling", lambda r, c: r["diagnosis"]["grid_ceiling"][c], "tab:olive"))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    x = np.arange(len(cases))
    for ax, cls in zip(axes, ("helix", "sheet")):
        for k, (label, get, color) in enumerate(bars):
            ys = [get(r, cls) if (cls == "helix" or r["has_sheet"]) else np.nan for r in cases]
            ax.bar(x + (k - 1.5) * 0.2, ys, 0.2, label=label, color=color)
        ax.set_xticks(x, [r["case"].replace("_", " ") for r in cases], rotation=20, fontsize=8)
        ax.set(ylim=(0, 1.15), yticks=np.linspace(0, 1, 6), title=f"{cls} voxel F1")
    axes[0].set_ylabel("voxel F1")
    axes[0].legend(fontsize=7, loc="upper center", ncol=2)
    fig.tight_layout()
    write_png(fig, png)


def _figure(name: str, m: Map, truth: Map, mask: np.ndarray, pred, png: Path) -> None:
    from .evaluate import _slice_figure

    png.parent.mkdir(parents=True, exist_ok=True)
    shown = pred.labels.with_data(np.where(mask, pred.labels.data, 0).astype(np.uint8))
    _slice_figure(png, m, truth, shown, f"{name} (scored zone)")
