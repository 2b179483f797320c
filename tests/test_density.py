"""Simulated density against analytic expectations, and MRC placement read back by
independent readers (mrcfile's raw header and gemmi's own map reader)."""
from __future__ import annotations

import gemmi
import mrcfile
import numpy as np
import pytest

from conftest import make_structure
from cryosse.prep.density import resample, resample_to_grid, sigma_for_resolution, simulate_density
from cryosse.io import Map, read_map, read_model, write_map

ATOMS = [("ALA", "CA", "C", (3.3, -7.6, 12.1)), ("ALA", "CA", "C", (21.7, 5.2, -3.9)),
         ("ALA", "CA", "C", (-9.1, 14.4, 2.6))]


def test_density_peaks_at_isolated_atoms():
    m = simulate_density(make_structure(ATOMS), resolution_a=6.0, voxel_size_a=1.0)
    for *_, xyz in ATOMS:
        # the local maximum around each atom is the voxel nearest to it
        idx = np.rint(m.xyz_to_index(np.array([xyz]))[0]).astype(int)
        i, j, k = idx
        win = m.data[k - 4:k + 5, j - 4:j + 5, i - 4:i + 5]
        assert np.unravel_index(np.argmax(win), win.shape) == (4, 4, 4)


def test_density_width_matches_resolution():
    """Second moment of an isolated atom's density = sigma^2 per axis (molmap convention),
    plus the small width of the atom's own scattering factor."""
    res = 8.0
    st = make_structure([("ALA", "CA", "C", (0.0, 0.0, 0.0))])
    m = simulate_density(st, resolution_a=res, voxel_size_a=0.5, padding_a=20)
    zz, yy, xx = np.meshgrid(m.axis_coords()[2], m.axis_coords()[1], m.axis_coords()[0], indexing="ij")
    w = m.data / m.data.sum()
    var_x = float((w * xx ** 2).sum())
    sigma = sigma_for_resolution(res)
    assert var_x == pytest.approx(sigma ** 2, rel=0.08)
    assert float((w * zz ** 2).sum()) == pytest.approx(var_x, rel=1e-3)


def test_real_chain_density_is_high_at_atoms(structures_dir):
    st = read_model(structures_dir / "1a28.pdb.gz")
    m = simulate_density(st, 6.0, 1.0)
    xyz = np.array([cra.atom.pos.tolist() for cra in st[0].all()])
    at_atoms = m.data[tuple(np.rint(m.xyz_to_index(xyz)).astype(int)[:, ::-1].T)]
    corner = m.data[:5, :5, :5]
    assert at_atoms.mean() > 20 * max(corner.mean(), 1e-6)
    assert at_atoms.min() > 0.05 * m.data.max()


@pytest.mark.parametrize("origin", [(-17.0, -36.0, -7.0), (3.25, -1.5, 0.75)])
def test_mrc_placement_round_trip(tmp_path, origin):
    """Write a map with a Gaussian blob at a known position; read it back with mrcfile (raw
    header), gemmi (which uses nstart only) and our reader: all place the blob correctly."""
    vox = 1.0 if origin[0] == -17.0 else 0.25
    shape = (30, 40, 50)  # z, y, x
    m0 = Map(np.zeros(shape, np.float32), (vox,) * 3, origin)
    blob = np.array(origin) + vox * np.array([31, 12, 7])  # voxel (x=31, y=12, z=7)
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    d2 = ((xx - 31) ** 2 + (yy - 12) ** 2 + (zz - 7) ** 2) * vox ** 2
    m = m0.with_data(np.exp(-d2 / (2 * (2 * vox) ** 2)).astype(np.float32))
    path = tmp_path / "blob.mrc"
    write_map(m, path)
    with mrcfile.open(path) as mrc:
        h = mrc.header
        hdr_origin = np.array([h.origin.x, h.origin.y, h.origin.z], float)
        nstart = np.array([h.nxstart, h.nystart, h.nzstart], float)
        assert np.allclose(mrc.voxel_size.tolist(), vox)
        placed = hdr_origin if np.any(hdr_origin) else nstart * vox
        assert np.allclose(placed, origin, atol=1e-4)
    back = read_map(path)
    assert back.data.shape == shape and np.allclose(back.origin_a, origin) and np.allclose(back.voxel_size_a, vox)
    if np.allclose(np.array(origin) / vox, np.round(np.array(origin) / vox)):
        g = gemmi.read_ccp4_map(str(path))
        g.setup(0.0)
        v_peak = g.grid.interpolate_value(gemmi.Position(*blob))
        v_off = g.grid.interpolate_value(gemmi.Position(*(blob + 4 * vox)))
        assert v_peak == pytest.approx(1.0, abs=1e-3) and v_off < 0.1


def test_resample_keeps_positions():
    """Resampling must not shift the grid (scipy.ndimage.zoom does): a linear ramp in Å is
    reproduced exactly at the new voxel centres."""
    shape = (20, 24, 28)
    m = Map(np.zeros(shape, np.float32), (1.0, 1.0, 1.0), (5.0, -3.0, 2.0))
    zz, yy, xx = np.meshgrid(*m.axis_coords()[::-1], indexing="ij")
    m = m.with_data((0.5 * xx - 0.25 * yy + 0.1 * zz).astype(np.float32))
    r = resample(m, 1.7)
    rz, ry, rx = np.meshgrid(*r.axis_coords()[::-1], indexing="ij")
    assert np.allclose(r.data, 0.5 * rx - 0.25 * ry + 0.1 * rz, atol=1e-4)
    assert r.origin_a == m.origin_a
    back = resample_to_grid(r, m.origin_a, 1.0, m.shape_xyz, mode="nearest")
    inner = (slice(2, -3),) * 3
    assert np.allclose(back.data[inner], m.data[inner], atol=1e-3)


@pytest.mark.parametrize("order", [0, 1])
def test_resampling_in_slabs_equals_one_call(monkeypatch, order):
    """resample_to_grid's slabs of z-planes give exactly the values of one map_coordinates call
    over the whole grid (the same coordinates), for labels (order 0) and density (order 1)."""
    from scipy import ndimage

    from cryosse.io import Map
    from cryosse.prep import density

    rng = np.random.default_rng(3)
    data = rng.integers(0, 4, (23, 17, 29)).astype(np.uint8) if order == 0 else \
        rng.normal(size=(23, 17, 29)).astype(np.float32)
    m = Map(data, (1.34, 0.9, 1.7), (3.2, -7.5, 11.0))
    origin, voxel, shape = (2.0, -8.0, 10.5), (0.7, 0.7, 0.7), (40, 24, 61)
    monkeypatch.setattr(density, "SLAB_VOXELS", 7 * 40 * 24)  # 7 z-planes a slab, the last one shorter
    got = density.resample_to_grid(m, origin, voxel, shape, order=order)
    fi = [(np.asarray(origin)[a] + voxel[a] * np.arange(n) - m.origin_a[a]) / m.voxel_size_a[a]
          for a, n in zip(range(3), shape)]
    zz, yy, xx = np.meshgrid(fi[2], fi[1], fi[0], indexing="ij")
    src = data if order == 0 else data.astype(np.float32)
    want = ndimage.map_coordinates(src, [zz, yy, xx], order=order, mode="constant", cval=0.0, prefilter=False)
    assert got.data.dtype == data.dtype and got.data.shape == (61, 24, 40)
    assert np.array_equal(got.data, want)
