"""Voxel labels against a brute-force nearest-atom computation (the rule, written naively)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import make_structure
from cryosse.prep.density import simulate_density
from cryosse.io import Map, protein_atoms, read_model
from cryosse.prep.labels import atom_classes, label_voxels
from cryosse.prep.sse import assign_sse


def brute_force(grid: Map, xyz: np.ndarray, atom_class: np.ndarray, atom_residue: np.ndarray,
                radius: float) -> np.ndarray:
    """For each voxel: every atom's distance; the nearest (lowest residue, then atom index on
    ties) within radius gives the class."""
    zz, yy, xx = np.meshgrid(*grid.axis_coords()[::-1], indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], 1)
    out = np.zeros(len(pts), np.uint8)
    for start in range(0, len(pts), 4096):
        p = pts[start:start + 4096]
        d = np.sqrt(((p[:, None, :] - xyz[None, :, :]) ** 2).sum(-1))
        dmin = d.min(1)
        for r, row in enumerate(d):
            if dmin[r] > radius:
                continue
            cands = np.flatnonzero(np.abs(row - dmin[r]) <= 1e-9)
            best = min(cands, key=lambda a: (atom_residue[a], a))
            out[start + r] = atom_class[best]
    return out.reshape(grid.data.shape)


def test_labels_equal_brute_force_on_real_chain(structures_dir):
    st = read_model(structures_dir / "2xdga.pdb.gz")
    atoms = protein_atoms(st)
    classes = atom_classes(atoms, assign_sse(st))
    assert set(np.unique(classes)) == {1, 2, 3}  # helix, sheet and other all present
    # a sub-box through the middle of the chain, with an off-lattice origin and 1.3 Å voxels
    centre = atoms.xyz.mean(0)
    grid = Map(np.zeros((22, 26, 30), np.float32), (1.3, 1.3, 1.3), tuple(centre - 17.3))
    got = label_voxels(grid, atoms, classes, 3.0).data
    want = brute_force(grid, atoms.xyz, classes, atoms.residue, 3.0)
    assert np.array_equal(got, want)
    assert (got > 0).mean() > 0.2


@pytest.mark.parametrize("radius", [1.5, 3.0, 4.2])
def test_labels_equal_brute_force_random_atoms(rng, radius):
    xyz = rng.uniform(-8, 8, size=(60, 3))
    cls = rng.integers(1, 4, size=60).astype(np.uint8)
    residue = np.arange(60) // 3
    from cryosse.io import ProteinAtoms
    atoms = ProteinAtoms(xyz, residue, np.array(["A"] * 60, dtype=object), [("A", i, "", "ALA") for i in range(20)])
    grid = Map(np.zeros((18, 20, 16), np.float32), (0.9, 1.0, 1.1), (-9.0, -10.5, -8.2))
    got = label_voxels(grid, atoms, cls, radius).data
    assert np.array_equal(got, brute_force(grid, xyz, cls, residue, radius))


def test_ties_go_to_lower_residue():
    # two atoms equidistant from the voxel at the origin: residue 1 (helix) and 2 (sheet)
    st = make_structure([("ALA", "CA", "C", (2.0, 0.0, 0.0)), ("ALA", "CA", "C", (-2.0, 0.0, 0.0))])
    atoms = protein_atoms(st)
    classes = np.array([2, 1], np.uint8)  # first residue sheet, second helix
    grid = Map(np.zeros((1, 1, 1), np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    assert label_voxels(grid, atoms, classes, 3.0).data[0, 0, 0] == 2


def test_label_map_is_on_the_density_grid(structures_dir):
    st = read_model(structures_dir / "1a8o.pdb.gz")
    m = simulate_density(st, 7.0, 1.0)
    atoms = protein_atoms(st)
    lab = label_voxels(m, atoms, atom_classes(atoms, assign_sse(st)))
    assert lab.data.shape == m.data.shape and lab.origin_a == m.origin_a
    # labelled voxels sit where the simulated density is high
    assert m.data[lab.data > 0].mean() > 5 * m.data[lab.data == 0].mean()
