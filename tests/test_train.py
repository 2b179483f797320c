"""Trainer parts: losses against hand computations, network shapes, augmentation geometry,
checkpoints that load with weights_only=True and refuse mismatched data."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from cryosse.errors import InputError
from cryosse.train.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from cryosse.train.loop import _proper_rotation
from cryosse.train.losses import LOSSES, make_loss
from cryosse.train.network import PRESETS, build_network


def _tiny():
    # two voxels, three classes: logits chosen by hand
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]]).T.reshape(1, 3, 2, 1, 1)
    target = torch.tensor([0, 2]).reshape(1, 2, 1, 1)
    return logits, target


def _softmax(v):
    e = np.exp(v - np.max(v))
    return e / e.sum()


def test_losses_match_hand_values():
    logits, target = _tiny()
    p1 = _softmax(np.array([2.0, 0.0, -1.0]))
    p2 = _softmax(np.array([0.5, 1.5, 0.0]))
    pt = np.array([p1[0], p2[2]])
    ce = -np.log(pt).mean()
    focal = (-(1 - pt) ** 2 * np.log(pt)).mean()
    P = np.stack([p1, p2])            # voxels x classes
    T = np.array([[1, 0, 0], [0, 0, 1]], float)
    s = 1e-5
    dice = 1 - np.mean((2 * (P * T).sum(0) + s) / (P.sum(0) + T.sum(0) + s))
    want = {"ce": ce, "focal": focal, "dice": dice, "ce_dice": ce + dice, "focal_dice": focal + dice}
    for name in LOSSES:
        assert float(make_loss(name)(logits, target)) == pytest.approx(want[name], rel=1e-5), name


def test_focal_with_gamma_zero_is_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4, 4))
    assert float(make_loss("focal", gamma=0.0)(logits, target)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, target)), rel=1e-5)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_network_shapes(preset):
    net = build_network(dict(PRESETS[preset], n_classes=3)).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 1, 16, 24, 8))
    assert out.shape == (1, 3, 16, 24, 8)


def test_augmentation_uses_proper_rotations_only():
    rng = random.Random(0)
    seen = set()
    for _ in range(2000):
        perm, flips = _proper_rotation(rng)
        m = np.zeros((3, 3))
        for i, p in enumerate(perm):
            m[i, p] = -1 if flips[i] else 1
        assert round(np.linalg.det(m)) == 1
        seen.add((perm, flips))
    assert len(seen) == 24


def test_checkpoint_round_trip_and_checks(tmp_path):
    arch = dict(PRESETS["small"], n_classes=3, preset="small")
    net = build_network(arch)
    card = {"arch": arch, "classes": ["other", "helix", "sheet"], "voxel_size_a": 2.0,
            "data_voxel_size_a": 1.0, "tile": 64}
    save_checkpoint(tmp_path / "c.pt", net, card)
    blob = torch.load(tmp_path / "c.pt", weights_only=True)  # plain data only
    assert blob["card"]["classes"] == card["classes"]
    net2, card2, _ = load_checkpoint(tmp_path / "c.pt")
    for a, b in zip(net.state_dict().values(), net2.state_dict().values()):
        assert torch.equal(a, b)
    check_compatible(card2, classes=["other", "helix", "sheet"], voxel_size_a=1.0)
    with pytest.raises(InputError, match="classes"):
        check_compatible(card2, classes=["background", "helix", "sheet", "other"])
    with pytest.raises(InputError, match="1.5"):
        check_compatible(card2, voxel_size_a=1.5)
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(InputError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")
