"""The training loop: class-aware patch sampling, grid-respecting augmentation, validation on
whole held-out components, early stopping, exact resume, metrics log, training curve and a
model-card checkpoint.

Files in ``out_dir``: ``checkpoint.pt`` (best on validation: mean of helix and sheet F1),
``last.pt`` (everything needed to resume: weights, optimiser, schedule, step, random states,
log), ``metrics.jsonl`` (one line per validation), ``training_curve.png``, ``model_card.json``.
A run killed at any moment (even ``kill -9``) and started again with the same arguments resumes
from ``last.pt`` and ends with exactly the weights an uninterrupted run would have.
"""
from __future__ import annotations

import hashlib
import json
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
from ..io import pyplot, write_json, write_png, write_text
from .checkpoint import check_compatible, load_checkpoint, save_checkpoint
from .data import NORMALISATIONS, Sample, load_sample
from .infer import sliding_window_probs
from .losses import LOSSES, make_loss
from .metrics import CLASS3, confusion, prf_from_confusion
from .network import PRESETS, build_network

__all__ = ["TrainConfig", "train", "train_step", "load_datalist", "evaluate_samples"]


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "resunet"
    loss: str = "focal_dice"
    voxel_size_a: float = 2.0          # working grid of the network
    patch: int = 32                    # voxels per side on the working grid
    batch: int = 4
    steps: int = 3000
    optimizer: str = "adamw"           # adamw (one-cycle schedule) or sgd (poly schedule)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    val_every: int = 500
    checkpoint_every: int = 250        # steps between resumable checkpoints (last.pt)
    patience: int = 0                  # validations without better sheet F1 before stopping (0: never)
    max_minutes: float = 0.0           # 0: no time limit
    focal_gamma: float = 2.0
    focal_alpha: tuple[float, ...] | None = None
    loss_weights: tuple[float, float] = (1.0, 1.0)
    oversample: dict = field(default_factory=lambda: {"helix": 0.33, "sheet": 0.33})
    augment: bool = True
    device: str = "auto"               # auto, cpu or cuda; AMP = bf16 autocast on CUDA (no scaler needed)
    amp: bool = True
    norm: str = "zscore"               # input normalisation: zscore (whole box) or local
    realism: bool = False              # degrade patches like native maps (cryosse.realism)
    realism_ramp: tuple[float, float] = (0.2, 0.5)  # fractions of the steps: start, full strength
    realism_clean: float = 0.2         # share of patches left clean at full strength
    realism_params: dict = field(default_factory=dict)  # RealismConfig fields to change


def load_datalist(path: str | os.PathLike) -> dict:
    p = Path(path)
    try:
        dl = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(p, f"not a readable datalist ({' '.join(str(exc).split())})") from None
    base = p.resolve().parent
    for key in ("training", "validation", "test"):
        for item in dl.get(key, []):
            item["image"] = str(base / item["image"])
            item["label"] = str(base / item["label"])
    if not dl.get("training"):
        raise InputError(p, "datalist has no training samples")
    return dl


def _data_hash(datalist_path: str | os.PathLike) -> str:
    """sha256 of the datalist and, when beside it, the manifest (first 16 hex digits)."""
    h = hashlib.sha256(Path(datalist_path).read_bytes())
    manifest = Path(datalist_path).with_name("manifest.tsv")
    if manifest.is_file():
        h.update(manifest.read_bytes())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- sampling

def _degrade_whole(s: Sample, cfg: TrainConfig, g: np.random.Generator, strength: float = 1.0,
                   sid: str | None = None) -> Sample:
    """``s`` degraded as a whole by one realism draw and normalised as prediction normalises a
    whole map."""
    from ..realism import degrade
    from .data import normalise

    x, _ = degrade(s.raw, s.y > 0, cfg.voxel_size_a, g, realism_config(cfg).scaled(strength))
    x, pad = normalise(x, cfg.voxel_size_a, cfg.norm)
    return Sample(sid or s.id, x, s.y, pad, s.labels4, s.data_voxel_size_a)


def _degraded_copies(samples: list[Sample], cfg: TrainConfig) -> list[Sample]:
    """Each sample degraded once at full realism strength (seeded by its id)."""
    return [_degrade_whole(s, cfg, np.random.default_rng(
        int(hashlib.sha256(f"{cfg.seed}:{s.id}".encode()).hexdigest()[:8], 16)), sid=s.id + "~real")
        for s in samples]


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


def _augment(x: np.ndarray, y: np.ndarray, rng: random.Random,
             rotate_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Rotation on the grid; resolution (blur), contrast, offset and noise changes (unless
    ``rotate_only``: realism already changed those)."""
    from scipy.ndimage import gaussian_filter

    perm, flips = _proper_rotation(rng)
    x, y = x.transpose(perm), y.transpose(perm)
    axes = tuple(a for a, f in enumerate(flips) if f)
    if axes:
        x, y = np.flip(x, axes), np.flip(y, axes)
    x = np.ascontiguousarray(x, np.float32)
    if rotate_only:
        return x, np.ascontiguousarray(y)
    if rng.random() < 0.3:  # a lower resolution: blur by up to 1 working voxel
        x = gaussian_filter(x, rng.uniform(0.3, 1.0))
        x = (x - x.mean()) / (x.std() + 1e-6)
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


#: Patches drawn from one degraded copy of a sample before it is degraded afresh.
REALISM_REUSE = 4


def realism_strength(step: int, cfg: TrainConfig) -> float:
    a, b = cfg.realism_ramp
    f = step / max(cfg.steps, 1)
    return float(min(max((f - a) / max(b - a, 1e-9), 0.0), 1.0)) if b > a else float(f >= a)


def degraded_sample(s: Sample, cfg: TrainConfig, strength: float, rng: random.Random) -> Sample:
    """``s`` after a fresh realism draw at ``strength``; or ``s`` itself for the clean share of
    draws."""
    if strength <= 0 or rng.random() < cfg.realism_clean:
        return s
    return _degrade_whole(s, cfg, np.random.default_rng(rng.getrandbits(64)), strength)


def realism_config(cfg: TrainConfig):
    from ..realism import RealismConfig

    return RealismConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.realism_params.items()})


class PatchSampler:
    """Patches with class-aware oversampling: a patch is centred on a random helix voxel with
    probability ``oversample['helix']``, on a sheet voxel with ``oversample['sheet']`` (sheet
    voxels are rare), else anywhere in a random sample."""

    def __init__(self, samples: list[Sample], cfg: TrainConfig, rng: random.Random):
        self.samples, self.cfg, self.rng = samples, cfg, rng
        self.where = {c: [np.argwhere(s.y == c) for s in samples] for c in (1, 2)}
        self.has = {c: [i for i, w in enumerate(self.where[c]) if len(w)] for c in (1, 2)}
        self.cache: dict[int, list] = {}  # realism: sample index -> [degraded sample, uses left]

    def centre(self) -> tuple[int, np.ndarray]:
        r = self.rng.random()
        p_h, p_s = self.cfg.oversample.get("helix", 0), self.cfg.oversample.get("sheet", 0)
        cls = 2 if r < p_s else 1 if r < p_s + p_h else 0
        if cls and self.has[cls]:
            i = self.rng.choice(self.has[cls])
            w = self.where[cls][i]
            return i, w[self.rng.randrange(len(w))]
        i = self.rng.randrange(len(self.samples))
        return i, np.array([self.rng.randrange(n) for n in self.samples[i].x.shape])

    def _source(self, i: int, strength: float) -> Sample:
        if not self.cfg.realism:
            return self.samples[i]
        hit = self.cache.get(i)
        if hit is None or hit[1] <= 0:
            hit = self.cache[i] = [degraded_sample(self.samples[i], self.cfg, strength, self.rng), REALISM_REUSE]
        hit[1] -= 1
        return hit[0]

    def batch(self, step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        strength = realism_strength(step, self.cfg) if self.cfg.realism else 0.0
        for _ in range(self.cfg.batch):
            i, c = self.centre()
            x, y = _patch(self._source(i, strength), c, self.cfg.patch)
            if self.cfg.augment:
                x, y = _augment(x, y, self.rng, rotate_only=self.cfg.realism)
            xs.append(x)
            ys.append(y)
        return (torch.from_numpy(np.stack(xs)[:, None]),
                torch.from_numpy(np.stack(ys).astype(np.int64)))


# ----------------------------------------------------------------------------- loop

def evaluate_samples(net, samples: list[Sample], tile: int, divisor: int, device="cpu",
                     amp: bool = False) -> dict:
    """Pooled voxel precision/recall/F1 (three classes) over whole samples."""
    cm = np.zeros((3, 3), np.int64)
    for s in samples:
        probs = sliding_window_probs(net, s.x, tile=tile, overlap=0.25, divisor=divisor,
                                     pad_value=s.pad_value, device=device, amp=amp)
        cm += confusion(probs.argmax(0).astype(np.uint8), s.y)
    return prf_from_confusion(cm)


def train_step(net, opt, loss_fn, x: torch.Tensor, y: torch.Tensor, autocast) -> torch.Tensor:
    """One optimisation step: forward under ``autocast``, loss in float32, backward, update.
    Returns the loss (the schedule, if any, is stepped by the caller)."""
    with autocast:
        logits = net(x)
    loss = loss_fn(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def _progress(step: int, total: int, t0: float, loss: float, start: int) -> None:
    """A progress bar on a terminal; a line every 5% of the steps in a log file."""
    tty = sys.stderr.isatty()
    if not tty and step % max(1, total // 20) and step != total:
        return
    el = time.time() - t0
    eta = el / max(step - start, 1) * (total - step)
    bar = "#" * int(30 * step / total)
    lead = "\r" if tty else ""
    print(f"{lead}[{bar:<30}] step {step}/{total} loss {loss:.4f} "
          f"{el:5.0f}s elapsed, ~{eta:4.0f}s left", end="" if tty and step < total else "\n",
          file=sys.stderr, flush=True)


def _make_optimizer(net, cfg: TrainConfig):
    if cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps,
                                                    pct_start=0.1)
    elif cfg.optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=0.99, nesterov=True,
                              weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=cfg.steps, power=0.9)
    else:
        raise InputError("train.optimizer", f"unknown optimizer {cfg.optimizer!r} (adamw, sgd)")
    return opt, sched


def _rng_state(rng: random.Random) -> dict:
    version, state, gauss = rng.getstate()
    return {"python": [version, list(state), gauss], "torch": torch.get_rng_state()}


def _set_rng_state(rng: random.Random, st: dict) -> None:
    version, state, gauss = st["python"]
    rng.setstate((version, tuple(state), gauss))
    torch.set_rng_state(st["torch"])


def train(datalist_path: str | os.PathLike, out_dir: str | os.PathLike,
          cfg: TrainConfig = TrainConfig(), *, init: str | os.PathLike | None = None,
          resume: bool = True) -> dict:
    """Train a U-Net on a datalist (see module doc for the files written).

    ``init``: start from another checkpoint's weights (fine-tuning); it must have the same
    classes and data voxel size. ``resume``: continue from ``out_dir/last.pt`` if present.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.preset not in PRESETS:
        raise InputError("train.preset", f"unknown preset {cfg.preset!r} ({', '.join(PRESETS)})")
    if cfg.loss not in LOSSES:
        raise InputError("train.loss", f"unknown loss {cfg.loss!r} ({', '.join(LOSSES)})")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    use_amp = cfg.amp and device == "cuda"
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    dl = load_datalist(datalist_path)
    if cfg.norm not in NORMALISATIONS:
        raise InputError("train.norm", f"unknown normalisation {cfg.norm!r} ({', '.join(NORMALISATIONS)})")
    load = lambda items: [load_sample(it["id"], it["image"], it["label"], cfg.voxel_size_a,  # noqa: E731
                                      cfg.norm, keep_raw=cfg.realism) for it in items]
    train_s, val_s = load(dl["training"]), load(dl.get("validation", []))
    # validation on degraded copies too (one fixed draw per sample at full strength)
    val_real = _degraded_copies(val_s, cfg) if cfg.realism else []
    data_voxel = train_s[0].data_voxel_size_a
    arch = dict(PRESETS[cfg.preset], n_classes=3, preset=cfg.preset)
    net = build_network(arch)
    divisor = net.divisor
    if cfg.patch % divisor:
        raise InputError("train.patch", f"patch {cfg.patch} is not a multiple of {divisor}")
    if cfg.batch * (cfg.patch // divisor) ** 3 < 2 and arch.get("norm", "batch") == "batch":
        raise InputError("train.patch", f"batch {cfg.batch} of {cfg.patch}^3 patches leaves one voxel "
                                        f"per channel at the bottom of {cfg.preset}: use a larger patch or batch")
    alpha = list(cfg.focal_alpha) if cfg.focal_alpha else None
    loss_fn = make_loss(cfg.loss, gamma=cfg.focal_gamma, alpha=alpha, weights=tuple(cfg.loss_weights))
    card = {
        "cryosse_version": __version__, "data_contract": DATA_CONTRACT_VERSION,
        "arch": arch, "classes": list(CLASS3), "label_codes": {"other": [0, 3], "helix": [1], "sheet": [2]},
        "voxel_size_a": cfg.voxel_size_a, "data_voxel_size_a": data_voxel,
        "normalisation": "resample to voxel_size_a (trilinear), then " + (
            "z-score over the whole box" if cfg.norm == "zscore" else
            "local normalisation (cryosse.realism.local_normalise)"),
        "norm": cfg.norm,
        "tile": max(cfg.patch * 2, 64), "loss": cfg.loss, "train_config": asdict(cfg),
        "data_sha256": _data_hash(datalist_path),
        "n_train": len(train_s), "n_val": len(val_s), "torch": str(torch.__version__),
        "device": device, "amp": use_amp,
    }
    if init:
        init_net, init_card, _ = load_checkpoint(init)
        check_compatible(init_card, classes=list(CLASS3), voxel_size_a=data_voxel, path=str(init))
        if init_card["arch"] != arch:
            raise InputError(init, f"architecture {init_card['arch'].get('preset')} differs from {cfg.preset}")
        net.load_state_dict(init_net.state_dict())
        card["init_checkpoint"] = {"path": str(init), "data_sha256": init_card.get("data_sha256"),
                                   "loss": init_card.get("loss"), "step": init_card.get("step")}
    net = net.to(device)
    opt, sched = _make_optimizer(net, cfg)
    sampler = PatchSampler(train_s, cfg, rng)
    metrics_path = out / "metrics.jsonl"
    state = {"step": 0, "log": [], "best_score": -1.0, "best": None, "best_sheet": -1.0,
             "since_better": 0, "running": [], "elapsed": 0.0}
    last = out / "last.pt"
    if resume and last.is_file():
        try:
            blob = torch.load(last, map_location=device, weights_only=True)
        except Exception as exc:
            raise InputError(last, f"cannot be read to resume ({' '.join(str(exc).split())[:160]}); "
                                   "delete it to start afresh") from None
        check_compatible(blob["card"], classes=list(CLASS3), voxel_size_a=data_voxel, path=str(last))
        if blob["card"]["train_config"] != card["train_config"] or blob["card"]["data_sha256"] != card["data_sha256"]:
            print(f"{last}: written by a run with other settings or data; starting afresh", file=sys.stderr)
            blob = None
    else:
        blob = None
    if blob is not None:
        net.load_state_dict(blob["state_dict"])
        opt.load_state_dict(blob["optimizer"])
        sched.load_state_dict(blob["scheduler"])
        _set_rng_state(rng, blob["rng"])
        state = blob["state"]
        print(f"resuming from {last} at step {state['step']}", file=sys.stderr)

    def save_last() -> None:
        sampler.cache.clear()  # degraded copies are not saved: a resumed run starts without them too
        save_checkpoint(last, net, card, optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                        rng=_rng_state(rng),
                        state=dict(state, elapsed=state["elapsed"] + time.time() - t_mark))

    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp)
    t0 = time.time() - state["elapsed"]
    t_mark = time.time()
    start = state["step"]
    stop_reason = ""
    while state["step"] < cfg.steps:
        step = state["step"] + 1
        net.train()
        x, y = sampler.batch(step)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = train_step(net, opt, loss_fn, x, y, autocast)
        sched.step()
        state["step"] = step
        state["running"] = (state["running"] + [float(loss.detach())])[-cfg.val_every:]
        _progress(step, cfg.steps, t0, float(np.mean(state["running"][-20:])), start)
        over_time = cfg.max_minutes > 0 and time.time() - t0 > 60 * cfg.max_minutes
        if step % cfg.val_every == 0 or step == cfg.steps or over_time:
            rec = {"step": step, "time_s": round(time.time() - t0, 1),
                   "train_loss": float(np.mean(state["running"])), "lr": float(sched.get_last_lr()[0])}
            if val_s:
                scores = evaluate_samples(net, val_s, card["tile"], divisor, device, use_amp)
                rec.update({f"val_{c}_{k}": scores[c][k] for c in CLASS3 for k in ("precision", "recall", "f1")})
                parts = [scores["helix"]["f1"], scores["sheet"]["f1"]]
                sheet = scores["sheet"]["f1"]
                if val_real:
                    sr = evaluate_samples(net, val_real, card["tile"], divisor, device, use_amp)
                    rec.update({f"valreal_{c}_f1": sr[c]["f1"] for c in CLASS3})
                    parts += [sr["helix"]["f1"], sr["sheet"]["f1"]]
                    sheet = float(np.nanmean([sheet, sr["sheet"]["f1"]]))
                score = float(np.nanmean(parts))
            else:
                score = sheet = -rec["train_loss"]
            state["log"].append(rec)
            write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in state["log"]))
            if score > state["best_score"]:
                state["best_score"], state["best"] = score, rec
                save_checkpoint(out / "checkpoint.pt", net, dict(card, metrics=rec, step=step))
            if sheet > state["best_sheet"]:
                state["best_sheet"], state["since_better"] = sheet, 0
            else:
                state["since_better"] += 1
            print(f"  step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in rec.items()
                                                 if isinstance(v, float) and ("f1" in k or "loss" in k)),
                  file=sys.stderr)
            if cfg.patience and state["since_better"] >= cfg.patience:
                stop_reason = f"early stop: no better validation sheet F1 in {cfg.patience} validations"
            if over_time:
                stop_reason = f"time budget of {cfg.max_minutes} min reached"
        if step % cfg.checkpoint_every == 0 or stop_reason:
            save_last()
        if stop_reason:
            print(f"stopping at step {step}: {stop_reason}", file=sys.stderr)
            break
    save_last()
    best = state["best"]
    card = dict(card, metrics=best, step=best["step"] if best else state["step"],
                steps_run=state["step"], stop_reason=stop_reason or "all steps done",
                train_time_s=round(time.time() - t0, 1))
    # the best checkpoint gets the final card (train time), weights untouched
    best_net, _, _ = load_checkpoint(out / "checkpoint.pt")
    save_checkpoint(out / "checkpoint.pt", best_net, card)
    write_json(out / "model_card.json", card)
    plot_curve(metrics_path, out / "training_curve.png")
    return card


def plot_curve(metrics_path: str | os.PathLike, png: str | os.PathLike) -> None:
    """Training loss and validation F1 per class against step."""
    plt = pyplot()
    recs = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in recs]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    a1.plot(steps, [r["train_loss"] for r in recs], "k.-")
    a1.set(xlabel="step", ylabel="training loss", title="loss")
    for c, col in (("helix", "tab:red"), ("sheet", "tab:blue"), ("other", "tab:gray")):
        if f"val_{c}_f1" in recs[0]:
            a2.plot(steps, [r[f"val_{c}_f1"] for r in recs], ".-", color=col, label=c)
        if f"valreal_{c}_f1" in recs[0] and c != "other":
            a2.plot(steps, [r[f"valreal_{c}_f1"] for r in recs], ".--", color=col, label=f"{c}, degraded")
    a2.set(xlabel="step", ylabel="voxel F1", title="validation", ylim=(0, 1))
    a2.legend()
    fig.tight_layout()
    write_png(fig, png)
