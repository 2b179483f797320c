"""Training samples: contract tensors (density + label MRC) as network inputs and targets,
normalised by :func:`cryosse.net.inputs.prepare_density` exactly as prediction does."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io import read_map
from ..metrics import to_three_class
from ..net.inputs import prepare_density
from ..prep.density import resample, resampled_shape
from ..prep.labels import DEFAULT_RADIUS_A

__all__ = ["Sample", "load_sample", "memory_plan"]


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
    label_radius_a: float = DEFAULT_RADIUS_A  # the radius its labels were made with (realism's zones)


def load_sample(sample_id: str, density_path: str, labels_path: str, voxel_size_a: float,
                norm: str = "zscore", keep_raw: bool = False, label_radius_a: float = DEFAULT_RADIUS_A) -> Sample:
    dens = read_map(density_path)
    labs = read_map(labels_path)
    if dens.data.shape != labs.data.shape:
        raise ValueError(f"{labels_path}: label grid {labs.data.shape} differs from density {dens.data.shape}")
    work, x, pad = prepare_density(dens, voxel_size_a, norm)
    lab = resample(labs.with_data(labs.data.astype(np.uint8)), voxel_size_a, order=0).data
    return Sample(sample_id, x, to_three_class(lab), pad, lab.astype(np.uint8),
                  float(dens.voxel_size_a[0]), work.data.astype(np.float32) if keep_raw else None,
                  label_radius_a=float(label_radius_a))


#: bytes per working-grid voxel of a training sample: normalised density (4), labels in three
#: classes and in contract codes (1 + 1), the sampler's helix and sheet voxel coordinates (3 int64,
#: 24, counted for every voxel: an upper bound); with realism, the raw density (4) and a cached
#: degraded copy (density 4, labels and support 1 + 1, its class coordinates 24)
TRAIN_BYTES, TRAIN_REALISM_BYTES = 4 + 2 + 24, 4 + 4 + 2 + 24
#: a validation sample: density and labels (4 + 2); with realism, raw (4) and its fixed degraded copy (4 + 2)
VAL_BYTES, VAL_REALISM_BYTES = 4 + 2, 4 + 6
#: every map: what the allocator keeps of its reading (the file's copy, the resampled and normalised
#: arrays): measured, the peak grows by ~8 bytes per voxel more than the arrays a sample holds
READ_BYTES = 12


def memory_plan(datalist: dict, voxel_size_a: float, realism: bool) -> tuple[float, str]:
    """(bytes, what) the samples of a datalist (from :func:`cryosse.prep.dataset.load_datalist`)
    will hold on the working grid, from the MRC headers of its images and labels alone, before
    any data is read; the largest map's own read (file copy, float32 and labels at its voxel size)
    is added once. A label grid that differs from its image is refused here, naming the file."""
    from ..errors import InputError
    from ..io.budget import map_header

    per = {"training": READ_BYTES + (TRAIN_REALISM_BYTES if realism else TRAIN_BYTES),
           "validation": READ_BYTES + ((VAL_BYTES + VAL_REALISM_BYTES) if realism else VAL_BYTES)}
    need, voxels, largest, n = 0.0, 0, 0.0, 0
    for key, per_voxel in per.items():
        for item in datalist.get(key, []):
            h, lab = map_header(item["image"]), map_header(item["label"])
            if lab.shape_zyx != h.shape_zyx:
                raise InputError(item["label"], f"label grid {lab.shape_zyx[::-1]} (x, y, z) differs from "
                                                f"its density's {h.shape_zyx[::-1]}")
            work = int(np.prod(resampled_shape(h.shape_zyx[::-1], h.voxel_size_a, voxel_size_a), dtype=np.int64))
            need += work * per_voxel
            voxels += work
            largest = max(largest, h.voxels * (h.bytes_per_voxel + 4 + lab.bytes_per_voxel + 1))
            n += 1
    return need + largest, f"{n} maps, {voxels / 1e6:.3g} M voxels on the {voxel_size_a:g} Å working grid"
