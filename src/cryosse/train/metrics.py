"""Voxel and residue metrics: per-class precision, recall and F1.

Classes are compared in the paper's three-class space: helix (code 1), sheet (code 2) and
other (every other code: background and other protein).
"""
from __future__ import annotations

import numpy as np

from .. import HELIX, SHEET

__all__ = ["to_three_class", "confusion", "prf_from_confusion", "voxel_scores", "CLASS3"]

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
