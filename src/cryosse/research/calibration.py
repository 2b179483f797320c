"""Probability calibration by a prior shift, fitted on the selection set's derived conditions.

A network trained on clean and degraded simulations can be over-confident in "other" on maps
that look unlike its training data: on low-contrast β density the argmax then defaults to
"other" although the sheet probability is raised. A prior shift corrects that without
retraining: each class probability is multiplied by a weight (other 1, helix ``w_h``, sheet
``w_s``) and renormalised, ``p_c' = w_c p_c / sum_k w_k p_k``; the labels are the argmax of the
reweighted probabilities. The weights go into the model card (``class_weights``), and
prediction applies them (:func:`cryosse.inference.predictor.reweight`).

:func:`collect` predicts every derived condition of the chosen sets once
(:func:`cryosse.evaluate.robustness.score_conditions`) and keeps a random subsample of each
row's scored voxels (probabilities and truth). :func:`fit` then scores every pair of weights
of a log-spaced grid on those voxels and picks the pair with the best objective: the mean of
the classes' target fractions, (mean F1 / mean oracle F1) / target ratio, with the robustness
benchmark's targets (0.85 helix, 0.75 sheet); ties go to the pair nearest (1, 1). (The smaller
of the two fractions, tried first, is flat in the sheet weight whenever helix binds: it then
picked the grid's edge on differences of 0.001.)
Only the selection set may be used to fit (the report set is scored once per shipped model).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ["RowVoxels", "collect", "f1_grid", "fit", "save_rows", "load_rows", "refuse_calibrated", "WEIGHT_GRID"]

#: Candidate weights per class: 0.5 to 4, log-spaced (13 values, 1 among them).
WEIGHT_GRID = tuple(float(v) for v in np.round(2.0 ** np.linspace(-1, 2, 13), 4))
CLASSES = ("helix", "sheet")


@dataclass
class RowVoxels:
    """One derived condition's scored voxels (a subsample): probabilities and 3-class truth."""

    case: str
    condition: str
    set: str
    scored: dict
    oracle: dict
    h: np.ndarray = field(repr=False)
    s: np.ndarray = field(repr=False)
    truth: np.ndarray = field(repr=False)   # 0 other, 1 helix, 2 sheet


def collect(checkpoint, cases, data_dir=None, *, sets=("selection",), max_voxels: int = 200_000,
            seed: int = 0, out_dir=None, device: str | None = None, progress=print) -> tuple[list[RowVoxels], dict]:
    """Predict every derived condition of ``sets`` with ``checkpoint`` (which must have no
    class weights yet: the fit starts from the network's own probabilities) and keep up to ``max_voxels`` scored voxels per row. Returns the rows and the robustness
    summary of that run (written to ``out_dir`` when given)."""
    from ..evaluate.robustness import score_conditions

    rng = np.random.default_rng(seed)
    rows: list[RowVoxels] = []

    def keep(case, d, pred, t3, mask, scored, oracle):
        h, s = pred.helix_prob.data[mask], pred.sheet_prob.data[mask]
        if len(t3) > max_voxels:
            pick = np.sort(rng.choice(len(t3), max_voxels, replace=False))
            h, s, t3 = h[pick], s[pick], t3[pick]
        rows.append(RowVoxels(case.name, d.name, case.set, dict(scored), dict(oracle),
                              h.astype(np.float32), s.astype(np.float32), t3.astype(np.uint8)))

    from ..net.checkpoint import load_checkpoint

    refuse_calibrated(load_checkpoint(checkpoint)[1], checkpoint)
    summary = score_conditions(checkpoint, cases, data_dir, out_dir, device=device,
                               sets=tuple(sets), progress=progress, on_prediction=keep)
    return rows, summary


def refuse_calibrated(card: dict, path) -> None:
    """Refuse a checkpoint whose card has class weights already: a fit starts from the
    network's own probabilities, so it must be given the checkpoint the weights were fitted to."""
    from ..errors import InputError

    if card.get("class_weights"):
        raise InputError(path, "has class_weights already; calibrate the checkpoint they were fitted to")


def f1_grid(row: RowVoxels, grid=WEIGHT_GRID) -> np.ndarray:
    """Voxel F1 of helix and sheet for every pair of weights: array (len(grid), len(grid), 2),
    indexed [helix weight, sheet weight, class]. Labels as prediction takes them: helix where
    w_h h > o and w_h h >= w_s s, sheet where w_s s > o and w_s s > w_h h (o = 1 - h - s)."""
    o = 1.0 - row.h - row.s
    t_h, t_s = row.truth == 1, row.truth == 2
    n_h, n_s = int(t_h.sum()), int(t_s.sum())
    out = np.zeros((len(grid), len(grid), 2))
    for i, wh in enumerate(grid):
        hh = wh * row.h
        h_over_o = hh > o
        for j, ws in enumerate(grid):
            ss = ws * row.s
            lab_h = h_over_o & (hh >= ss)
            lab_s = (ss > o) & (ss > hh)
            for k, (lab, t, n) in enumerate(((lab_h, t_h, n_h), (lab_s, t_s, n_s))):
                tp = int(np.count_nonzero(lab & t))
                denom = int(np.count_nonzero(lab)) + n
                out[i, j, k] = 2 * tp / denom if denom else math.nan
    return out


def fit(rows: list[RowVoxels], grid=WEIGHT_GRID, targets: dict | None = None) -> dict:
    """The weights of ``grid`` with the best objective (module doc) over ``rows``.

    Returns ``{"class_weights", "objective", "objective_uncalibrated", "ratios",
    "ratios_uncalibrated", "rows", "grid"}``; ratios are mean F1 / mean oracle per class on
    the subsampled voxels (the benchmark then scores the calibrated model on all voxels)."""
    from ..evaluate.robustness import TARGET_RATIO

    if not rows:
        raise ValueError("no rows to fit the calibration on")
    targets = dict(TARGET_RATIO if targets is None else targets)
    tables = [f1_grid(r, grid) for r in rows]
    ratio = np.full((len(grid), len(grid), 2), math.nan)
    for k, c in enumerate(CLASSES):
        use = [t for t, r in zip(tables, rows) if r.scored[c] and not math.isnan(r.oracle[c])]
        orc = [r.oracle[c] for r in rows if r.scored[c] and not math.isnan(r.oracle[c])]
        if use and np.mean(orc) > 0:
            ratio[:, :, k] = np.mean([t[:, :, k] for t in use], axis=0) / float(np.mean(orc))
    present = [k for k in range(2) if not np.all(np.isnan(ratio[:, :, k]))]
    if not present:
        raise ValueError("no row scores helix or sheet")
    frac = np.stack([ratio[:, :, k] / targets[CLASSES[k]] for k in present], -1)
    obj = np.mean(frac, axis=-1)
    g = np.log(np.asarray(grid))
    dist = np.add.outer(g ** 2, g ** 2)  # distance from (1, 1) in log weights, for ties
    best = max(((obj[i, j], -dist[i, j], i, j) for i in range(len(grid)) for j in range(len(grid))))
    i, j = best[2], best[3]
    one = int(np.argmin(np.abs(g)))
    as_dict = lambda a, b: {c: (None if math.isnan(ratio[a, b, k]) else round(float(ratio[a, b, k]), 4))  # noqa: E731
                            for k, c in enumerate(CLASSES)}
    return {"class_weights": {"helix": float(grid[i]), "sheet": float(grid[j])},
            "objective": round(float(obj[i, j]), 4), "objective_uncalibrated": round(float(obj[one, one]), 4),
            "ratios": as_dict(i, j), "ratios_uncalibrated": as_dict(one, one),
            "rows": [f"{r.case}/{r.condition}" for r in rows], "grid": list(grid),
            "objective_grid": _listed(obj),
            "ratio_grid": {c: _listed(ratio[:, :, k]) for k, c in enumerate(CLASSES)}}


def _listed(a: np.ndarray) -> list:
    return [[None if math.isnan(v) else round(float(v), 4) for v in line] for line in a]


def save_rows(rows: list[RowVoxels], path) -> None:
    """The rows' voxels and metadata in one compressed .npz (a refit needs no new predictions)."""
    import json

    from ..io.files import atomic_path

    arrays = {}
    for i, r in enumerate(rows):
        arrays.update({f"h{i}": r.h, f"s{i}": r.s, f"t{i}": r.truth})
    meta = [{"case": r.case, "condition": r.condition, "set": r.set, "scored": r.scored, "oracle": r.oracle}
            for r in rows]
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, meta=np.array(json.dumps(meta)), **arrays)


def load_rows(path) -> list[RowVoxels]:
    """Rows written by :func:`save_rows`."""
    import json

    from ..errors import InputError
    from ..io.files import one_line

    if not os.path.isfile(path):
        raise InputError(path, "no such file (the rows.npz of an earlier cryosse calibrate run)")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            rows = [RowVoxels(**m, h=z[f"h{i}"], s=z[f"s{i}"], truth=z[f"t{i}"]) for i, m in enumerate(meta)]
    except Exception as exc:  # a truncated or foreign file: one line naming it
        raise InputError(path, f"not the rows of a cryosse calibrate run ({one_line(exc)[:120]})") from None
    if not rows or any(not (len(r.h) == len(r.s) == len(r.truth)) for r in rows):
        raise InputError(path, "holds no rows, or rows of unequal lengths")
    return rows
