"""Density and label maps (MRC/CCP4): the :class:`Map` currency of every stage, read and
written safely.

A :class:`Map` is a 3D array indexed ``[z, y, x]`` (C order, x fastest, as MRC files with
``mapc, mapr, maps = 1, 2, 3`` store it), the voxel size in Å along x, y, z, and the position
in Å of the centre of voxel ``[0, 0, 0]``. Writers are atomic (see :mod:`cryosse.io.files`).
"""
from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from .files import atomic_path
from .files import one_line as _one_line

__all__ = ["Map", "read_map", "write_map", "write_map_mmap", "opened_mrc"]


@dataclass(frozen=True)
class Map:
    """A density or label map on a regular orthogonal grid.

    Attributes
    ----------
    data : ndarray, shape (nz, ny, nx)
        Values; ``data[k, j, i]`` is at ``origin_a + (i, j, k) * voxel_size_a``.
    voxel_size_a : (float, float, float)
        Voxel size in Å along x, y, z.
    origin_a : (float, float, float)
        Position in Å of the centre of voxel ``[0, 0, 0]`` (x, y, z).
    """

    data: np.ndarray
    voxel_size_a: tuple[float, float, float]
    origin_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def shape_xyz(self) -> tuple[int, int, int]:
        nz, ny, nx = self.data.shape
        return nx, ny, nz

    def with_data(self, data: np.ndarray) -> "Map":
        """The same grid holding other values."""
        if data.shape != self.data.shape:
            raise ValueError(f"shape {data.shape} differs from the map's {self.data.shape}")
        return replace(self, data=data)

    def axis_coords(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Å coordinates of voxel centres along x, y, z."""
        return tuple(self.origin_a[a] + self.voxel_size_a[a] * np.arange(self.shape_xyz[a])
                     for a in range(3))

    def xyz_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Fractional (x, y, z) voxel indices of Å positions, shape (N, 3)."""
        return (np.asarray(xyz, float) - np.asarray(self.origin_a)) / np.asarray(self.voxel_size_a)


@contextlib.contextmanager
def opened_mrc(path: str | os.PathLike, *, header_only: bool = False, permissive: bool = False):
    """``mrcfile.open(path)`` for reading (gzip too), mrcfile's warnings silenced; a missing
    file, a broken one, or any error raised in the block becomes one :class:`InputError`
    naming the file (an :class:`InputError` raised in the block passes unchanged)."""
    import mrcfile

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such map file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(p, mode="r", header_only=header_only, permissive=permissive) as mrc:
                yield mrc
    except InputError:
        raise
    except Exception as exc:  # mrcfile raises ValueError/OSError/EOFError for broken files
        raise InputError(p, f"not a readable MRC/CCP4 map ({_one_line(exc)})") from None


def read_map(path: str | os.PathLike, *, allow_nan: bool = False) -> Map:
    """Read an MRC/CCP4 map (optionally gzipped) into a :class:`Map` in x, y, z order.

    Any axis order (``mapc/mapr/maps``) is brought to ``[z, y, x]``; the voxel size is
    ``cella / (mx, my, mz)``; the origin is the header's ``origin`` field when non-zero,
    otherwise ``nstart * voxel_size`` (both conventions occur in real maps). Modes int8,
    int16, uint16, float16 and float32 are read; integers stay integers, floats become float32.
    """
    p = Path(path)
    with opened_mrc(p) as mrc:
        h = mrc.header
        raw = np.asarray(mrc.data)
        if raw is None or raw.ndim != 3:
            raise ValueError("not a 3D map")
        mapcrs = [int(h.mapc), int(h.mapr), int(h.maps)]
        nstart_crs = [int(h.nxstart), int(h.nystart), int(h.nzstart)]
        cell = np.array([float(h.cella.x), float(h.cella.y), float(h.cella.z)])
        sampling = np.array([int(h.mx), int(h.my), int(h.mz)])
        origin_hdr = np.array([float(h.origin.x), float(h.origin.y), float(h.origin.z)])
        raw = raw.copy()
    if sorted(mapcrs) != [1, 2, 3]:
        raise InputError(p, f"invalid axis order mapc/mapr/maps = {mapcrs}")
    # data dims are (sections, rows, columns) -> physical axes (maps, mapr, mapc)
    data_axes = [mapcrs[2], mapcrs[1], mapcrs[0]]
    order = [data_axes.index(a) for a in (3, 2, 1)]
    data = np.ascontiguousarray(raw.transpose(order))
    n_xyz = np.array(data.shape[::-1])
    if np.any(sampling <= 0):
        sampling = n_xyz
    if np.any(cell <= 0):
        raise InputError(p, f"invalid cell dimensions {cell.tolist()}")
    voxel = cell / sampling
    nstart_xyz = np.zeros(3)
    for crs_index, axis in enumerate(mapcrs):
        nstart_xyz[axis - 1] = nstart_crs[crs_index]
    origin = origin_hdr if np.any(origin_hdr != 0) else nstart_xyz * voxel
    if data.dtype.kind == "f":
        data = data.astype(np.float32, copy=False)
        if not allow_nan and not np.all(np.isfinite(data)):
            bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
            raise InputError(p, f"map contains {bad} NaN or infinite values")
    return Map(data, tuple(float(v) for v in voxel), tuple(float(v) for v in origin),
               meta={"path": str(p), "mapcrs": mapcrs})


def write_map(m: Map, path: str | os.PathLike, *, labels: bool = False) -> None:
    """Write ``m`` as an MRC file (gzipped if the name ends in ``.gz``), atomically.

    Density is stored as float32 (mode 2); labels (``labels=True``) as 8-bit integers (mode 0,
    values 0-3 read the same signed or unsigned). The placement is written so that gemmi
    (which reads ``nstart``) and ChimeraX/mrcfile (``origin``) agree: when the origin is a
    whole number of voxels it goes into ``nxstart/nystart/nzstart`` with ``origin = 0``,
    otherwise into ``origin`` with ``nstart = 0``.
    """
    import mrcfile

    dest = Path(path)
    data = np.ascontiguousarray(m.data.astype(np.int8 if labels else np.float32, copy=False))
    with atomic_path(dest) as tmp:
        compression = "gzip" if dest.name.endswith(".gz") else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.new(tmp, overwrite=True, compression=compression) as mrc:
                mrc.set_data(data)  # also sets the header statistics
                _place(mrc, m.voxel_size_a, m.origin_a)


def _place(mrc, voxel_size_a, origin_a) -> None:
    """Voxel size, axis order 1,2,3 and placement (see :func:`write_map`) of an open MRC."""
    voxel = np.asarray(voxel_size_a, float)
    origin = np.asarray(origin_a, float)
    steps = origin / voxel
    mrc.voxel_size = tuple(voxel)
    h = mrc.header
    h.mapc, h.mapr, h.maps = 1, 2, 3
    if np.allclose(steps, np.round(steps), atol=1e-4):
        s = np.round(steps).astype(int)
        h.nxstart, h.nystart, h.nzstart = int(s[0]), int(s[1]), int(s[2])
        h.origin = (0.0, 0.0, 0.0)
    else:
        h.nxstart = h.nystart = h.nzstart = 0
        h.origin = tuple(origin)


@contextlib.contextmanager
def write_map_mmap(like: Map, path: str | os.PathLike, *, labels: bool = False) -> Iterator[np.ndarray]:
    """Yield a writable memory-mapped ``[z, y, x]`` array for a new MRC file on ``like``'s grid.

    For outputs larger than memory: write every z-plane of the array, piece by piece; when the
    block ends the header gets the placement of :func:`write_map` and statistics computed piece
    by piece (no full-size temporary), and the file is renamed onto ``path`` (atomically; on an
    error nothing is left). Density is float32 (mode 2), labels int8 (mode 0).
    """
    import mrcfile

    dest = Path(path)
    with atomic_path(dest) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.new_mmap(tmp, like.data.shape, mrc_mode=0 if labels else 2,
                                  overwrite=True) as mrc:
                yield mrc.data
                _place(mrc, like.voxel_size_a, like.origin_a)
                lo, hi, total, squares = np.inf, -np.inf, 0.0, 0.0
                for plane in mrc.data:  # one z-plane at a time
                    lo, hi = min(lo, float(plane.min())), max(hi, float(plane.max()))
                    total += float(plane.sum(dtype=np.float64))
                    squares += float(np.square(plane, dtype=np.float64).sum())
                n = max(mrc.data.size, 1)
                mean = total / n
                h = mrc.header
                h.dmin, h.dmax, h.dmean = lo, hi, mean
                h.rms = float(np.sqrt(max(squares / n - mean * mean, 0.0)))
                mrc.flush()
