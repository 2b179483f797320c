"""The network's input convention, shared by training and prediction: a map is resampled to
the model's working voxel size (trilinear, explicit grid), then normalised (z-score over the
whole box, or local normalisation), exactly as the network saw its training data."""
from __future__ import annotations

import numpy as np

from ..io import Map
from ..prep.density import resample

__all__ = ["prepare_density", "normalise", "NORMALISATIONS"]


NORMALISATIONS = ("zscore", "local", "support")


def normalise(d: np.ndarray, voxel_size_a: float, norm: str = "zscore") -> tuple[np.ndarray, float]:
    """(normalised array, value that raw zero density takes after it).

    ``zscore``: over the whole box. ``local``: :func:`cryosse.prep.realism.local_normalise`
    (flat zero density stays 0). ``support``: :func:`cryosse.prep.realism.support_normalise`
    (the same, with statistics over the non-zero voxels only)."""
    if norm in ("local", "support"):
        from ..prep import realism

        f = realism.local_normalise if norm == "local" else realism.support_normalise
        return f(d, voxel_size_a), 0.0
    if norm != "zscore":
        raise ValueError(f"unknown normalisation {norm!r} ({', '.join(NORMALISATIONS)})")
    d = d.astype(np.float32)
    mean, sd = float(d.mean()), float(d.std())
    if sd <= 0:
        sd = 1.0
    return (d - mean) / sd, (0.0 - mean) / sd


def prepare_density(m: Map, voxel_size_a: float, norm: str = "zscore") -> tuple[Map, np.ndarray, float]:
    """(working-grid map, normalised array, value that raw zero density takes after it)."""
    work = resample(m, voxel_size_a, order=1)
    x, pad = normalise(work.data, voxel_size_a, norm)
    return work, x, pad
