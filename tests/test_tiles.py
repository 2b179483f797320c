"""Prediction tiles: one pass when the working volume fits the memory budget, else tiles that
overlap by a margin only, and margin tiles give the single pass (analytic networks whose reach
is known)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cryosse.inference import PredictConfig, plan_memory  # noqa: E402
from cryosse.inference.memory import GB  # noqa: E402
from cryosse.net.network import PRESETS, build_network  # noqa: E402
from cryosse.net.window import _cores, margin_starts, sliding_window_probs  # noqa: E402


def _pooling_net():
    """Reach: 1 + 2 (pooled conv) + 1 voxels each side, pooling by 2 (divisor 2)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool3d(2),
                               torch.nn.Conv3d(4, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Upsample(scale_factor=2), torch.nn.Conv3d(4, 3, 3, padding=1)).eval()


def test_margin_tiles_equal_the_single_pass():
    net = _pooling_net()
    x = np.random.default_rng(0).normal(size=(70, 41, 53)).astype(np.float32)
    one = sliding_window_probs(net, x, tile=(70, 42, 54), margin=6, divisor=2)
    tiled = sliding_window_probs(net, x, tile=24, margin=6, divisor=2, batch=3)
    assert tiled.shape == one.shape == (3, 70, 41, 53)
    np.testing.assert_allclose(tiled, one, atol=2e-6)
    # not vacuous: too small a margin, or the old blending of half-overlapping tiles, differs
    assert np.abs(sliding_window_probs(net, x, tile=24, margin=1, divisor=2) - one).max() > 1e-3
    assert np.abs(sliding_window_probs(net, x, tile=24, overlap=0.5, divisor=2) - one).max() > 1e-3


@pytest.mark.parametrize("size,tile,margin,div", [(200, 96, 40, 8), (152, 128, 40, 8), (64, 24, 6, 2), (48, 48, 4, 4)])
def test_margin_starts_cover_with_the_margin(size, tile, margin, div):
    starts = margin_starts(size, tile, margin, div)
    assert starts[0] == 0 and starts[-1] == size - tile and all(s % div == 0 for s in starts)
    cores = _cores(starts, tile, size)
    assert cores[0][0] == 0 and cores[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(cores, cores[1:]))  # a partition
    for s, (lo, hi) in zip(starts, cores):  # every voxel >= margin from an inner tile edge
        assert s <= lo and hi <= s + tile
        assert lo == 0 or lo - s >= margin
        assert hi == size or s + tile - hi >= margin


def test_plan_is_one_pass_within_the_budget_else_margin_tiles():
    arch = dict(PRESETS["resunet_fine"], n_classes=3, preset="resunet_fine")
    net = build_network(arch).eval()
    card = {"arch": arch, "voxel_size_a": 2.0, "tile": 64}
    # EMD-0093's grid: 220³ at 1.34 Å (295 Å across): 148³ working voxels, one pass in 8 GB
    plan = plan_memory((220, 220, 220), (1.34,) * 3, card, net, PredictConfig(device="cpu"))
    assert plan.tile_shape == (152, 152, 152) and plan.in_memory <= 8 * GB
    # a tight budget: the largest margin tiles that fit
    tight = plan_memory((220, 220, 220), (1.34,) * 3, card, net, PredictConfig(device="cpu", max_memory_gb=1.0))
    assert tight.tile_shape and max(tight.tile_shape) < 152 and tight.streamed <= 1.0 * GB
    # an explicit tile keeps the Gaussian blending
    assert plan_memory((220,) * 3, (1.34,) * 3, card, net, PredictConfig(device="cpu", tile=96)).tile_shape == ()


def test_zone_and_labels_equal_the_two_searches(structures_dir):
    """The component's zone mask and labels from one search equal within() and label_voxels()
    (a real chain on its box, and atoms on voxel centres and half-voxels, where ties occur)."""
    from cryosse.io import Map, ProteinAtoms, protein_atoms, read_model
    from cryosse.prep.components import crop_box, extract
    from cryosse.prep.labels import label_voxels, within, zone_and_labels

    st = read_model(structures_dir / "1a8o.pdb.gz")
    atoms = protein_atoms(st, ["A"])
    rng = np.random.default_rng(0)
    classes = rng.integers(1, 4, len(atoms.xyz)).astype(np.uint8)
    grid = Map(np.zeros((60, 50, 40), np.float32), (1.0, 1.0, 1.0), tuple(atoms.xyz.min(0) - 5))
    start, size = crop_box(grid, atoms.xyz, 6.0, 8)
    box = extract(grid, start, size)
    lattice = np.array(grid.origin_a) + rng.integers(0, 60, (300, 3)) * 0.5  # equidistant atoms
    tied = ProteinAtoms(lattice, rng.integers(0, 50, 300), np.array(["A"] * 300),
                        [("A", i, "", "ALA") for i in range(50)])
    tied_classes = rng.integers(1, 4, 300).astype(np.uint8)
    for g, a, c in ((box, atoms, classes), (grid, atoms, classes), (grid, tied, tied_classes)):
        zone, lab = zone_and_labels(g, a, c, 6.0, 3.0)
        assert np.array_equal(zone, within(g, a.xyz, 6.0))
        assert np.array_equal(lab.data, label_voxels(g, a, c, 3.0).data)
        assert zone.sum() > lab.data.astype(bool).sum() > 0
