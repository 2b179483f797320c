"""Memory plans before work: the peak a command will need, estimated from a map's MRC header
(``mrcfile`` header only, no data read) and a model's atom extent (coordinates only), checked
against the budget before any data array is allocated. One rule for ``simulate``, ``label``,
``crop``, ``crop-entry``, ``prepare-map`` and ``predict``; a model with one atom thousands of Å
away implies an absurd grid and is refused by the same rule.

The bytes per voxel are upper estimates of each command's arrays: the growth of the measured
peak with the grid stays below the growth of the estimate (``tests/test_hostile.py``)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["GB", "DEFAULT_MEMORY_GB", "MapHeader", "map_header", "model_extent", "check_budget",
           "box_voxels", "machine_memory_gb"]

GB = 1024 ** 3
#: the budget of every command unless ``--max-memory-gb`` (or the stage's ``max_memory_gb``) says
#: otherwise; predict's default (:class:`cryosse.inference.PredictConfig`) is the same number
DEFAULT_MEMORY_GB = 8.0


@dataclass(frozen=True)
class MapHeader:
    shape_zyx: tuple[int, int, int]
    voxel_size_a: tuple[float, float, float]
    bytes_per_voxel: int

    @property
    def voxels(self) -> int:
        return int(np.prod(self.shape_zyx, dtype=np.int64))


def map_header(path: str | os.PathLike) -> MapHeader:
    """The grid of an MRC/CCP4 map (optionally gzipped) from its header alone."""
    from .maps import opened_mrc

    p = Path(path)
    with opened_mrc(p, header_only=True, permissive=True) as mrc:
        h = mrc.header
        n_crs = [int(h.nx), int(h.ny), int(h.nz)]
        cell = np.array([float(h.cella.x), float(h.cella.y), float(h.cella.z)])
        sampling = np.array([int(h.mx), int(h.my), int(h.mz)])
        mode = int(h.mode)
        mapcrs = [int(h.mapc), int(h.mapr), int(h.maps)]
    if min(n_crs) < 1 or sorted(mapcrs) != [1, 2, 3]:
        raise InputError(p, f"invalid header: dimensions {n_crs}, axis order {mapcrs}")
    n_xyz = [0, 0, 0]
    for k, axis in enumerate(mapcrs):
        n_xyz[axis - 1] = n_crs[k]
    if np.any(sampling <= 0):
        sampling = np.array(n_xyz)
    voxel = cell / sampling if np.all(cell > 0) else np.ones(3)
    size = {0: 1, 1: 2, 2: 4, 6: 2, 12: 2}.get(mode, 4)
    return MapHeader(tuple(n_xyz[::-1]), tuple(float(v) for v in voxel), size)


def model_extent(model, path: str | os.PathLike = "model") -> tuple[np.ndarray, np.ndarray]:
    """(min, max) Å of every atom of the first model of ``model`` (a gemmi structure, or the
    path of a model file: read with gemmi, coordinates only)."""
    if isinstance(model, (str, os.PathLike)):
        from .models import read_model

        path, model = model, read_model(model)
    xyz = np.array([a.pos.tolist() for ch in model[0] for res in ch for a in res], float).reshape(-1, 3)
    if not len(xyz):
        raise InputError(path, "model has no atoms")
    return xyz.min(axis=0), xyz.max(axis=0)


def box_voxels(lo, hi, voxel_size_a, pad_a: float = 0.0) -> int:
    """Voxels of the grid that covers (lo, hi) plus ``pad_a`` Å on every side."""
    side = (np.asarray(hi, float) - np.asarray(lo, float) + 2 * pad_a) / np.asarray(voxel_size_a, float) + 2
    return int(np.prod(np.ceil(np.maximum(side, 1)), dtype=np.float64))


def check_budget(culprit: str | os.PathLike, need_bytes: float, budget_gb: float, what: str) -> float:
    """Refuse (one line naming ``culprit`` and both numbers) when ``need_bytes`` is over the
    budget; returns the estimate in GB."""
    need = need_bytes / GB
    if need > budget_gb:
        shown = f"{need:.3g}" if need < 1000 else f"{need:,.0f}"
        raise InputError(culprit, f"needs ~{shown} GB, budget {budget_gb:g} GB ({what}; --max-memory-gb)")
    return need


def machine_memory_gb() -> float:
    """The memory this process may use: the machine's physical memory, or less where a cgroup
    (a SLURM job, a container) limits it (v2 ``memory.max``, v1 ``memory.limit_in_bytes``)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(f).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total / GB
