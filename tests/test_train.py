"""Trainer parts: losses against hand computations, network shapes, augmentation geometry,
checkpoints that load with weights_only=True and refuse mismatched data."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from cryosse.errors import InputError
from cryosse.net.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from cryosse.train.sampler import _proper_rotation
from cryosse.train.losses import LOSSES, make_loss
from cryosse.net.network import PRESETS, build_network


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
    d = net.divisor
    with torch.no_grad():
        out = net(torch.zeros(1, 1, d, 3 * d, 2 * d))
    assert out.shape == (1, 3, d, 3 * d, 2 * d)


def test_default_network_is_far_cheaper_than_deepssetracer():
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "bench"))
    from bench_train import flops_per_voxel
    from cryosse.train.loop import TrainConfig

    default = flops_per_voxel(build_network(dict(PRESETS[TrainConfig().preset], n_classes=3)))
    dst = flops_per_voxel(build_network(dict(PRESETS["deepssetracer"], n_classes=3)))
    assert dst == pytest.approx(1.61e6, rel=0.02)  # the published layout's cost (SCIENCE.md)
    assert dst / default >= 10


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


def test_losses_agree_with_monai():
    """An independent implementation: MONAI's softmax focal loss (which averages over classes
    too, hence the factor C) and soft Dice with the same smoothing, over the batch."""
    monai_losses = pytest.importorskip("monai.losses")
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 5, 6, 4)
    target = torch.randint(0, 3, (2, 5, 6, 4))
    t1 = target[:, None]
    ref_focal = monai_losses.FocalLoss(use_softmax=True, gamma=2.0, to_onehot_y=True)(logits, t1) * 3
    ref_dice = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, batch=True,
                                     smooth_nr=1e-5, smooth_dr=1e-5)(logits, t1)
    assert float(make_loss("focal")(logits, target)) == pytest.approx(float(ref_focal), rel=1e-5)
    assert float(make_loss("dice")(logits, target)) == pytest.approx(float(ref_dice), rel=1e-5)
    assert float(make_loss("focal_dice")(logits, target)) == pytest.approx(float(ref_focal + ref_dice), rel=1e-5)


def _train_cmd(datalist, out, steps=40):
    import sys
    return [sys.executable, "-m", "cryosse.cli", "train", "--datalist", str(datalist), "-o", str(out),
            "--steps", str(steps), "--batch", "2", "--val-every", "20", "--checkpoint-every", "5",
            "--threads", "1", "--seed", "7"]


@pytest.mark.slow
def test_resume_after_kill_is_exact(tiny_dataset, tmp_path):
    """A run killed with SIGKILL and started again ends with exactly the weights of a run that
    was never interrupted."""
    import os
    import signal
    import subprocess
    import time

    dl = tiny_dataset / "datalist.json"
    ref = subprocess.run(_train_cmd(dl, tmp_path / "ref"), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    proc = subprocess.Popen(_train_cmd(dl, tmp_path / "cut"), stderr=subprocess.DEVNULL)
    last = tmp_path / "cut" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    step_at_kill = torch.load(last, weights_only=True)["state"]["step"]
    assert step_at_kill < 40
    again = subprocess.run(_train_cmd(dl, tmp_path / "cut"), capture_output=True, text=True)
    assert again.returncode == 0 and "resuming" in again.stderr, again.stderr
    a = torch.load(tmp_path / "ref" / "last.pt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["state"]["step"] == b["state"]["step"] == 40
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert (tmp_path / "cut" / "metrics.jsonl").read_text().count("\n") == 2
    for name in ("checkpoint.pt", "model_card.json", "training_curve.png"):
        assert (tmp_path / "cut" / name).is_file()
    # the loss of every step, for the curve: the resumed run's record equals the uninterrupted one's
    from cryosse.io import read_tsv

    per_step = read_tsv(tmp_path / "cut" / "train_loss.tsv")
    assert [int(r["step"]) for r in per_step] == list(range(1, 41))
    assert per_step == read_tsv(tmp_path / "ref" / "train_loss.tsv")
    card = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["card"]
    assert card["loss"] == "focal_dice" and card["data_sha256"] and card["classes"] == ["other", "helix", "sheet"]


def test_a_finished_run_without_its_best_checkpoint_trains_afresh(tiny_dataset, tmp_path):
    """A workflow rerun (a forced rule, an input touched) deletes a training job's outputs but
    not last.pt: the run must not resume a finished state whose best weights are gone (it failed
    with 'no such checkpoint'); it trains afresh and ends with the same weights."""
    from cryosse.train.loop import TrainConfig, train

    cfg = TrainConfig(steps=4, batch=1, val_every=2, patch=16, preset="small", seed=3)
    first = train(tiny_dataset / "datalist.json", tmp_path, cfg)
    a = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["state_dict"]
    for name in ("checkpoint.pt", "model_card.json", "training_curve.png"):
        (tmp_path / name).unlink()
    again = train(tiny_dataset / "datalist.json", tmp_path, cfg)
    assert again["steps_run"] == first["steps_run"] == 4 and (tmp_path / "model_card.json").is_file()
    b = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("loss", LOSSES)
def test_train_each_loss(tiny_dataset, tmp_path, loss):
    from cryosse.train.loop import TrainConfig, train
    card = train(tiny_dataset / "datalist.json", tmp_path, TrainConfig(loss=loss, steps=3, batch=1,
                                                                       val_every=3, patch=32))
    assert card["loss"] == loss and card["steps_run"] == 3
    assert np.isfinite(card["metrics"]["train_loss"])


def test_early_stopping(tiny_dataset, tmp_path):
    from cryosse.train.loop import TrainConfig, train
    card = train(tiny_dataset / "datalist.json", tmp_path, TrainConfig(steps=50, batch=1, patch=32, lr=1e-9,
                                                                       val_every=2, patience=2))
    assert card["steps_run"] < 50 and "early stop" in card["stop_reason"]


def test_realism_training_records_norm_and_predicts_with_it(tiny_dataset, tmp_path):
    """A run with realism and local normalisation validates on clean and degraded copies,
    records the normalisation in the card, and prediction normalises the same way."""
    from cryosse.io import read_map
    from cryosse.inference import PredictConfig, predict_map
    from cryosse.net.checkpoint import load_checkpoint
    from cryosse.train.loop import TrainConfig, train

    cfg = TrainConfig(steps=6, batch=2, val_every=3, patch=32, norm="local", realism=True,
                      realism_ramp=(0.0, 0.5))
    card = train(tiny_dataset / "datalist.json", tmp_path, cfg)
    assert card["norm"] == "local" and "local normalisation" in card["normalisation"]
    assert "valreal_helix_f1" in card["metrics"] and np.isfinite(card["metrics"]["train_loss"])
    net, card2, _ = load_checkpoint(tmp_path / "checkpoint.pt")
    m = read_map(next((tiny_dataset / "components").glob("*/density.mrc")))
    plain = predict_map(m, net, card2, PredictConfig(device="cpu"))
    assert plain.labels.data.shape == m.data.shape
    flipped = predict_map(m, net, card2, PredictConfig(device="cpu", tta=True))
    assert flipped.helix_prob.data.shape == m.data.shape and flipped.summary["tta"] is True


def test_realism_ramp():
    from cryosse.train.loop import TrainConfig
    from cryosse.train.sampler import realism_strength

    cfg = TrainConfig(steps=100, realism_ramp=(0.2, 0.6))
    assert [realism_strength(s, cfg) for s in (0, 20, 40, 60, 100)] == pytest.approx([0, 0, 0.5, 1, 1])


@pytest.mark.parametrize("fractions", [(0.0, 0.0), (0.5, 0.25)])
def test_patch_sampler_draws_centres_with_the_oversampling_fractions(fractions):
    """Class-aware sampling: with helix/sheet fractions (h, s) a centre lies on a helix voxel
    with probability h + (1 - h - s) x (the helix voxel fraction), likewise sheet; (0, 0) is
    uniform. One helix voxel and 20 sheet voxels in 16³: uniform draws almost never hit them."""
    from cryosse.train.data import Sample
    from cryosse.train.loop import TrainConfig
    from cryosse.train.sampler import PatchSampler

    y = np.zeros((16, 16, 16), np.uint8)
    y[3, 4, 5] = 1
    y[8, 8, 2:12] = 2
    y[9, 8, 2:12] = 2
    s = Sample("t", np.zeros(y.shape, np.float32), y, 0.0, y, 2.0)
    h, sh = fractions
    cfg = TrainConfig(oversample={"helix": h, "sheet": sh}, realism=False)
    sampler = PatchSampler([s], cfg, random.Random(0))
    n = 4000
    hits = np.zeros(3)
    for _ in range(n):
        _, c = sampler.centre()
        hits[y[tuple(c)]] += 1
    rest = 1 - h - sh
    exp_h, exp_s = h + rest * 1 / y.size, sh + rest * 20 / y.size
    for got, exp in ((hits[1] / n, exp_h), (hits[2] / n, exp_s)):
        assert abs(got - exp) < 4 * np.sqrt(exp * (1 - exp) / n) + 2e-3, (fractions, hits / n)


def test_segmented_copies_keep_labels_only_near_what_is_left_and_patches_stay_inside(structures_dir):
    """A training sample segmented (domain, tight box): labels survive only in the copy's keep
    mask, the tight box is normalised on its own and holds the pad value around it, and every
    patch drawn from the copy is centred inside the segment, on the class drawn when it holds
    that class."""
    from cryosse.io import protein_atoms, read_model
    from cryosse.prep.density import simulate_density
    from cryosse.prep.labels import atom_classes, label_voxels
    from cryosse.prep.sse import assign_sse
    from cryosse.metrics import to_three_class
    from cryosse.train.data import Sample
    from cryosse.train.loop import TrainConfig
    from cryosse.train.sampler import PatchSampler, _degrade_whole

    st = read_model(structures_dir / "1a8o.pdb.gz")
    sim = simulate_density(st, 6.0, 2.0)
    atoms = protein_atoms(st)
    lab = label_voxels(sim, atoms, atom_classes(atoms, assign_sse(st))).data.astype(np.uint8)
    s = Sample("t", sim.data, to_three_class(lab), 0.0, lab, 2.0, raw=sim.data.astype(np.float32))
    off = {k: 0.0 for k in ("blur_p", "local_res_p", "highpass_p", "noise_p", "background_p", "mask_p",
                            "threshold_p")}
    cfg = TrainConfig(norm="local", realism=True, realism_clean=0.0, patch=8,
                      realism_params={**off, "segment_p": 1.0, "domain_p": 1.0, "tight_p": 1.0,
                                      "domain_radius_a": [12.0, 12.0], "tight_margin_a": [0.0, 0.0]})
    d = _degrade_whole(s, cfg, np.random.default_rng(0))
    assert d.keep is not None and 0 < (d.y > 0).sum() < 0.8 * (s.y > 0).sum()  # one 12 Å ball of a chain
    assert np.all(d.y[~d.keep] == 0) and np.array_equal(d.y[d.keep], s.y[d.keep])
    lo, hi = np.argwhere(d.keep).min(0), np.argwhere(d.keep).max(0) + 1  # the tight box (margin 0)
    inside = np.zeros(d.x.shape, bool)
    inside[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    assert np.all(d.x[~inside] == 0) and np.any(d.x[inside] != 0)  # outside it: the pad value of local
    sampler = PatchSampler([s], cfg, random.Random(1))
    sampler.cache[0] = [d, 10 ** 6]
    for _ in range(200):
        i, c = sampler.centre()
        wanted = int(s.y[tuple(c)])
        if not d.keep[tuple(c)]:
            c = sampler._in_segment(d, wanted)
        assert d.keep[tuple(c)]
        if d.keep_points[wanted].size:
            assert d.y[tuple(c)] == wanted


def test_oversample_option_is_checked():
    from cryosse.cli.train import _oversample

    assert _oversample("0,0") == {"helix": 0.0, "sheet": 0.0}
    assert _oversample("0.4,0.2") == {"helix": 0.4, "sheet": 0.2}
    for bad in ("0.5", "a,b", "0.7,0.6", "-0.1,0.2"):
        with pytest.raises(InputError, match="--oversample"):
            _oversample(bad)


def test_fine_tune_starts_from_one_member_of_an_ensemble(tiny_dataset, tmp_path):
    """`--init ENSEMBLE --init-member i` (the bundle recipe's fine-tune of a shipped model):
    the run starts from member i's weights, the card says so, and an ensemble without a member,
    a member it lacks, or a member of a single network are one-line errors naming the flag or file."""
    from cryosse.net.checkpoint import ensemble_checkpoints
    from cryosse.train.loop import TrainConfig, train

    dl = tiny_dataset / "datalist.json"
    base = dict(steps=1, batch=1, val_every=1, patch=32, preset="small")
    for seed in (0, 1):
        train(dl, tmp_path / f"m{seed}", TrainConfig(seed=seed, **base))
    ens = tmp_path / "ens.pt"
    ensemble_checkpoints([tmp_path / "m0/checkpoint.pt", tmp_path / "m1/checkpoint.pt"], ens)
    members = load_checkpoint(ens)[0].members
    card = train(dl, tmp_path / "ft", TrainConfig(seed=7, **dict(base, lr=1e-12)), init=ens, init_member=1)
    assert card["init_checkpoint"]["member"] == 1 and card["init_checkpoint"]["path"] == str(ens)
    tuned = dict(load_checkpoint(tmp_path / "ft/checkpoint.pt")[0].named_parameters())  # weights, not BN statistics
    for k, v in members[1].named_parameters():
        assert torch.allclose(tuned[k], v.float(), atol=1e-5), k
    other = dict(members[0].named_parameters())
    assert any(not torch.allclose(other[k], v) for k, v in members[1].named_parameters())
    # an ensemble of fine-tuned members records where each started
    card = ensemble_checkpoints([tmp_path / "ft/checkpoint.pt", tmp_path / "m0/checkpoint.pt"], tmp_path / "e2.pt")
    assert card["members"][0]["init_checkpoint"]["member"] == 1 and "init_checkpoint" not in card["members"][1]
    for init, member, where, what in ((ens, None, "ens.pt", "name the one"), (ens, 2, "--init-member", "0 to 1"),
                                      (tmp_path / "m0/checkpoint.pt", 0, "--init-member", "single network")):
        with pytest.raises(InputError, match=what) as e:
            train(dl, tmp_path / "bad", TrainConfig(**base), init=init, init_member=member)
        assert where in str(e.value)


def test_soup_is_the_mean_of_fine_tunes_of_one_start(tiny_dataset, tmp_path):
    """`cryosse soup`: the weights and BatchNorm statistics of the output are the element-wise
    mean of the sources' (checked against a direct mean); sources that did not start from the
    same checkpoint, an ensemble, or a run that was not a fine-tune are refused naming the file."""
    from cryosse.cli import main
    from cryosse.net.checkpoint import ensemble_checkpoints
    from cryosse.train.loop import TrainConfig, train

    dl = tiny_dataset / "datalist.json"
    base = dict(steps=2, batch=1, val_every=2, patch=32, preset="small")
    for seed in (0, 1):
        train(dl, tmp_path / f"m{seed}", TrainConfig(seed=seed, **base))
    start = tmp_path / "m0/checkpoint.pt"
    for seed in (5, 6):
        train(dl, tmp_path / f"ft{seed}", TrainConfig(seed=seed, **base), init=start)
    train(dl, tmp_path / "other", TrainConfig(seed=7, **base), init=tmp_path / "m1/checkpoint.pt")
    srcs = [tmp_path / "ft5/checkpoint.pt", tmp_path / "ft6/checkpoint.pt"]
    assert main(["soup", *map(str, srcs), "--datalist", str(dl), "-o", str(tmp_path / "soup.pt")]) == 0
    net, card, blob = load_checkpoint(tmp_path / "soup.pt")
    assert set(card["metrics"]) >= {"val_helix_f1", "val_sheet_f1", "val_other_f1"}
    # validation outside training gives what training recorded for the same weights
    from cryosse.train.loop import validate

    src_net, src_card, _ = load_checkpoint(srcs[0])
    again = validate(src_net, src_card, dl)
    assert {k: again[k] for k in again if k.startswith("val_")} == pytest.approx(
        {k: v for k, v in src_card["metrics"].items() if k.startswith("val_")}, nan_ok=True)
    a, b = (torch.load(s, weights_only=True)["state_dict"] for s in srcs)
    for k, v in blob["state_dict"].items():
        if v.is_floating_point():
            assert torch.allclose(v, (a[k] + b[k]) / 2, atol=1e-7), k
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())  # the sources differ
    assert [s["seed"] for s in card["soup"]] == [5, 6] and card["init_checkpoint"]["path"] == str(start)
    ens = ensemble_checkpoints([tmp_path / "soup.pt", tmp_path / "m1/checkpoint.pt"], tmp_path / "ens.pt")
    assert [x["seed"] for x in ens["members"][0]["soup"]] == [5, 6]
    from cryosse.net.checkpoint import soup_checkpoints

    for bad, what in (([srcs[0], tmp_path / "other/checkpoint.pt"], "start differs"),
                      ([tmp_path / "ens.pt", srcs[0]], "is an ensemble"),
                      ([start, srcs[0]], "records no init checkpoint")):
        with pytest.raises(InputError, match=what):
            soup_checkpoints(bad, tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


def test_realism_masks_around_all_protein_not_only_its_helices_and_sheets(structures_dir):
    """The mask effect (a map zeroed outside a zone around the protein, as users mask maps) keeps
    the density of loops: its zone is built from every labelled voxel, not from the helix and
    sheet voxels alone, which would hand the network the answer (density left = SSE)."""
    from cryosse.io import protein_atoms, read_model
    from cryosse.metrics import to_three_class
    from cryosse.prep.density import simulate_density
    from cryosse.prep.labels import atom_classes, label_voxels
    from cryosse.prep.sse import assign_sse
    from cryosse.train.data import Sample
    from cryosse.train.loop import TrainConfig
    from cryosse.train.sampler import _degrade_whole

    st = read_model(structures_dir / "1a8o.pdb.gz")
    sim = simulate_density(st, 6.0, 2.0, 10.0)
    atoms = protein_atoms(st)
    lab = label_voxels(sim, atoms, atom_classes(atoms, assign_sse(st))).data.astype(np.uint8)
    s = Sample("t", sim.data, to_three_class(lab), 0.0, lab, 2.0, raw=sim.data.astype(np.float32))
    off = {k: 0.0 for k in ("blur_p", "local_res_p", "highpass_p", "noise_p", "background_p", "threshold_p")}
    cfg = TrainConfig(norm="zscore", realism=True, realism_clean=0.0,
                      realism_params={**off, "mask_p": 1.0, "scale": [1.0, 1.0], "offset_sd": 0.0})
    d = _degrade_whole(s, cfg, np.random.default_rng(0))
    zeroed = np.isclose(d.x, d.pad_value, atol=1e-5)  # raw 0 after the z-score is the pad value
    loops = (lab == 3) & (sim.data > 1e-3 * sim.data.max())  # code 3: protein neither helix nor sheet
    assert loops.sum() > 100
    assert not zeroed[loops].any(), f"{zeroed[loops].sum()} loop voxels masked away"
    tails = (lab == 0) & (sim.data > 1e-7 * sim.data.max())  # density far out in the solvent
    assert zeroed[tails].sum() > 50  # the mask did act there
