"""The training loop: class-aware patch sampling, grid-respecting augmentation, validation on
whole held-out components, metrics log, training curve and a model-card checkpoint."""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import DATA_CONTRACT_VERSION, __version__
from ..errors import InputError
from ..io import write_json, write_text
from .checkpoint import save_checkpoint
from .data import Sample, load_sample
from .infer import sliding_window_probs
from .losses import make_loss
from .metrics import CLASS3, confusion, prf_from_confusion
from .network import PRESETS, build_network

__all__ = ["TrainConfig", "train", "load_datalist"]


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "small"
    loss: str = "focal_dice"
    voxel_size_a: float = 2.0          # working grid of the network
    patch: int = 32                    # voxels per side on the working grid
    batch: int = 4
    steps: int = 600
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    val_every: int = 100
    max_minutes: float = 0.0           # 0: no time limit
    focal_gamma: float = 2.0
    loss_weights: tuple[float, float] = (1.0, 1.0)
    oversample: dict = field(default_factory=lambda: {"helix": 0.33, "sheet": 0.33})
    augment: bool = True


def load_datalist(path: str | os.PathLike) -> dict:
    p = Path(path)
    try:
        dl = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(p, f"not a readable datalist ({exc})") from None
    base = p.resolve().parent
    for key in ("training", "validation", "test"):
        for item in dl.get(key, []):
            item["image"] = str(base / item["image"])
            item["label"] = str(base / item["label"])
    if not dl.get("training"):
        raise InputError(p, "datalist has no training samples")
    return dl


def _file_hash(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


# ----------------------------------------------------------------------------- sampling

def _proper_rotation(rng: random.Random) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """A random one of the 24 proper 90-degree rotations as (axis permutation, flips).

    Reflections are excluded: they would turn right-handed helices left-handed."""
    perm = [0, 1, 2]
    rng.shuffle(perm)
    flips = [rng.random() < 0.5 for _ in range(3)]
    inversions = sum(1 for i in range(3) for j in range(i + 1, 3) if perm[i] > perm[j])
    if (inversions + sum(flips)) % 2 == 1:
        flips[0] = not flips[0]
    return tuple(perm), tuple(flips)


def _augment(x: np.ndarray, y: np.ndarray, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    perm, flips = _proper_rotation(rng)
    x, y = x.transpose(perm), y.transpose(perm)
    axes = tuple(a for a, f in enumerate(flips) if f)
    if axes:
        x, y = np.flip(x, axes), np.flip(y, axes)
    # intensity: global scale/offset and a little white noise (all on z-scored input)
    x = x * rng.uniform(0.8, 1.2) + rng.uniform(-0.2, 0.2)
    x = x + np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(0, 0.2), x.shape)
    return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y)


def _patch(s: Sample, centre: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    lo = centre - p // 2
    x = np.full((p, p, p), s.pad_value, np.float32)
    y = np.zeros((p, p, p), np.uint8)
    src_lo = np.maximum(lo, 0)
    src_hi = np.minimum(lo + p, s.x.shape)
    dst_lo = src_lo - lo
    dst_hi = dst_lo + (src_hi - src_lo)
    sl_src = tuple(slice(a, b) for a, b in zip(src_lo, src_hi))
    sl_dst = tuple(slice(a, b) for a, b in zip(dst_lo, dst_hi))
    x[sl_dst] = s.x[sl_src]
    y[sl_dst] = s.y[sl_src]
    return x, y


class PatchSampler:
    """Patches with class-aware oversampling: a patch is centred on a random helix voxel with
    probability ``oversample['helix']``, on a sheet voxel with ``oversample['sheet']``, else
    anywhere in a random sample."""

    def __init__(self, samples: list[Sample], cfg: TrainConfig, rng: random.Random):
        self.samples, self.cfg, self.rng = samples, cfg, rng
        self.where = {c: [np.argwhere(s.y == c) for s in samples] for c in (1, 2)}
        self.has = {c: [i for i, w in enumerate(self.where[c]) if len(w)] for c in (1, 2)}

    def centre(self) -> tuple[Sample, np.ndarray]:
        r = self.rng.random()
        p_h, p_s = self.cfg.oversample.get("helix", 0), self.cfg.oversample.get("sheet", 0)
        cls = 2 if r < p_s else 1 if r < p_s + p_h else 0
        if cls and self.has[cls]:
            i = self.rng.choice(self.has[cls])
            w = self.where[cls][i]
            return self.samples[i], w[self.rng.randrange(len(w))]
        s = self.rng.choice(self.samples)
        return s, np.array([self.rng.randrange(n) for n in s.x.shape])

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for _ in range(self.cfg.batch):
            s, c = self.centre()
            x, y = _patch(s, c, self.cfg.patch)
            if self.cfg.augment:
                x, y = _augment(x, y, self.rng)
            xs.append(x)
            ys.append(y)
        return (torch.from_numpy(np.stack(xs)[:, None]),
                torch.from_numpy(np.stack(ys).astype(np.int64)))


# ----------------------------------------------------------------------------- loop

def evaluate_samples(net, samples: list[Sample], tile: int, divisor: int) -> dict:
    """Pooled voxel precision/recall/F1 (three classes) over whole samples."""
    cm = np.zeros((3, 3), np.int64)
    for s in samples:
        probs = sliding_window_probs(net, s.x, tile=tile, overlap=0.25, divisor=divisor,
                                     pad_value=s.pad_value)
        cm += confusion(probs.argmax(0).astype(np.uint8), s.y)
    return prf_from_confusion(cm)


def _progress(step: int, total: int, t0: float, loss: float) -> None:
    """A progress bar on a terminal; a line every 5% of the steps in a log file."""
    tty = sys.stderr.isatty()
    if not tty and step % max(1, total // 20) and step != total:
        return
    el = time.time() - t0
    eta = el / max(step, 1) * (total - step)
    bar = "#" * int(30 * step / total)
    lead = "\r" if tty else ""
    print(f"{lead}[{bar:<30}] step {step}/{total} loss {loss:.4f} "
          f"{el:5.0f}s elapsed, ~{eta:4.0f}s left", end="" if tty and step < total else "\n",
          file=sys.stderr, flush=True)


def train(datalist_path: str | os.PathLike, out_dir: str | os.PathLike,
          cfg: TrainConfig = TrainConfig()) -> dict:
    """Train a U-Net on a datalist; write ``checkpoint.pt`` (best on validation),
    ``metrics.jsonl``, ``training_curve.png`` and ``model_card.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.preset not in PRESETS:
        raise InputError("train.preset", f"unknown preset {cfg.preset!r} ({', '.join(PRESETS)})")
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    dl = load_datalist(datalist_path)
    load = lambda items: [load_sample(it["id"], it["image"], it["label"], cfg.voxel_size_a) for it in items]  # noqa: E731
    train_s, val_s = load(dl["training"]), load(dl.get("validation", []))
    from ..io import read_map
    data_voxel = float(read_map(dl["training"][0]["image"]).voxel_size_a[0])
    arch = dict(PRESETS[cfg.preset], n_classes=3, preset=cfg.preset)
    net = build_network(arch)
    divisor = net.divisor
    if cfg.patch % divisor:
        raise InputError("train.patch", f"patch {cfg.patch} is not a multiple of {divisor}")
    loss_fn = make_loss(cfg.loss, gamma=cfg.focal_gamma, weights=tuple(cfg.loss_weights))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps,
                                                pct_start=0.1)
    sampler = PatchSampler(train_s, cfg, rng)
    card = {
        "cryosse_version": __version__, "data_contract": DATA_CONTRACT_VERSION,
        "arch": arch, "classes": list(CLASS3), "label_codes": {"other": [0, 3], "helix": [1], "sheet": [2]},
        "voxel_size_a": cfg.voxel_size_a, "data_voxel_size_a": data_voxel,
        "normalisation": "resample to voxel_size_a (trilinear), then z-score over the whole box",
        "tile": max(cfg.patch * 2, 64), "loss": cfg.loss, "train_config": asdict(cfg),
        "datalist_sha256": _file_hash(datalist_path),
        "n_train": len(train_s), "n_val": len(val_s), "torch": str(torch.__version__),
    }
    metrics_path = out / "metrics.jsonl"
    log_lines: list[str] = []
    best, best_score = None, -1.0
    t0 = time.time()
    running = []
    step = 0
    for step in range(1, cfg.steps + 1):
        net.train()
        x, y = sampler.batch()
        loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(float(loss))
        _progress(step, cfg.steps, t0, float(np.mean(running[-20:])))
        over_time = cfg.max_minutes > 0 and time.time() - t0 > 60 * cfg.max_minutes
        if step % cfg.val_every == 0 or step == cfg.steps or over_time:
            rec = {"step": step, "time_s": round(time.time() - t0, 1),
                   "train_loss": float(np.mean(running[-cfg.val_every:])), "lr": sched.get_last_lr()[0]}
            if val_s:
                scores = evaluate_samples(net, val_s, card["tile"], divisor)
                rec.update({f"val_{c}_f1": scores[c]["f1"] for c in CLASS3})
                score = np.nansum([scores["helix"]["f1"], scores["sheet"]["f1"]])
            else:
                score = -float(rec["train_loss"])
            log_lines.append(json.dumps(rec))
            write_text(metrics_path, "\n".join(log_lines) + "\n")
            if score > best_score:
                best_score, best = score, rec
                save_checkpoint(out / "checkpoint.pt", net, dict(card, metrics=rec, step=step))
            print(f"  step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in rec.items()
                                                 if isinstance(v, float)), file=sys.stderr)
        if over_time:
            print(f"stopping: time budget of {cfg.max_minutes} min reached", file=sys.stderr)
            break
    card = dict(card, metrics=best, step=best["step"] if best else step,
                train_time_s=round(time.time() - t0, 1))
    # the best checkpoint gets the final card (train time), weights untouched
    blob = torch.load(out / "checkpoint.pt", weights_only=True)
    net.load_state_dict(blob["state_dict"])
    save_checkpoint(out / "checkpoint.pt", net, card)
    write_json(out / "model_card.json", card)
    plot_curve(metrics_path, out / "training_curve.png")
    return card


def plot_curve(metrics_path: str | os.PathLike, png: str | os.PathLike) -> None:
    """Training loss and validation F1 per class against step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    recs = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in recs]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    a1.plot(steps, [r["train_loss"] for r in recs], "k.-")
    a1.set(xlabel="step", ylabel="training loss", title="loss")
    for c, col in (("helix", "tab:red"), ("sheet", "tab:blue"), ("other", "tab:gray")):
        if f"val_{c}_f1" in recs[0]:
            a2.plot(steps, [r[f"val_{c}_f1"] for r in recs], ".-", color=col, label=c)
    a2.set(xlabel="step", ylabel="voxel F1", title="validation", ylim=(0, 1))
    a2.legend()
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
