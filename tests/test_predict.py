"""Prediction writes outputs on the input map's own grid (origin, voxel size, shape), whatever
the map's voxel size and axis order; evaluation scores against hand-made label maps."""
from __future__ import annotations

import json
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from cryosse.evaluate import evaluate_maps
from cryosse.io import Map, read_map, write_map
from cryosse.train.checkpoint import save_checkpoint
from cryosse.train.network import PRESETS, build_network


@pytest.fixture
def checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    arch = dict(PRESETS["small"], n_classes=3, preset="small")
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, build_network(arch), {"arch": arch, "classes": ["other", "helix", "sheet"],
                                                "voxel_size_a": 2.0, "data_voxel_size_a": 1.0, "tile": 32})
    return path


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
    from cryosse.train.metrics import residue_votes

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
