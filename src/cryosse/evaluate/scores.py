"""Scores: per-class voxel precision, recall and F1 of predicted label maps, and residue-level
scores (the majority of predicted voxels near each residue against its DSSP class).

Classes are the paper's three: helix (code 1), sheet (code 2) and other (all other codes).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..io import Map
from ..metrics import CLASS3, confusion, prf_from_confusion

__all__ = ["evaluate_maps", "format_table", "same_grid", "evaluate_residues", "residue_truth"]


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


def residue_truth(structure, chain: str | None, sse) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heavy-atom positions, their residue index and each residue's DSSP class (0 other,
    1 helix, 2 sheet) for one chain (or all protein chains when ``chain`` is None)."""
    from ..io import protein_atoms
    from ..metrics import to_three_class
    from ..prep.labels import residue_classes

    atoms = protein_atoms(structure, [chain] if chain else None)
    return atoms.xyz, atoms.residue, to_three_class(residue_classes(atoms, sse)).astype(np.int64)


def evaluate_residues(pred: Map, structure, chain: str | None, sse, radius_a: float = 3.0) -> dict:
    """Residue-level scores of a predicted label map (see :func:`cryosse.metrics.residue_scores`)."""
    from ..metrics import residue_scores

    xyz, residue, truth = residue_truth(structure, chain, sse)
    return residue_scores(pred, xyz, residue, truth, radius_a)


