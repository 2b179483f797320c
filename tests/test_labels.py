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


def strict_brute_force(grid: Map, xyz: np.ndarray, atom_class: np.ndarray, atom_residue: np.ndarray,
                       radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The rule written out over every (voxel, atom) pair: squared distance ((dx² + dy²) + dz²)
    from the voxel centre, a hit when it is < radius² (strict), the nearest hit wins, hits
    within 1e-9 Å of the nearest are equidistant and the lowest (residue, atom index) of all of
    them wins. Returns (mask of voxels with a hit, labels)."""
    zz, yy, xx = np.meshgrid(*grid.axis_coords()[::-1], indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], 1)
    order = np.lexsort((np.arange(len(xyz)), atom_residue))  # rank of each atom by (residue, index)
    rank = np.empty(len(xyz), np.int64)
    rank[order] = np.arange(len(xyz))
    hit_any = np.zeros(len(pts), bool)
    out = np.zeros(len(pts), np.uint8)
    for s in range(0, len(pts), 2048):
        p = pts[s:s + 2048]
        dx, dy, dz = (p[:, None, a] - xyz[None, :, a] for a in range(3))
        d2 = (dx * dx + dy * dy) + dz * dz
        hit = d2 < radius * radius
        d = np.where(hit, np.sqrt(d2), np.inf)
        with np.errstate(invalid="ignore"):  # inf - inf where a voxel has no hit
            tie = hit & (d - d.min(1, keepdims=True) <= 1e-9)
        win = np.argmin(np.where(tie, rank[None, :], len(xyz)), axis=1)
        hit_any[s:s + 2048] = hit.any(1)
        out[s:s + 2048] = np.where(hit.any(1), atom_class[win], 0)
    shape = grid.data.shape
    return hit_any.reshape(shape), out.reshape(shape)


def _atoms(xyz: np.ndarray, residue: np.ndarray):
    from cryosse.io import ProteinAtoms
    n_res = int(residue.max()) + 1 if len(residue) else 0
    return ProteinAtoms(np.asarray(xyz, float), np.asarray(residue), np.array(["A"] * len(xyz), dtype=object),
                        [("A", i, "", "ALA") for i in range(n_res)])


def _check_zone_and_labels(grid, atoms, classes, zone_r, label_r):
    from cryosse.prep.labels import label_voxels, within, zone_and_labels

    zone, lab = zone_and_labels(grid, atoms, classes, zone_r, label_r)
    want_zone, _ = strict_brute_force(grid, atoms.xyz, classes, atoms.residue, zone_r)
    want_mask, want_lab = strict_brute_force(grid, atoms.xyz, classes, atoms.residue, label_r)
    assert np.array_equal(zone, want_zone)
    assert np.array_equal(lab.data, want_lab)
    assert np.array_equal(within(grid, atoms.xyz, zone_r), want_zone)
    assert np.array_equal(label_voxels(grid, atoms, classes, label_r).data, want_lab)
    return want_zone, want_mask


@pytest.mark.parametrize("zone_r, label_r", [(6.0, 3.0), (4.0, 1.5), (3.0, 3.0), (2.0, 4.0)])
def test_zone_and_labels_equal_brute_force_random(rng, zone_r, label_r):
    """Random atoms (some outside the grid), anisotropic voxels, an off-lattice origin."""
    xyz = rng.uniform(-14, 14, size=(90, 3))
    atoms = _atoms(xyz, rng.integers(0, 25, 90))
    classes = rng.integers(1, 4, 90).astype(np.uint8)
    grid = Map(np.zeros((17, 23, 19), np.float32), (1.1, 0.8, 1.35), (-10.3, -9.05, -11.7))
    zone, near = _check_zone_and_labels(grid, atoms, classes, zone_r, label_r)
    assert 0 < near.sum() < near.size and 0 < zone.sum() < zone.size  # neither empty nor full
    assert (near.sum() <= zone.sum()) == (label_r <= zone_r)


@pytest.mark.parametrize("voxel", [(1.0, 1.0, 1.0), (0.5, 1.0, 1.5)])
def test_zone_and_labels_equal_brute_force_on_lattice_ties(rng, voxel):
    """Atoms on half and quarter voxel positions: equidistant atoms (pairs and more), voxels at
    exactly the radius (not within: the rule is strict), run ends on voxel centres, columns
    that only touch the sphere."""
    v = np.asarray(voxel)
    origin = np.array([2.0, -3.0, 1.0])
    steps = rng.integers(-6, 52, size=(150, 3)) * 0.5
    steps[::3] += 0.25  # some quarter positions
    xyz = origin + steps * v
    atoms = _atoms(xyz, rng.integers(0, 12, 150))  # few residues: ties decided by residue, then index
    classes = rng.integers(1, 4, 150).astype(np.uint8)
    grid = Map(np.zeros((20, 18, 22), np.float32), voxel, tuple(origin))
    _check_zone_and_labels(grid, atoms, classes, 6.0, 3.0)
    _check_zone_and_labels(grid, atoms, classes, 2.0, 1.0)
    # ties do occur here: some voxel has two or more hits at the same distance
    from cryosse.prep.labels import _pairs
    vox, _atom, d2 = _pairs(grid, xyz, 3.0, 9.0)
    key = np.unique(np.stack([vox, np.round(d2 * 16).astype(np.int64)], 1), axis=0, return_counts=True)[1]
    assert (key > 1).any()
    # and voxels at exactly 3 Å of an atom are left out
    assert np.isclose(d2, 9.0).sum() == 0 and (np.abs(np.sqrt(d2) - 3.0) < 1e-9).sum() == 0


def test_zone_and_labels_equal_brute_force_on_a_real_chain_box(structures_dir, monkeypatch):
    """A real chain's component box (crop_box and extract, as make_component cuts it) with
    anisotropic voxels; then again in several atom chunks (the memory bound for large models)."""
    from cryosse.prep import labels
    from cryosse.prep.components import crop_box, extract

    st = read_model(structures_dir / "1a8o.pdb.gz")
    atoms = protein_atoms(st, ["A"])
    classes = atom_classes(atoms, assign_sse(st))
    grid = Map(np.zeros((70, 60, 80), np.float32), (1.2, 0.9, 1.05), tuple(atoms.xyz.min(0) - 4.4))
    start, size = crop_box(grid, atoms.xyz, 6.0, 8)
    box = extract(grid, start, size)
    box = extract(box, np.array([0, 0, size[2] // 3]), np.array([size[0], size[1], 14]))  # a slab: fast
    zone, near = _check_zone_and_labels(box, atoms, classes, 6.0, 3.0)
    assert zone.sum() > near.sum() > 500
    monkeypatch.setattr(labels, "_CHUNK", 4000)  # ~20 atoms per chunk
    _check_zone_and_labels(box, atoms, classes, 6.0, 3.0)


def test_grazing_column_and_near_ties():
    """A voxel just inside the radius on a column that barely touches the sphere (the x-run
    estimate cannot see it in single precision), and equidistance within 1e-9 Å (a tie: the
    lower residue wins) but not at 1e-6 Å (the nearer atom wins)."""
    from cryosse.prep.labels import within, zone_and_labels

    grid = Map(np.zeros((12, 14, 11), np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    eps = 1e-6
    graze = _atoms(np.array([[5.0, 5.0 + eps / 12, 5.0]]), np.array([0]))  # (5, 11, 5) at 6 - eps/12
    got = within(grid, graze.xyz, 6.0)
    assert got[5, 11, 5] and not got[5, 12, 5]
    assert np.array_equal(got, strict_brute_force(grid, graze.xyz, np.ones(1, np.uint8), graze.residue, 6.0)[0])
    # voxel (2, 2, 2): atom 0 (residue 1, helix) at 2 Å; atom 1 (residue 0, sheet) 2 Å + delta
    for delta, want in ((5e-11, 2), (1e-6, 1)):
        xyz = np.array([[4.0, 2.0, 2.0], [2.0, 2.0 - 2.0 - delta, 2.0]])
        atoms = _atoms(xyz, np.array([1, 0]))
        _zone, lab = zone_and_labels(grid, atoms, np.array([1, 2], np.uint8), 6.0, 3.0)
        assert lab.data[2, 2, 2] == want
        want_lab = strict_brute_force(grid, xyz, np.array([1, 2], np.uint8), atoms.residue, 3.0)[1]
        assert np.array_equal(lab.data, want_lab)


def test_crop_chains_gives_each_chain_the_classes_of_the_whole_table(structures_dir, tmp_path):
    """crop_chains looks up each chain's residues in its own part of the DSSP table; the
    components equal make_component with the classes from the entry's whole table."""
    from cryosse.io import read_map, write_map
    from cryosse.prep.components import ComponentConfig, make_component
    from cryosse.prep.crop import crop_chains

    st = read_model(structures_dir / "2xhe.pdb.gz")  # two chains
    m = simulate_density(st, 8.0, 2.0)
    write_map(m, tmp_path / "m.mrc")
    sse = assign_sse(st)
    cfg = ComponentConfig(reject_all_coil=False)
    metas = crop_chains(tmp_path / "m.mrc", structures_dir / "2xhe.pdb.gz", ["A", "B"],
                        [tmp_path / "A", tmp_path / "B"], cfg, sample_ids=["2xhe_A", "2xhe_B"])
    for chain, meta in zip("AB", metas):
        atoms = protein_atoms(st, [chain])
        want = make_component(read_map(tmp_path / "m.mrc"), atoms, atom_classes(atoms, sse), cfg)
        assert meta["status"] == "ok" and meta["counts"] == want.counts
        assert np.array_equal(read_map(tmp_path / chain / "labels.mrc").data, want.labels.data)
        assert want.counts["helix"] + want.counts["sheet"] > 0
