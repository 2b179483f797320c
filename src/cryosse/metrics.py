"""Voxel and residue metrics: per-class precision, recall and F1.

Classes are compared in the paper's three-class space: helix (code 1), sheet (code 2) and
other (every other code: background and other protein).
"""
from __future__ import annotations

import numpy as np

from . import HELIX, SHEET

__all__ = ["to_three_class", "confusion", "prf_from_confusion", "voxel_scores", "residue_votes",
           "residue_scores", "CLASS3"]

CLASS3 = ("other", "helix", "sheet")


def to_three_class(labels: np.ndarray) -> np.ndarray:
    """Contract codes (0-3) to three classes: 0 other, 1 helix, 2 sheet."""
    out = np.zeros(labels.shape, np.uint8)
    out[labels == HELIX] = 1
    out[labels == SHEET] = 2
    return out


def confusion(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """3x3 confusion counts (rows truth, columns prediction) in the three-class space."""
    p, t = to_three_class(pred).ravel(), to_three_class(truth).ravel()
    if mask is not None:
        m = mask.ravel().astype(bool)
        p, t = p[m], t[m]
    return np.bincount(t.astype(np.int64) * 3 + p, minlength=9).reshape(3, 3)


def prf_from_confusion(cm: np.ndarray) -> dict[str, dict[str, float]]:
    """Per-class precision, recall, F1 and support from a confusion matrix.

    A class absent from both truth and prediction gets F1 = NaN (not scored).
    """
    out = {}
    for k, name in enumerate(CLASS3):
        tp = float(cm[k, k])
        fp = float(cm[:, k].sum() - tp)
        fn = float(cm[k, :].sum() - tp)
        prec = tp / (tp + fp) if tp + fp else float("nan")
        rec = tp / (tp + fn) if tp + fn else float("nan")
        if tp + fp + fn == 0:
            f1 = float("nan")
        else:
            f1 = 2 * tp / (2 * tp + fp + fn)
        out[name] = {"precision": prec, "recall": rec, "f1": f1, "support": int(cm[k, :].sum()),
                     "predicted": int(cm[:, k].sum())}
    return out


def voxel_scores(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Per-class voxel precision/recall/F1 of a predicted label map against the truth."""
    return prf_from_confusion(confusion(pred, truth, mask))


def residue_votes(pred, xyz: np.ndarray, residue: np.ndarray, n_residues: int,
                  radius_a: float = 3.0) -> np.ndarray:
    """Predicted class (0 other, 1 helix, 2 sheet) of each residue: the majority of the
    predicted voxels within ``radius_a`` of any of its heavy atoms (each voxel counted once per
    residue; ties go to the lower class). -1 for residues with no voxel in the map.

    ``pred`` is a :class:`cryosse.io.Map` of contract label codes.
    """
    lab = to_three_class(pred.data)
    nz, ny, nx = lab.shape
    vox = np.asarray(pred.voxel_size_a)
    reach = np.ceil(radius_a / vox).astype(int)
    offs = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1).reshape(-1, 3)
    centre = np.rint(pred.xyz_to_index(xyz)).astype(np.int64)             # (N, 3) x, y, z
    cand = centre[:, None, :] + offs[None, :, :]                          # (N, M, 3)
    inside = np.all((cand >= 0) & (cand < np.array([nx, ny, nz])), axis=-1)
    pos = np.asarray(pred.origin_a) + cand * vox
    near = inside & (((pos - xyz[:, None, :]) ** 2).sum(-1) <= radius_a ** 2)
    a_idx, m_idx = np.nonzero(near)
    c = cand[a_idx, m_idx]
    flat = (c[:, 2] * ny + c[:, 1]) * nx + c[:, 0]
    keys = np.unique(residue[a_idx].astype(np.int64) * (nx * ny * nz) + flat)
    res, v = np.divmod(keys, nx * ny * nz)
    counts = np.zeros((n_residues, 3), np.int64)
    np.add.at(counts, (res, lab.ravel()[v]), 1)
    out = counts.argmax(1)
    out[counts.sum(1) == 0] = -1
    return out


def residue_scores(pred, xyz: np.ndarray, residue: np.ndarray, true_class: np.ndarray,
                   radius_a: float = 3.0) -> dict:
    """Residue-level precision/recall/F1 (Emap2sec+, DeepSSETracer): each residue's predicted
    class (:func:`residue_votes`) against its DSSP class (``true_class``: 0 other, 1 helix,
    2 sheet per residue). Residues outside the map are not scored."""
    votes = residue_votes(pred, xyz, residue, len(true_class), radius_a)
    ok = votes >= 0
    cm = np.bincount(true_class[ok].astype(np.int64) * 3 + votes[ok], minlength=9).reshape(3, 3)
    return {"classes": prf_from_confusion(cm), "confusion": cm.tolist(), "n_residues": int(ok.sum()),
            "n_outside": int((~ok).sum())}
