"""Ensembles of trained networks (the bundled model's recipe trains one run per seed and
combines them) and the GPU recipe driver (scripts/gpu_recipe.py), rehearsed on the CPU."""
from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cryosse.cli import main
from cryosse.errors import InputError
from cryosse.net.checkpoint import ensemble_checkpoints, export_checkpoint, load_checkpoint, save_checkpoint
from cryosse.net.network import PRESETS, Ensemble, build_network

ROOT = Path(__file__).resolve().parents[1]


def _ckpt(path: Path, preset: str, seed: int, norm: str = "local") -> Path:
    torch.manual_seed(seed)
    arch = dict(PRESETS[preset], n_classes=3, preset=preset)
    net = build_network(arch).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode differs from identity
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    save_checkpoint(path, net, {"arch": arch, "classes": ["other", "helix", "sheet"], "voxel_size_a": 2.0,
                                "data_voxel_size_a": 1.0, "tile": 32, "norm": norm, "loss": "dice",
                                "train_config": {"seed": seed, "preset": preset}, "step": 10 + seed})
    return path


def test_ensemble_output_is_the_mean_probability():
    torch.manual_seed(0)
    members = [build_network(dict(PRESETS[p], n_classes=3)).eval() for p in ("resunet", "small")]
    ens = Ensemble(members).eval()
    assert ens.divisor == 16  # lcm of 16 (resunet) and 4 (small)
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        want = (torch.softmax(members[0](x), 1) + torch.softmax(members[1](x), 1)) / 2
        got = torch.softmax(ens(x), 1)
    assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError):
        Ensemble([])


def test_ensemble_checkpoint_round_trip(tmp_path):
    a = _ckpt(tmp_path / "a.pt", "resunet", 0)
    b = _ckpt(tmp_path / "b.pt", "resunet_fine", 1)
    card = ensemble_checkpoints([a, b], tmp_path / "e.pt", half=False)
    assert card["arch"]["type"] == "ensemble" and card["weights_dtype"] == "float32"
    assert [m["seed"] for m in card["members"]] == [0, 1]
    assert [m["step"] for m in card["members"]] == [10, 11]
    torch.load(tmp_path / "e.pt", weights_only=True)
    net, card2, _ = load_checkpoint(tmp_path / "e.pt")
    na, _, _ = load_checkpoint(a)
    nb, _, _ = load_checkpoint(b)
    x = torch.randn(2, 1, 16, 16, 16)
    with torch.no_grad():
        want = (torch.softmax(na(x), 1) + torch.softmax(nb(x), 1)) / 2
        got = torch.softmax(net(x), 1)
    assert torch.allclose(got, want, atol=1e-5)
    # float16 export of an ensemble: half the bytes, same prediction to fp16 precision
    export_checkpoint(tmp_path / "e.pt", tmp_path / "e16.pt")
    n16, c16, _ = load_checkpoint(tmp_path / "e16.pt")
    assert c16["weights_dtype"] == "float16"
    assert (tmp_path / "e16.pt").stat().st_size < 0.6 * (tmp_path / "e.pt").stat().st_size
    with torch.no_grad():
        assert torch.allclose(torch.softmax(n16(x), 1), want, atol=2e-2)


def test_ensemble_refuses_mismatched_members(tmp_path):
    a = _ckpt(tmp_path / "a.pt", "small", 0)
    z = _ckpt(tmp_path / "z.pt", "small", 1, norm="zscore")
    with pytest.raises(InputError, match=r"z\.pt.*norm"):
        ensemble_checkpoints([a, z], tmp_path / "e.pt")
    with pytest.raises(InputError, match="at least two"):
        ensemble_checkpoints([a], tmp_path / "e.pt")
    assert not (tmp_path / "e.pt").exists()
    ensemble_checkpoints([a, _ckpt(tmp_path / "b.pt", "small", 2)], tmp_path / "e.pt")
    with pytest.raises(InputError, match="already an ensemble"):
        ensemble_checkpoints([tmp_path / "e.pt", a], tmp_path / "e2.pt")


def test_ensemble_cli_and_predict(tmp_path):
    a = _ckpt(tmp_path / "a.pt", "small", 0)
    b = _ckpt(tmp_path / "b.pt", "small", 1)
    assert main(["ensemble", str(a), str(b), "--float16", "-o", str(tmp_path / "e.pt")]) == 0
    card = json.loads((tmp_path / "e.json").read_text())
    assert card["weights_dtype"] == "float16" and len(card["members"]) == 2
    from cryosse.io import Map
    from cryosse.inference import PredictConfig, predict_map

    rng = np.random.default_rng(0)
    m = Map(rng.normal(size=(20, 24, 28)).astype(np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    net, card, _ = load_checkpoint(tmp_path / "e.pt")
    pred = predict_map(m, net, card, PredictConfig(device="cpu"))
    p = pred.helix_prob.data + pred.sheet_prob.data
    assert pred.labels.data.shape == m.data.shape and np.all((p >= 0) & (p <= 1 + 1e-5))


@pytest.mark.slow
def test_gpu_recipe_rehearsal_on_cpu(tmp_path, tiny_dataset):
    """scripts/gpu_recipe.py on the CPU: two runs sized to a 25 s budget, packed into tars; the
    second names its own datalist (one training map). The kill's grace is generous: this checks
    the rehearsal's outputs, not its speed, and shared CI cores once ran it past a 60 s grace."""
    dl = json.loads((tiny_dataset / "datalist.json").read_text())
    n_train = len(dl["training"])
    for key in ("training", "validation", "test"):  # absolute paths: the file lives elsewhere
        for item in dl.get(key, []):
            item["image"], item["label"] = (str(tiny_dataset / item[k]) for k in ("image", "label"))
    own = tmp_path / "datalist_one.json"
    own.write_text(json.dumps(dict(dl, training=dl["training"][:1])))
    runs = tmp_path / "runs.json"
    runs.write_text(json.dumps([{"name": "a", "config": {"patch": 16, "batch": 2, "preset": "small"}},
                                {"name": "b", "config": {"patch": 16, "batch": 2, "preset": "small",
                                                         "seed": 1, "loss": "focal_dice"},
                                 "datalist": str(own)}]))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_recipe.py"), "--datalist",
                        str(tiny_dataset / "datalist.json"), "--out", str(out), "--runs", str(runs),
                        "--budget-s", "25", "--device", "cpu", "--grace-s", "240"],  # the grace: loaded CI cores
                       capture_output=True, text=True, timeout=420)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    import yaml
    bundle = yaml.safe_load((ROOT / "config.yaml").read_text())["bundle"]
    assert [s["name"] for s in summary["runs"]] == ["a", "b"], summary
    for s in summary["runs"]:
        assert s["steps"] >= 100 and s["steps_run"] >= 1 and s["device_name"] == "cpu"
        _, card, _ = load_checkpoint(out / f"{s['name']}.pt")
        assert card["weights_dtype"] == "float16" and card["gpu_run"]["steps_per_s"] > 0
        # settings a run does not name are the bundle recipe's (config.yaml)
        tc = card["train_config"]
        assert tc["norm"] == bundle["norm"] and tc["realism"] == bundle["realism"]
        assert tc["loss"] == (bundle["loss"] if s["name"] == "a" else "focal_dice")
        assert card["n_train"] == (n_train if s["name"] == "a" else 1)
    names = set()
    for t in summary["tars"]:
        with tarfile.open(out / t) as tf:
            names |= set(tf.getnames())
    assert {"a.pt", "b.pt", "a/metrics.jsonl", "b/train.log"} <= names
