"""Voxel labels from an atomic model and its per-residue secondary structure.

The rule (data contract): a voxel takes the class of the nearest heavy atom of the given
protein chain(s) if that atom lies within ``radius_a`` (default 3.0 Å) of the voxel centre,
else it is background. Classes: 0 background, 1 helix, 2 sheet, 3 other protein (coil, turn,
loop, unassigned). Equidistant atoms (within 1e-9 Å): the lower residue index (earlier in the
model) wins, then the lower atom index. "Within" is strict: squared distances are computed as
``((dx² + dy²) + dz²)`` in float64 from the voxel centre ``origin + index * voxel``, as a k-d
tree (``scipy.spatial.cKDTree``) computes them, and compared with ``radius²``.

The computation is exact and needs no distance transform and no tree: every atom visits only
the voxels that can be that close (its cube of voxels for the labels; for the zone mask of a
component, one run of voxels along x per voxel column, whose ends are decided by the exact
test wherever an estimate is not clear-cut). See :func:`zone_and_labels`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import BACKGROUND
from ..io import Map, ProteinAtoms
from .sse import ResidueSSE, residue_class, sse_class_of

__all__ = ["residue_classes", "atom_classes", "label_voxels", "nearest_atoms", "within", "zone_and_labels",
           "DEFAULT_RADIUS_A", "LabelConfig"]

DEFAULT_RADIUS_A = 3.0
_AMBIGUOUS = 1e-2  # voxels: a run end estimated this close to a voxel centre is tested exactly
_GRAZE = 1e-2  # voxels^2: a column this close to missing the sphere is tested exactly
_CHUNK = 1 << 21  # elements per atom chunk (bounds the memory for large models)


@dataclass(frozen=True)
class LabelConfig:
    """Config ``labels``: a voxel takes the class of the nearest heavy atom within ``radius_a``."""

    radius_a: float = DEFAULT_RADIUS_A


def residue_classes(atoms: ProteinAtoms, sse: list[ResidueSSE],
                    class_map: dict[str, int] | None = None) -> np.ndarray:
    """Class (1 helix, 2 sheet, 3 other) of each residue of ``atoms.residues``, from its DSSP
    code, or the class its SSE table recorded (residues missing from ``sse``: other)."""
    by_key = {r.key: residue_class(r, class_map) for r in sse}
    return np.array([by_key.get((c, n, i), sse_class_of("-", class_map))
                     for c, n, i, _ in atoms.residues], np.uint8)


def atom_classes(atoms: ProteinAtoms, sse: list[ResidueSSE],
                 class_map: dict[str, int] | None = None) -> np.ndarray:
    """Class (1-3) of each atom, from the DSSP code of its residue (missing residues: other)."""
    res_class = residue_classes(atoms, sse, class_map)
    return res_class[atoms.residue] if len(atoms.residue) else np.zeros(0, np.uint8)


def _span(reach: float, voxel: float) -> int:
    """Voxels either side of an atom's nearest voxel that may lie within ``reach`` Å: the atom
    is at most half a voxel from that voxel's centre, so ``floor(reach / voxel + 0.5)`` (with a
    margin for rounding: a voxel at exactly the reach is included, and then tested)."""
    return math.floor(reach / voxel + 0.5 + 1e-6)


def _around(origin: float, voxel: float, n: int, frac: np.ndarray, coord: np.ndarray,
            reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis, the voxel indices (2m + 1, N) that may lie within ``reach`` Å of each
    atom (``rint(frac) - m .. rint(frac) + m``, see :func:`_span`) and the squared Å offsets
    of their centres, computed as the k-d tree did (inf outside the grid). Atoms are the last
    axis throughout: NumPy's inner loops then run over all atoms at once."""
    m = _span(reach, voxel)
    idx = np.rint(frac).astype(np.int64) + np.arange(-m, m + 1)[:, None]
    d = (origin + idx * voxel) - coord
    d2 = d * d
    d2[(idx < 0) | (idx >= n)] = np.inf
    return idx, d2


def _hits(d2: np.ndarray, radius: float, reach2: float) -> np.ndarray:
    """The rule's test on squared distances: ``d2 < reach2`` and ``sqrt(d2) < radius``."""
    with np.errstate(invalid="ignore"):
        return (d2 < reach2) & (np.sqrt(d2) < radius)


def _mask(grid: Map, xyz: np.ndarray, radius: float, reach2: float) -> np.ndarray:
    """Flat boolean mask of the voxels with an atom within the rule's test (:func:`_hits`).

    Per atom and (y, z) voxel column, the voxels that pass form one run along x (the squared
    distance is unimodal along x, also in floating point); its ends are estimated in voxel
    units from ``sqrt(radius^2 - dy^2 - dz^2)``, and where an estimated end lies within
    ``_AMBIGUOUS`` of a voxel centre (or the column only grazes the sphere) the ends are
    decided by the exact test on the voxels next to it. The runs are added up as +1/-1 steps
    and summed along the grid (a voxel is in the mask where the running count is positive).
    """
    n = grid.data.size
    count = np.zeros(n + 1, np.int32)
    v = grid.voxel_size_a
    reach = math.sqrt(min(reach2, radius * radius))
    per_atom = (2 * _span(reach, v[1]) + 1) * (2 * _span(reach, v[2]) + 1)
    step = max(1, _CHUNK // per_atom)
    for s in range(0, len(xyz), step):
        _add_runs(count, grid, xyz[s:s + step], radius, reach2)
    np.cumsum(count, dtype=np.int32, out=count)
    return count[:n] > 0


def _add_runs(count: np.ndarray, grid: Map, xyz: np.ndarray, radius: float, reach2: float) -> None:
    """Add each run of :func:`_mask` to ``count`` as +1 at its first voxel, -1 after its last."""
    nx, ny, nz = grid.shape_xyz
    o, v = np.asarray(grid.origin_a, float), np.asarray(grid.voxel_size_a, float)
    f = (xyz - o) / v
    thr2 = min(reach2, radius * radius)
    jy, dy2 = _around(o[1], v[1], ny, f[:, 1], xyz[:, 1], math.sqrt(thr2))
    kz, dz2 = _around(o[2], v[2], nz, f[:, 2], xyz[:, 2], math.sqrt(thr2))
    s = 1.0 / (v[0] * v[0])
    # float32 is ample for the estimate while a radius spans <= 40 voxels: the x half-width is off
    # by < 4e-4 voxel^2 squared, so by < 3e-3 voxel outside grazing columns (< _AMBIGUOUS)
    ft = np.float32 if thr2 * s <= 1600 else np.float64
    w2 = (dz2 * s).astype(ft)[:, None, :] + (dy2 * s).astype(ft)[None, :, :]
    np.subtract(ft(thr2 * s), w2, out=w2)  # x half-width squared, voxels^2, per (z, y, atom)
    feasible = w2 > -_GRAZE
    amb = w2 <= _GRAZE  # the column grazes the sphere
    with np.errstate(invalid="ignore"):
        half = np.sqrt(w2, out=w2)  # NaN where the column misses the sphere
    x0 = np.floor(f[:, 0])
    cx = (f[:, 0] - x0).astype(ft)  # atom's x within its voxel, in [0, 1)
    el = cx - half
    eh = np.add(half, cx, out=half)
    lo = np.ceil(el)
    hi = np.floor(eh)
    for gap in (np.subtract(lo, el, out=el), np.subtract(eh, hi, out=eh)):  # in [0, 1)
        amb |= gap < _AMBIGUOUS
        amb |= gap > 1 - _AMBIGUOUS
    amb &= feasible
    first = (-x0).astype(ft)  # the grid's x = 0, relative to the atom's voxel
    np.maximum(lo, first, out=lo)
    np.minimum(hi, first + (nx - 1), out=hi)
    ia = np.flatnonzero(amb)
    if len(ia):  # decide the doubtful ends by the exact test next to them
        kk, rest = np.divmod(ia, amb.shape[1] * amb.shape[2])
        jj, at = np.divmod(rest, amb.shape[2])
        ax, dyc, dzc = xyz[at, 0], dy2[jj, at], dz2[kk, at]
        x0a = x0[at]
        graze = dyc + dzc > thr2 - 2 * _GRAZE / s  # (with a margin) the run is at most one voxel
        near = np.rint(f[at, 0])
        l0 = np.where(graze, near, lo.ravel()[ia] + x0a)
        h0 = np.where(graze, near, hi.ravel()[ia] + x0a)

        def test(i):
            dx = (o[0] + i * v[0]) - ax
            return _hits((dx * dx + dyc) + dzc, radius, reach2)

        l0 = np.where(test(l0 - 1), l0 - 1, np.where(test(l0), l0, l0 + 1))
        h0 = np.where(test(h0 + 1), h0 + 1, np.where(test(h0), h0, h0 - 1))
        lo.ravel()[ia] = np.maximum(l0, 0) - x0a
        hi.ravel()[ia] = np.minimum(h0, nx - 1) - x0a
    run = np.flatnonzero(feasible & (lo <= hi))
    n = nx * ny * nz
    it = np.int32 if n < 2 ** 31 - 1 else np.int64
    # flat index of the atom's voxel in each column (lo, hi are relative to it)
    zy = ((np.arange(amb.shape[0])[:, None] * ny + np.arange(amb.shape[1])) * nx).astype(it)
    row = zy[:, :, None] + ((kz[0] * ny + jy[0]) * nx + x0.astype(np.int64)).astype(it)
    row = row.ravel()[run]
    np.add.at(count, row + lo.ravel()[run].astype(it), np.ones(len(run), np.int32))
    np.add.at(count, row + (hi.ravel()[run].astype(it) + 1), np.full(len(run), -1, np.int32))


def _pairs(grid: Map, xyz: np.ndarray, radius: float, reach2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (flat voxel, atom, squared distance) that passes the rule's test (:func:`_hits`):
    each atom's cube of voxels that may be that close, squared distances as the k-d tree did."""
    v = grid.voxel_size_a
    reach = math.sqrt(min(reach2, radius * radius))
    per_atom = math.prod(2 * _span(reach, v[a]) + 1 for a in range(3))
    step = max(1, _CHUNK // per_atom)
    parts = [_cube_pairs(grid, xyz[s:s + step], radius, reach2) for s in range(0, len(xyz), step)]
    if len(parts) == 1:
        return parts[0]
    return (np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] + s for p, s in zip(parts, range(0, len(xyz), step))]),
            np.concatenate([p[2] for p in parts]))


def _cube_pairs(grid: Map, xyz: np.ndarray, radius: float, reach2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_pairs` for one chunk of atoms."""
    nx, ny, nz = grid.shape_xyz
    o, v = np.asarray(grid.origin_a, float), np.asarray(grid.voxel_size_a, float)
    f = (xyz - o) / v
    reach = math.sqrt(min(reach2, radius * radius))
    ix, dx2 = _around(o[0], v[0], nx, f[:, 0], xyz[:, 0], reach)
    jy, dy2 = _around(o[1], v[1], ny, f[:, 1], xyz[:, 1], reach)
    kz, dz2 = _around(o[2], v[2], nz, f[:, 2], xyz[:, 2], reach)
    cube = (dx2[None, None, :, :] + dy2[None, :, None, :]) + dz2[:, None, None, :]  # (z, y, x, N)
    # a loose bound first (one pass over the cube), then the exact test on what passes it
    r2 = min(reach2, radius * radius)
    flat = np.flatnonzero(cube < r2 * (1 + 1e-9))
    d2 = cube.ravel()[flat]
    doubt = np.flatnonzero(d2 >= r2 * (1 - 1e-9))  # only these can fail the exact test
    if len(doubt):
        fail = doubt[~_hits(d2[doubt], radius, reach2)]
        if len(fail):
            keep = np.ones(len(flat), bool)
            keep[fail] = False
            flat, d2 = flat[keep], d2[keep]
    off, atom = np.divmod(flat, len(xyz))
    mz, my, mx = cube.shape[:3]
    step = ((np.arange(mz)[:, None, None] * ny + np.arange(my)[:, None]) * nx + np.arange(mx)).ravel()
    first = (kz[0] * ny + jy[0]) * nx + ix[0]
    return first[atom] + step[off], atom, d2


def _nearest(n_voxels: int, voxel: np.ndarray, atom: np.ndarray, d2: np.ndarray,
             rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel of the pairs, its nearest atom; atoms within 1e-9 Å of the nearest distance
    are equidistant, and the lowest ``rank`` (then atom index) among them wins."""
    best = np.full(n_voxels, np.inf)
    np.minimum.at(best, voxel, d2)
    nearest = best[voxel]
    # sqrt(d2) - sqrt(b) = (d2 - b) / (sqrt(d2) + sqrt(b)): a loose bound first, then the test
    bound = 2.1e-9 * math.sqrt(float(d2.max())) + 1e-12 if len(d2) else 0.0
    tie = np.flatnonzero(d2 - nearest <= bound)
    tie = tie[np.sqrt(d2[tie]) - np.sqrt(nearest[tie]) <= 1e-9]
    order = np.lexsort((np.arange(len(rank)), rank)).astype(np.int32)
    key = np.empty(len(rank), np.int32)
    key[order] = np.arange(len(rank), dtype=np.int32)
    win = np.full(n_voxels, len(rank), np.int32)
    np.minimum.at(win, voxel[tie], key[atom[tie]])
    voxels = np.flatnonzero(win < len(rank))
    return voxels, order[win[voxels]].astype(np.int64)


def nearest_atoms(grid: Map, xyz: np.ndarray, radius_a: float,
                  residue: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Voxels of ``grid`` with an atom within ``radius_a`` Å, and that nearest atom.

    Returns ``(flat_voxel_index, atom_index)``, voxels in increasing order. Equidistant atoms
    (within 1e-9 Å): the lower ``residue`` value wins, then the lower atom index.
    """
    xyz = np.asarray(xyz, float).reshape(-1, 3)
    if len(xyz) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    voxel, atom, d2 = _pairs(grid, xyz, math.inf, radius_a * radius_a)
    rank = residue if residue is not None else np.arange(len(xyz))
    return _nearest(grid.data.size, voxel, atom, d2, np.asarray(rank))


def within(grid: Map, xyz: np.ndarray, radius_a: float) -> np.ndarray:
    """Boolean ``[z, y, x]`` mask of voxels with an atom of ``xyz`` within ``radius_a`` Å."""
    nx, ny, nz = grid.shape_xyz
    xyz = np.asarray(xyz, float).reshape(-1, 3)
    if len(xyz) == 0:
        return np.zeros((nz, ny, nx), bool)
    return _mask(grid, xyz, math.inf, radius_a * radius_a).reshape(nz, ny, nx)


def label_voxels(grid: Map, atoms: ProteinAtoms, classes: np.ndarray,
                 radius_a: float = DEFAULT_RADIUS_A) -> Map:
    """Label map (uint8) on ``grid``'s grid by the nearest-heavy-atom rule (see module doc)."""
    nx, ny, nz = grid.shape_xyz
    out = np.full(nz * ny * nx, BACKGROUND, np.uint8)
    voxels, atom = nearest_atoms(grid, atoms.xyz, radius_a, atoms.residue)
    out[voxels] = classes[atom]
    return grid.with_data(out.reshape(nz, ny, nx))


def zone_and_labels(grid: Map, atoms: ProteinAtoms, classes: np.ndarray, zone_radius_a: float,
                    radius_a: float = DEFAULT_RADIUS_A) -> tuple[np.ndarray, Map]:
    """The zone mask (voxels with an atom within ``zone_radius_a``) and the labels (the rule
    with ``radius_a``) of a component, equal to what one k-d tree query of the two nearest
    atoms within ``max(zone_radius_a, radius_a)`` gives: a voxel is in the zone when its
    nearest distance ``sqrt(d2) < zone_radius_a``, labelled when ``sqrt(d2) < radius_a``."""
    nx, ny, nz = grid.shape_xyz
    out = np.full(nz * ny * nx, BACKGROUND, np.uint8)
    xyz = np.asarray(atoms.xyz, float).reshape(-1, 3)
    if len(xyz) == 0:
        return np.zeros((nz, ny, nx), bool), grid.with_data(out.reshape(nz, ny, nx))
    reach = max(zone_radius_a, radius_a)
    mask = _mask(grid, xyz, zone_radius_a, reach * reach)
    voxel, atom, d2 = _pairs(grid, xyz, radius_a, reach * reach)
    rank = atoms.residue if atoms.residue is not None else np.arange(len(xyz))
    voxels, best = _nearest(grid.data.size, voxel, atom, d2, np.asarray(rank))
    out[voxels] = classes[best]
    return mask.reshape(nz, ny, nx), grid.with_data(out.reshape(nz, ny, nx))
