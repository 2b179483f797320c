"""Prediction writes outputs on the input map's own grid (origin, voxel size, shape), whatever
the map's voxel size and axis order; evaluation scores against hand-made label maps."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from cryosse.errors import InputError
from cryosse.evaluate import evaluate_maps
from cryosse.io import Map, read_map, write_map
from cryosse.inference import PredictConfig, predict_map, predict_to_dir


def test_predict_cli_on_permuted_map_with_origin(tmp_path, checkpoint):
    rng = np.random.default_rng(0)
    data_xyz = rng.normal(size=(37, 29, 23)).astype(np.float32)  # x, y, z
    path = tmp_path / "in.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data_xyz)  # on disk [sections=x, rows=y, columns=z]
        mrc.voxel_size = 1.37
        h = mrc.header
        h.mapc, h.mapr, h.maps = 3, 2, 1
        h.origin = (12.5, -40.25, 7.0)
    src = read_map(path)
    out = tmp_path / "pred"
    r = subprocess.run([sys.executable, "-m", "cryosse.cli", "predict", str(path), "--checkpoint",
                        str(checkpoint), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for name in ("helix_prob.mrc", "sheet_prob.mrc", "labels.mrc"):
        m = read_map(out / name)
        assert m.data.shape == src.data.shape
        assert np.allclose(m.voxel_size_a, src.voxel_size_a)
        assert np.allclose(m.origin_a, (12.5, -40.25, 7.0), atol=1e-4)
    probs = read_map(out / "helix_prob.mrc").data + read_map(out / "sheet_prob.mrc").data
    assert probs.min() >= 0 and probs.max() <= 1 + 1e-5
    assert set(np.unique(read_map(out / "labels.mrc").data)) <= {0, 1, 2}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"] == "cpu"
    cxc = (out / "view.cxc").read_text()
    assert "helix_prob.mrc" in cxc and "sheet_prob.mrc" in cxc and "in.mrc" in cxc


def _write_mrc(path, data_xyz, voxel_xyz, mapcrs=(1, 2, 3), origin=(0.0, 0.0, 0.0), nstart_xyz=(0, 0, 0)):
    """Write ``data_xyz`` (indexed [x, y, z]) with columns, rows, sections along ``mapcrs``."""
    crs_axes = [a - 1 for a in mapcrs]             # physical axis of columns, rows, sections
    on_disk = np.ascontiguousarray(data_xyz.transpose(crs_axes[::-1]))  # [sections, rows, columns]
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(on_disk)
        h = mrc.header
        h.mapc, h.mapr, h.maps = mapcrs
        n_xyz = data_xyz.shape
        h.mx, h.my, h.mz = n_xyz
        h.cella = tuple(float(n * v) for n, v in zip(n_xyz, voxel_xyz))
        h.nxstart, h.nystart, h.nzstart = (int(nstart_xyz[a]) for a in crs_axes)
        h.origin = origin


def _expected_grid(path):
    """Shape (x, y, z), voxel size and origin computed here from the raw MRC header."""
    with mrcfile.open(path, header_only=True) as mrc:
        h = mrc.header
        crs = [int(h.mapc) - 1, int(h.mapr) - 1, int(h.maps) - 1]
        n_crs = [int(h.nx), int(h.ny), int(h.nz)]
        start_crs = [int(h.nxstart), int(h.nystart), int(h.nzstart)]
        shape, start = [0, 0, 0], [0, 0, 0]
        for i, a in enumerate(crs):
            shape[a], start[a] = n_crs[i], start_crs[i]
        voxel = np.array([float(h.cella.x) / int(h.mx), float(h.cella.y) / int(h.my), float(h.cella.z) / int(h.mz)])
        origin = np.array([float(h.origin.x), float(h.origin.y), float(h.origin.z)])
        if not origin.any():
            origin = np.array(start) * voxel
    return tuple(shape), voxel, origin


def _output_grid(path):
    with mrcfile.open(path, header_only=True) as mrc:
        h = mrc.header
        assert (int(h.mapc), int(h.mapr), int(h.maps)) == (1, 2, 3)
        voxel = np.array([float(v) for v in mrc.voxel_size.tolist()])
        origin = np.array([float(h.origin.x), float(h.origin.y), float(h.origin.z)])
        if not origin.any():
            origin = np.array([int(h.nxstart), int(h.nystart), int(h.nzstart)]) * voxel
        return (int(h.nx), int(h.ny), int(h.nz)), voxel, origin


def _cxc_opens(out: Path) -> list[Path]:
    cxc = (out / "view.cxc").read_text()
    names = [m.group(1) or m.group(2) for m in re.finditer(r'^open (?:"([^"]+)"|(\S+))', cxc, re.M)]
    return [(out / n) for n in names]  # ChimeraX runs a .cxc in its own folder


GRIDS = {
    "permuted-origin": dict(mapcrs=(3, 2, 1), voxel=(1.37, 1.37, 1.37), origin=(12.5, -40.25, 7.0)),
    "permuted-nstart": dict(mapcrs=(2, 3, 1), voxel=(1.2, 1.2, 1.2), nstart=(-7, 11, 3)),
    "anisotropic-permuted-origin": dict(mapcrs=(2, 1, 3), voxel=(1.1, 1.6, 0.9), origin=(-3.3, 4.8, 100.35)),
    "anisotropic-nstart": dict(mapcrs=(1, 3, 2), voxel=(0.8, 1.3, 2.1), nstart=(5, -4, -9)),
}


@pytest.mark.parametrize("name", list(GRIDS))
def test_outputs_line_up_with_input_header(tmp_path, checkpoint, name):
    g = GRIDS[name]
    rng = np.random.default_rng(1)
    data_xyz = rng.normal(size=(31, 26, 22)).astype(np.float32)
    path = tmp_path / "maps" / f"{name}.mrc"
    path.parent.mkdir()
    _write_mrc(path, data_xyz, g["voxel"], g["mapcrs"], g.get("origin", (0.0, 0.0, 0.0)), g.get("nstart", (0, 0, 0)))
    shape, voxel, origin = _expected_grid(path)
    assert shape == data_xyz.shape
    out = tmp_path / "results" / name
    summary = predict_to_dir(path, checkpoint, out, PredictConfig(device="cpu"))
    for f in ("helix_prob.mrc", "sheet_prob.mrc", "labels.mrc"):
        got_shape, got_voxel, got_origin = _output_grid(out / f)
        assert got_shape == shape, f
        assert np.allclose(got_voxel, voxel, atol=1e-5), f
        assert np.allclose(got_origin, origin, atol=1e-3), f
    # the data are not transposed: the map read back is the input's [z, y, x] array
    assert np.array_equal(read_map(path).data, data_xyz.transpose(2, 1, 0))
    assert summary["shape_xyz"] == list(shape) and not summary["outputs_streamed"]
    opened = _cxc_opens(out)
    assert [p.name for p in opened] == [path.name, "helix_prob.mrc", "sheet_prob.mrc"]
    assert all(p.resolve().is_file() for p in opened)
    assert opened[0].resolve() == path.resolve()


def test_prediction_does_not_depend_on_axis_order(tmp_path, checkpoint):
    """The same map stored in two axis orders gives the same probabilities."""
    rng = np.random.default_rng(2)
    data_xyz = rng.normal(size=(30, 21, 26)).astype(np.float32)
    outs = []
    for k, mapcrs in enumerate([(1, 2, 3), (3, 1, 2)]):
        path = tmp_path / f"m{k}.mrc"
        _write_mrc(path, data_xyz, (1.5, 1.5, 1.5), mapcrs, origin=(2.0, 3.0, 4.5))
        predict_to_dir(path, checkpoint, tmp_path / f"out{k}", PredictConfig(device="cpu"))
        outs.append(read_map(tmp_path / f"out{k}" / "helix_prob.mrc").data)
    assert np.allclose(outs[0], outs[1], atol=1e-5)


def test_back_interpolation_equals_map_coordinates(checkpoint):
    """The separable slab-wise interpolation equals scipy's trilinear map_coordinates."""
    import torch

    from cryosse.prep.density import resample_to_grid
    from cryosse.net.inputs import prepare_density
    from cryosse.net.window import sliding_window_probs
    from cryosse.net.checkpoint import load_checkpoint

    net, card, _ = load_checkpoint(checkpoint)
    rng = np.random.default_rng(3)
    m = Map(rng.normal(size=(27, 33, 19)).astype(np.float32), (1.3, 0.9, 1.7), (5.0, -2.0, 11.0))
    pred = predict_map(m, net, card, PredictConfig(device="cpu", slab=4))
    work, x, pad = prepare_density(m, card["voxel_size_a"])
    probs = sliding_window_probs(net, x, tile=card["tile"], divisor=net.divisor, pad_value=pad)
    ref = resample_to_grid(work.with_data(probs[1]), m.origin_a, m.voxel_size_a, m.shape_xyz,
                           order=1, mode="nearest").data
    assert np.allclose(pred.helix_prob.data, ref, atol=1e-5)
    assert torch.get_num_threads() >= 1


def test_contour_zeroes_density_below_it(tmp_path, checkpoint):
    rng = np.random.default_rng(4)
    data = rng.normal(size=(24, 20, 28)).astype(np.float32)
    m = Map(data, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    write_map(m, tmp_path / "a.mrc")
    write_map(m.with_data(np.where(data < 0.7, 0, data).astype(np.float32)), tmp_path / "b.mrc")
    sa = predict_to_dir(tmp_path / "a.mrc", checkpoint, tmp_path / "oa", PredictConfig(device="cpu", contour=0.7))
    predict_to_dir(tmp_path / "b.mrc", checkpoint, tmp_path / "ob", PredictConfig(device="cpu"))
    for f in ("helix_prob.mrc", "sheet_prob.mrc"):
        assert np.array_equal(read_map(tmp_path / "oa" / f).data, read_map(tmp_path / "ob" / f).data)
    assert sa["contour"] == 0.7 and "volume #1 level 0.7 " in (tmp_path / "oa" / "view.cxc").read_text()


def test_chain_zone_limits_prediction(tmp_path, checkpoint, structures_dir):
    from cryosse.prep.density import simulate_density
    from cryosse.io import protein_atoms, read_model
    from cryosse.prep.labels import within

    st = read_model(structures_dir / "1a8o.pdb.gz")
    dens = simulate_density(st, 6.0, 1.0, padding_a=14.0)
    write_map(dens, tmp_path / "map.mrc")
    m = read_map(tmp_path / "map.mrc")
    out = tmp_path / "zone"
    s = predict_to_dir(tmp_path / "map.mrc", checkpoint, out, PredictConfig(device="cpu"),
                       model=structures_dir / "1a8o.pdb.gz", chains=["A"])
    h, lab = read_map(out / "helix_prob.mrc"), read_map(out / "labels.mrc")
    assert h.data.shape == m.data.shape and np.allclose(h.origin_a, m.origin_a, atol=1e-3)
    zone = within(m, protein_atoms(st, ["A"]).xyz, 6.0)
    sheet = read_map(out / "sheet_prob.mrc").data
    assert not h.data[~zone].any() and not sheet[~zone].any() and not lab.data[~zone].any()
    assert np.all((h.data[zone] + sheet[zone]) > 0)
    assert s["zone_chains"] == ["A"] and s["zone_voxels"] == int(zone.sum())
    with pytest.raises(InputError, match="no protein chain named Z"):
        predict_to_dir(tmp_path / "map.mrc", checkpoint, tmp_path / "bad", PredictConfig(device="cpu"),
                       model=structures_dir / "1a8o.pdb.gz", chains=["Z"])
    assert not (tmp_path / "bad").exists()


def test_memory_budget_streams_or_refuses(tmp_path, checkpoint):
    rng = np.random.default_rng(5)
    m = Map(rng.normal(size=(40, 36, 44)).astype(np.float32), (1.1, 1.1, 1.1), (3.3, 0.0, -4.4))
    write_map(m, tmp_path / "m.mrc")
    full = predict_to_dir(tmp_path / "m.mrc", checkpoint, tmp_path / "mem", PredictConfig(device="cpu", tile=32))
    # a budget between the streamed and the in-memory estimate: outputs streamed, same results
    budget = (full["memory_estimate_gb"] - 9 * m.data.size / 1024 ** 3 / 2)
    st = predict_to_dir(tmp_path / "m.mrc", checkpoint, tmp_path / "stream",
                        PredictConfig(device="cpu", tile=32, max_memory_gb=budget, slab=5))
    assert st["outputs_streamed"] and not full["outputs_streamed"]
    for f in ("helix_prob.mrc", "sheet_prob.mrc", "labels.mrc"):
        a, b = read_map(tmp_path / "mem" / f), read_map(tmp_path / "stream" / f)
        assert np.array_equal(a.data, b.data) and a.origin_a == b.origin_a and a.voxel_size_a == b.voxel_size_a
        with mrcfile.open(tmp_path / "stream" / f) as mrc:
            assert mrc.header.dmax == pytest.approx(float(mrc.data.max()))
    # far too little: one line naming the map, nothing written, not even the folder
    r = subprocess.run([sys.executable, "-m", "cryosse.cli", "predict", str(tmp_path / "m.mrc"), "--checkpoint",
                        str(checkpoint), "--max-memory-gb", "0.0001", "-o", str(tmp_path / "none")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and not (tmp_path / "none").exists()
    assert len(r.stderr.strip().splitlines()) == 1 and "m.mrc: needs ~" in r.stderr and "GB" in r.stderr


def test_failed_prediction_leaves_previous_outputs_or_nothing(tmp_path, checkpoint, monkeypatch):
    import cryosse.inference.outputs as predict

    rng = np.random.default_rng(6)
    write_map(Map(rng.normal(size=(20, 20, 20)).astype(np.float32), (1.0,) * 3), tmp_path / "m.mrc")
    out = tmp_path / "out"

    def boom(*a, **k):
        raise RuntimeError("killed")

    monkeypatch.setattr(predict, "write_view_script", boom)
    with pytest.raises(RuntimeError):
        predict_to_dir(tmp_path / "m.mrc", checkpoint, out, PredictConfig(device="cpu"))
    assert os.listdir(out) == []


def test_real_map_outputs_have_the_input_header(tmp_path, checkpoint, shared_data):
    """EMD-5168 (100³ at 1.742 Å, nstart -50): outputs carry the same grid, cell and placement."""
    src = shared_data / "emd_5168" / "emd_5168.map"
    out = tmp_path / "emd_5168"
    s = predict_to_dir(src, checkpoint, out, PredictConfig(device="cpu"))
    with mrcfile.open(src, header_only=True) as a:
        ha = a.header.copy()
    for f in ("helix_prob.mrc", "sheet_prob.mrc", "labels.mrc"):
        with mrcfile.open(out / f, header_only=True) as b:
            hb = b.header
            for key in ("nx", "ny", "nz", "mx", "my", "mz", "nxstart", "nystart", "nzstart",
                        "mapc", "mapr", "maps"):
                assert int(hb[key]) == int(ha[key]), (f, key)
            for key in ("cella", "origin"):
                assert np.allclose([float(v) for v in hb[key].item()], [float(v) for v in ha[key].item()],
                                   atol=1e-3), (f, key)
    assert all(p.resolve().is_file() for p in _cxc_opens(out))
    # the same map limited to the fitted chain's zone
    zs = predict_to_dir(src, checkpoint, tmp_path / "zone", PredictConfig(device="cpu"),
                        model=shared_data / "emd_5168" / "3mfp_modeller.pdb", chains=["A"])
    assert 0 < zs["zone_voxels"] < 100 ** 3 and s["shape_xyz"] == zs["shape_xyz"] == [100, 100, 100]


def test_evaluate_counts():
    truth = np.zeros((4, 4, 4), np.uint8)
    truth[0] = 1          # 16 helix voxels
    truth[1, :2] = 2      # 8 sheet voxels
    truth[2] = 3          # other protein
    pred = truth.copy()
    pred[0, 0] = 0        # 4 helix voxels missed
    pred[1, :2] = 1       # all sheet called helix
    grid = Map(truth, (1.0,) * 3)
    s = evaluate_maps(grid.with_data(pred), grid)["classes"]
    # helix: tp 12, fp 8, fn 4 -> P 0.6, R 0.75, F1 24/36
    assert s["helix"]["precision"] == pytest.approx(0.6)
    assert s["helix"]["recall"] == pytest.approx(0.75)
    assert s["helix"]["f1"] == pytest.approx(24 / 36)
    assert s["sheet"]["f1"] == 0.0 and s["sheet"]["support"] == 8


def test_evaluate_refuses_other_grid(tmp_path):
    a = Map(np.zeros((4, 4, 4), np.uint8), (1.0,) * 3)
    b = Map(np.zeros((4, 4, 5), np.uint8), (1.0,) * 3, meta={"path": "t.mrc"})
    with pytest.raises(Exception, match="t.mrc"):
        evaluate_maps(a, b)


def test_residue_votes_equal_brute_force(structures_dir):
    """Residue-level class = majority of predicted voxels within 3 Å of its heavy atoms."""
    from cryosse.io import protein_atoms, read_model
    from cryosse.metrics import residue_votes

    st = read_model(structures_dir / "1a8o.pdb.gz")
    atoms = protein_atoms(st)
    lo = atoms.xyz.min(0) - 2
    shape = tuple(int(v) for v in ((atoms.xyz.max(0) - lo) / 1.1 + 4)[::-1])
    rng = np.random.default_rng(5)
    pred = Map(rng.integers(0, 4, size=shape).astype(np.uint8), (1.1, 1.1, 1.1), tuple(lo))
    got = residue_votes(pred, atoms.xyz, atoms.residue, len(atoms.residues))
    zz, yy, xx = np.meshgrid(*pred.axis_coords()[::-1], indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], 1)
    three = np.select([pred.data.ravel() == 1, pred.data.ravel() == 2], [1, 2], 0)
    for r in range(len(atoms.residues)):
        xyz = atoms.xyz[atoms.residue == r]
        near = (((pts[:, None, :] - xyz[None]) ** 2).sum(-1) <= 9.0).any(1)
        counts = np.bincount(three[near], minlength=3)
        assert got[r] == (counts.argmax() if counts.sum() else -1), r


def test_gpu_check_script_runs_on_cpu(tmp_path):
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "scripts/gpu_check.py"), "--small", "--device", "cpu",
                        "--steps", "1", "--json", str(tmp_path / "gpu.json")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "gpu.json").read_text())
    assert res["device"] == "cpu" and res["train"]["step_s"] > 0 and res["predict"]["side"] == 64
    assert 0 <= res["predict"]["helix_fraction"] <= 1
