"""Density: simulate from atomic models, resample onto other grids, normalise.

All functions are pure: structures and :class:`~cryosse.io.Map` in, :class:`Map` out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..io import Map

__all__ = ["simulate_density", "degrade_like_native", "SimulateConfig", "model_box", "resample", "resample_to_grid", "zscore",
           "sigma_for_resolution"]

#: Gaussian width per Å of resolution (ChimeraX ``molmap`` convention, sigma = 0.225 * res).
SIGMA_PER_RESOLUTION = 0.225


@dataclass(frozen=True)
class SimulateConfig:
    """A simulated map (``cryosse simulate``; config ``simulate`` draws the resolution per entry
    from a range): resolution, voxel size, Å of space around the model (None: 3 x resolution)."""

    resolution_a: float = 6.0
    voxel_size_a: float = 1.0
    padding_a: float | None = None


def sigma_for_resolution(resolution_a: float) -> float:
    """Real-space Gaussian sigma (Å) used to simulate a map at ``resolution_a``."""
    return SIGMA_PER_RESOLUTION * float(resolution_a)


def model_box(xyz: np.ndarray, voxel_size_a: float, padding_a: float) -> tuple[np.ndarray, np.ndarray]:
    """Origin (Å, on the lattice ``k * voxel_size_a``) and size (x, y, z voxels) of a grid
    holding every position of ``xyz`` with at least ``padding_a`` Å to spare on each side."""
    lo = np.floor((xyz.min(axis=0) - padding_a) / voxel_size_a).astype(int)
    hi = np.ceil((xyz.max(axis=0) + padding_a) / voxel_size_a).astype(int)
    return lo * voxel_size_a, (hi - lo + 1)


def simulate_density(structure, resolution_a: float, voxel_size_a: float = 1.0,
                     padding_a: float | None = None) -> Map:
    """Density of the first model of ``structure`` at ``resolution_a`` on a cubic-voxel grid.

    Electron-scattering form factors (gemmi ``DensityCalculatorE``) with every atom's
    B-factor set to zero and a global blur so that each atom becomes a Gaussian of
    ``sigma = 0.225 * resolution_a`` Å (ChimeraX ``molmap``). The grid lies on the lattice
    ``origin = k * voxel_size_a`` and extends ``padding_a`` Å (default ``3 * resolution``)
    beyond the outermost atom, so no density wraps around.
    """
    import gemmi

    st = structure.clone()
    del st[1:]
    xyz = _all_xyz(st)
    if len(xyz) == 0:
        raise ValueError("structure has no atoms")
    pad = 3.0 * resolution_a if padding_a is None else padding_a
    origin, size = model_box(xyz, voxel_size_a, pad)
    shift = gemmi.Position(*(-origin))
    for cra in st[0].all():
        cra.atom.pos = cra.atom.pos + shift
        cra.atom.b_iso = 0.0
        cra.atom.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
    cell = gemmi.UnitCell(*(size * voxel_size_a), 90, 90, 90)
    st.cell = cell
    st.spacegroup_hm = "P 1"
    dc = gemmi.DensityCalculatorE()
    dc.d_min = 0.0  # keep our grid; do not let gemmi pick a spacing
    sigma = sigma_for_resolution(resolution_a)
    dc.blur = 8 * math.pi ** 2 * sigma ** 2
    dc.grid.set_unit_cell(cell)
    dc.grid.spacegroup = gemmi.SpaceGroup("P 1")
    dc.grid.set_size(int(size[0]), int(size[1]), int(size[2]))
    dc.grid.fill(0.0)
    dc.add_model_density_to_grid(st[0])
    data = np.array(dc.grid.array, dtype=np.float32).transpose(2, 1, 0)  # gemmi is [x, y, z]
    return Map(np.ascontiguousarray(data), (voxel_size_a,) * 3, tuple(float(v) for v in origin),
               meta={"resolution_a": float(resolution_a)})


def _all_xyz(st) -> np.ndarray:
    return np.array([cra.atom.pos.tolist() for cra in st[0].all()], float).reshape(-1, 3)


def resample_to_grid(m: Map, origin_a, voxel_size_a, shape_xyz, *, order: int = 1,
                     cval: float = 0.0, mode: str = "constant") -> Map:
    """Interpolate ``m`` onto the grid given by origin (Å), voxel size (Å) and shape (x, y, z).

    Positions are mapped explicitly (``scipy.ndimage.map_coordinates``), so the new grid is
    exactly where it says it is, unlike ``scipy.ndimage.zoom``. Points outside ``m`` get ``cval``.
    ``order=0`` gives nearest-neighbour (for label maps), 1 trilinear, 3 cubic.
    ``mode="nearest"`` extends ``m``'s edge values instead of using ``cval``.

    Orders 0 and 1 run in slabs of z-planes (``SLAB_VOXELS`` output voxels each), so the
    coordinates never exist for the whole grid: the peak is the output plus one slab's
    coordinates (~50 bytes a voxel of the slab) instead of ~56 bytes a voxel of the whole
    output; the values are the same as in one call (the same coordinates, computed alike).
    """
    from scipy import ndimage

    voxel = np.broadcast_to(np.asarray(voxel_size_a, float), (3,))
    origin = np.asarray(origin_a, float)
    nx, ny, nz = (int(v) for v in shape_xyz)
    # fractional source index along each axis (separable, since both grids are axis-aligned)
    fi = [(origin[a] + voxel[a] * np.arange(n) - m.origin_a[a]) / m.voxel_size_a[a]
          for a, n in zip(range(3), (nx, ny, nz))]
    src = m.data.astype(np.float32, copy=False) if order > 0 else m.data
    dtype = m.data.dtype if order == 0 else np.float32
    if order > 1:  # the spline prefilter needs the whole input at once: one call
        zz, yy, xx = np.meshgrid(fi[2], fi[1], fi[0], indexing="ij")
        out = ndimage.map_coordinates(src, [zz, yy, xx], order=order, mode=mode, cval=cval, prefilter=True)
        return Map(out.astype(dtype), tuple(voxel.tolist()), tuple(origin.tolist()), meta=dict(m.meta))
    out = np.empty((nz, ny, nx), dtype)
    step = max(1, SLAB_VOXELS // max(1, nx * ny))
    for z0 in range(0, nz, step):
        zz, yy, xx = np.meshgrid(fi[2][z0:z0 + step], fi[1], fi[0], indexing="ij")
        out[z0:z0 + step] = ndimage.map_coordinates(src, [zz, yy, xx], order=order, mode=mode, cval=cval,
                                                    prefilter=False)
    return Map(out, tuple(voxel.tolist()), tuple(origin.tolist()), meta=dict(m.meta))


#: Output voxels per slab of :func:`resample_to_grid` (orders 0 and 1): ~200 MB of coordinates.
SLAB_VOXELS = 4_000_000


def resample(m: Map, voxel_size_a: float, *, order: int = 1) -> Map:
    """Resample ``m`` to cubic voxels of ``voxel_size_a`` Å covering the same extent.

    The new grid starts at ``m``'s origin; it has as many voxels as fit in ``m``'s extent.
    """
    if np.allclose(m.voxel_size_a, voxel_size_a, rtol=1e-6):
        return m
    return resample_to_grid(m, m.origin_a, voxel_size_a, resampled_shape(m.shape_xyz, m.voxel_size_a, voxel_size_a),
                            order=order)


def resampled_shape(shape_xyz, voxel_in_a, voxel_size_a: float) -> tuple[int, int, int]:
    """The (x, y, z) shape :func:`resample` gives a grid of ``shape_xyz`` voxels of ``voxel_in_a``
    Å (one per axis, x, y, z): as many ``voxel_size_a`` voxels as fit in its extent. The memory
    plans compute it from headers alone, before the map is read."""
    extent = (np.asarray(shape_xyz, float) - 1) * np.broadcast_to(np.asarray(voxel_in_a, float), (3,))
    return tuple(int(n) for n in np.floor(extent / voxel_size_a + 1e-6).astype(int) + 1)


def zscore(data: np.ndarray) -> np.ndarray:
    """``(data - mean) / std`` over the whole array, as float32 (std 0 -> all zeros)."""
    d = data.astype(np.float32)
    sd = float(d.std())
    return (d - float(d.mean())) / sd if sd > 0 else np.zeros_like(d)


def degrade_like_native(m: Map, structure, seed: int) -> tuple[Map, dict]:
    """``m`` (a simulation of ``structure``) degraded like a native map by one seeded draw of
    :func:`cryosse.prep.realism.degrade` (the protein: voxels within the label radius of its
    heavy atoms); returns the map and the effects with their parameters."""
    from ..io import protein_atoms
    from .labels import DEFAULT_RADIUS_A, within
    from .realism import degrade

    near = within(m, protein_atoms(structure).xyz, DEFAULT_RADIUS_A)
    data, params = degrade(m.data, near, m.voxel_size_a[0], np.random.default_rng(seed))
    return m.with_data(data), params
