"""Training samples: contract tensors (density + label MRC) as network inputs and targets,
normalised by :func:`cryosse.net.inputs.prepare_density` exactly as prediction does."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io import read_map
from ..metrics import to_three_class
from ..net.inputs import prepare_density
from ..prep.density import resample

__all__ = ["Sample", "load_sample"]


@dataclass
class Sample:
    id: str
    x: np.ndarray           # normalised density, (Z, Y, X), working grid
    y: np.ndarray           # three-class target (0 other, 1 helix, 2 sheet), same shape
    pad_value: float
    labels4: np.ndarray     # contract codes on the working grid
    data_voxel_size_a: float  # voxel size of the tensors on disk (before resampling)
    raw: np.ndarray | None = None  # working-grid density before normalisation (for realism)
    keep: np.ndarray | None = None  # a segmented copy: where its labels hold (patches stay there)
    keep_points: dict | None = None  # and its voxels of each class (0, 1, 2) inside keep, (N, 3)


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
