"""Turning contract tensors (density + label MRC) into network inputs and targets.

The same :func:`prepare_density` is used in training and in prediction, so a map is
normalised exactly as the network saw its training data: resampled to the model's working
voxel size (trilinear, explicit grid), then z-scored over the whole box.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..density import resample
from ..io import Map, read_map
from .metrics import to_three_class

__all__ = ["prepare_density", "normalise", "NORMALISATIONS", "Sample", "load_sample"]


NORMALISATIONS = ("zscore", "local")


def normalise(d: np.ndarray, voxel_size_a: float, norm: str = "zscore") -> tuple[np.ndarray, float]:
    """(normalised array, value that raw zero density takes after it).

    ``zscore``: over the whole box. ``local``: :func:`cryosse.realism.local_normalise`
    (flat zero density stays 0)."""
    if norm == "local":
        from ..realism import local_normalise

        return local_normalise(d, voxel_size_a), 0.0
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


@dataclass
class Sample:
    id: str
    x: np.ndarray           # normalised density, (Z, Y, X), working grid
    y: np.ndarray           # three-class target (0 other, 1 helix, 2 sheet), same shape
    pad_value: float
    labels4: np.ndarray     # contract codes on the working grid
    data_voxel_size_a: float  # voxel size of the tensors on disk (before resampling)
    raw: np.ndarray | None = None  # working-grid density before normalisation (for realism)


def load_sample(sample_id: str, density_path: str, labels_path: str, voxel_size_a: float,
                norm: str = "zscore", keep_raw: bool = False) -> Sample:
    dens = read_map(density_path)
    labs = read_map(labels_path)
    if dens.data.shape != labs.data.shape:
        raise ValueError(f"{labels_path}: label grid {labs.data.shape} differs from density {dens.data.shape}")
    work, x, pad = prepare_density(dens, voxel_size_a, norm)
    lab = resample(labs.with_data(labs.data.astype(np.uint8)), voxel_size_a, order=0).data
    return Sample(sample_id, x, to_three_class(lab), pad, lab.astype(np.uint8),
                  float(dens.voxel_size_a[0]), work.data.astype(np.float32) if keep_raw else None)
