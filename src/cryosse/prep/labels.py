"""Voxel labels from an atomic model and its per-residue secondary structure.

The rule (data contract): a voxel takes the class of the nearest heavy atom of the given
protein chain(s) if that atom lies within ``radius_a`` (default 3.0 Å) of the voxel centre,
else it is background. Classes: 0 background, 1 helix, 2 sheet, 3 other protein (coil, turn,
loop, unassigned). Equidistant atoms: the lower residue index (earlier in the model) wins.

The computation is exact: a Euclidean distance transform over the voxels nearest to atoms
proposes candidate voxels (every voxel within ``radius_a`` of an atom is among them), and a
k-d tree then finds each candidate's exact nearest atom.
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


def _candidates(grid: Map, xyz: np.ndarray, radius_a: float) -> np.ndarray:
    """Flat indices of voxels that may lie within ``radius_a`` of an atom (a superset)."""
    from scipy import ndimage

    voxel = np.asarray(grid.voxel_size_a)
    pad = int(math.ceil(radius_a / voxel.min())) + 1
    nx, ny, nz = grid.shape_xyz
    idx = np.rint(grid.xyz_to_index(xyz)).astype(np.int64) + pad  # nearest voxel, padded frame
    shape_pad = np.array([nx, ny, nz]) + 2 * pad
    inside = np.all((idx >= 0) & (idx < shape_pad), axis=1)
    idx = idx[inside]
    occupied = np.ones(shape_pad[::-1], bool)  # [z, y, x]; False where an atom's voxel is
    if len(idx):
        occupied[idx[:, 2], idx[:, 1], idx[:, 0]] = False
    else:
        return np.zeros(0, np.int64)
    dist = ndimage.distance_transform_edt(occupied, sampling=voxel[::-1])
    dist = dist[pad:pad + nz, pad:pad + ny, pad:pad + nx]
    # an atom is at most half a voxel diagonal from the centre of its nearest voxel
    slack = 0.5 * float(np.linalg.norm(voxel)) + 1e-6
    return np.flatnonzero(dist.ravel() <= radius_a + slack)


def nearest_atoms(grid: Map, xyz: np.ndarray, radius_a: float,
                  residue: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Voxels of ``grid`` with an atom within ``radius_a`` Å, and that nearest atom.

    Returns ``(flat_voxel_index, atom_index)``. Equidistant atoms: the lower ``residue``
    value wins, then the lower atom index.
    """
    if len(xyz) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cand = _candidates(grid, xyz, radius_a)
    if len(cand) == 0:
        return cand, np.zeros(0, np.int64)
    dist, nearest = _two_nearest(grid, xyz, cand, radius_a)
    hit = np.isfinite(dist[:, 0])
    best = _tie_broken(dist, nearest, hit, np.isfinite(dist[:, 1]),
                       residue if residue is not None else np.arange(len(xyz)))
    return cand[hit], best[hit]


def _two_nearest(grid: Map, xyz: np.ndarray, cand: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices (N, 2) of the two atoms nearest each candidate voxel within
    ``reach`` (inf and ``len(xyz)`` where there is none)."""
    from scipy.spatial import cKDTree

    nx, ny, nz = grid.shape_xyz
    k, rem = np.divmod(cand, ny * nx)
    j, i = np.divmod(rem, nx)
    pts = np.asarray(grid.origin_a) + np.stack([i, j, k], 1) * np.asarray(grid.voxel_size_a)
    if len(xyz) == 1:
        dist, nearest = cKDTree(xyz).query(pts, k=1, distance_upper_bound=reach)
        return (np.stack([dist, np.full_like(dist, np.inf)], 1),
                np.stack([nearest, np.full_like(nearest, len(xyz))], 1))
    return cKDTree(xyz).query(pts, k=2, distance_upper_bound=reach)


def _tie_broken(dist: np.ndarray, nearest: np.ndarray, hit0: np.ndarray, hit1: np.ndarray,
                rank: np.ndarray) -> np.ndarray:
    """The nearest atom of each voxel, equidistant pairs (both hits) resolved to the lower
    ``rank`` (per atom), then the lower atom index."""
    best = nearest[:, 0].copy()
    with np.errstate(invalid="ignore"):
        tie = hit0 & hit1 & (np.abs(dist[:, 1] - dist[:, 0]) <= 1e-9)
    if np.any(tie):
        a, b = nearest[tie, 0], nearest[tie, 1]
        swap = (rank[b] < rank[a]) | ((rank[b] == rank[a]) & (b < a))
        best[np.flatnonzero(tie)[swap]] = b[swap]
    return best


def within(grid: Map, xyz: np.ndarray, radius_a: float) -> np.ndarray:
    """Boolean ``[z, y, x]`` mask of voxels with an atom of ``xyz`` within ``radius_a`` Å."""
    nx, ny, nz = grid.shape_xyz
    mask = np.zeros(nz * ny * nx, bool)
    mask[nearest_atoms(grid, xyz, radius_a)[0]] = True
    return mask.reshape(nz, ny, nx)


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
    """``within(grid, atoms.xyz, zone_radius_a)`` and ``label_voxels(grid, atoms, classes,
    radius_a)`` from one candidate search and one k-d tree query (the same results: hits are
    strictly within each radius, ties at the label radius as in :func:`nearest_atoms`)."""
    nx, ny, nz = grid.shape_xyz
    mask = np.zeros(nz * ny * nx, bool)
    out = np.full(nz * ny * nx, BACKGROUND, np.uint8)
    xyz = atoms.xyz
    reach = max(zone_radius_a, radius_a)
    cand = _candidates(grid, xyz, reach) if len(xyz) else np.zeros(0, np.int64)
    if len(cand):
        dist, nearest = _two_nearest(grid, xyz, cand, reach)
        mask[cand[dist[:, 0] < zone_radius_a]] = True
        hit = dist[:, 0] < radius_a
        best = _tie_broken(dist, nearest, hit, dist[:, 1] < radius_a,
                           atoms.residue if atoms.residue is not None else np.arange(len(xyz)))
        out[cand[hit]] = classes[best[hit]]
    return mask.reshape(nz, ny, nx), grid.with_data(out.reshape(nz, ny, nx))
