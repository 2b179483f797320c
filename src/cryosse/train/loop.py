"""The training loop: class-aware patch sampling, grid-respecting augmentation, validation on
whole held-out components, early stopping, exact resume, metrics log, training curve and a
model-card checkpoint.

Files in ``out_dir``: ``checkpoint.pt`` (best on validation: mean of helix and sheet F1),
``last.pt`` (everything needed to resume: weights, optimiser, schedule, step, random states,
log), ``metrics.jsonl`` (one line per validation), ``train_loss.tsv`` (the training loss of every
step), ``training_curve.png``, ``model_card.json``.
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
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .. import DATA_CONTRACT_VERSION, __version__
from ..errors import InputError
from ..io import write_json, write_text
from ..metrics import CLASS3, confusion, prf_from_confusion
from ..net.device import resolve_device
from ..net.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from ..net.inputs import NORMALISATIONS
from ..net.network import PRESETS, build_network
from ..net.window import sliding_window_probs
from ..prep.dataset import load_datalist
from ..prep.labels import DEFAULT_RADIUS_A
from .config import TrainConfig
from .curve import plot_curve, write_step_losses
from .data import Sample, load_sample
from .losses import LOSSES, make_loss
from .sampler import PatchSampler, _degraded_copies

__all__ = ["TrainConfig", "train", "train_step", "validate", "load_datalist", "evaluate_samples"]


def _data_hash(datalist_path: str | os.PathLike) -> str:
    """sha256 of the datalist and, when beside it, the manifest (first 16 hex digits)."""
    h = hashlib.sha256(Path(datalist_path).read_bytes())
    manifest = Path(datalist_path).with_name("manifest.tsv")
    if manifest.is_file():
        h.update(manifest.read_bytes())
    return h.hexdigest()[:16]


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


def _check(cfg: TrainConfig) -> None:
    if cfg.preset not in PRESETS:
        raise InputError("train.preset", f"unknown preset {cfg.preset!r} ({', '.join(PRESETS)})")
    if cfg.loss not in LOSSES:
        raise InputError("train.loss", f"unknown loss {cfg.loss!r} ({', '.join(LOSSES)})")


def _model_card(cfg: TrainConfig, arch: dict, datalist_path, n_train: int, n_val: int, data_voxel: float,
                device: str, use_amp: bool) -> dict:
    return {
        "cryosse_version": __version__, "data_contract": DATA_CONTRACT_VERSION,
        "arch": arch, "classes": list(CLASS3), "label_codes": {"other": [0, 3], "helix": [1], "sheet": [2]},
        "voxel_size_a": cfg.voxel_size_a, "data_voxel_size_a": data_voxel,
        "normalisation": "resample to voxel_size_a (trilinear), then " + (
            "z-score over the whole box" if cfg.norm == "zscore" else
            "local normalisation (cryosse.prep.realism.local_normalise)" if cfg.norm == "local" else
            "local normalisation over the map's support (cryosse.prep.realism.support_normalise)"),
        "norm": cfg.norm,
        "tile": max(cfg.patch * 2, 64), "loss": cfg.loss, "train_config": asdict(cfg),
        "data_sha256": _data_hash(datalist_path),
        "n_train": n_train, "n_val": n_val, "torch": str(torch.__version__),
        "device": device, "amp": use_amp,
    }


def _network(cfg: TrainConfig) -> tuple[torch.nn.Module, dict]:
    arch = dict(PRESETS[cfg.preset], n_classes=3, preset=cfg.preset)
    net = build_network(arch)
    divisor = net.divisor
    if cfg.patch % divisor:
        raise InputError("train.patch", f"patch {cfg.patch} is not a multiple of {divisor}")
    if cfg.batch * (cfg.patch // divisor) ** 3 < 2 and arch.get("norm", "batch") == "batch":
        raise InputError("train.patch", f"batch {cfg.batch} of {cfg.patch}^3 patches leaves one voxel "
                                        f"per channel at the bottom of {cfg.preset}: use a larger patch or batch")
    return net, arch


def _init_from(net, card: dict, init, arch: dict, data_voxel: float, cfg: TrainConfig,
               member: int | None = None) -> None:
    """Start from another checkpoint's weights (same classes, data voxel size, architecture);
    from an ensemble's ``member`` (its index) when ``init`` is an ensemble."""
    init_net, init_card, _ = load_checkpoint(init)
    check_compatible(init_card, classes=list(CLASS3), voxel_size_a=data_voxel, path=str(init))
    init_arch, step = init_card["arch"], init_card.get("step")
    if init_arch.get("type") == "ensemble":
        n = len(init_arch["members"])
        if member is None:
            raise InputError(init, f"is an ensemble of {n} networks: name the one to start from (--init-member)")
        if not 0 <= member < n:
            raise InputError("--init-member", f"{member} is not a member of {init} (0 to {n - 1})")
        init_net, init_arch = init_net.members[member], init_arch["members"][member]
        step = init_card["members"][member].get("step")
    elif member is not None:
        raise InputError("--init-member", f"{init} is a single network, not an ensemble")
    if init_arch != arch:
        raise InputError(init, f"architecture {init_arch.get('preset')} differs from {cfg.preset}")
    net.load_state_dict(init_net.state_dict())
    card["init_checkpoint"] = {"path": str(init), "data_sha256": init_card.get("data_sha256"),
                               "loss": init_card.get("loss"), "step": step,
                               **({"member": member} if member is not None else {})}


def _resumable(last: Path, device: str, card: dict, data_voxel: float) -> dict | None:
    """The state saved in ``last.pt`` when it was written by a run with these settings and data."""
    try:
        blob = torch.load(last, map_location=device, weights_only=True)
    except Exception as exc:
        from ..net.checkpoint import load_problem

        raise InputError(last, f"cannot be read to resume ({load_problem(exc)}); delete it to start afresh") from None
    check_compatible(blob["card"], classes=list(CLASS3), voxel_size_a=data_voxel, path=str(last))
    if blob["card"]["train_config"] != card["train_config"] or blob["card"]["data_sha256"] != card["data_sha256"]:
        print(f"{last}: written by a run with other settings or data; starting afresh", file=sys.stderr)
        return None
    return blob


def _validate(net, val_s: list[Sample], val_real: list[Sample], card: dict, divisor: int, device: str,
              use_amp: bool, rec: dict) -> tuple[float, float]:
    """Validation scores into ``rec``; returns (score to keep the best by, sheet F1 for patience)."""
    if not val_s:
        return -rec["train_loss"], -rec["train_loss"]
    scores = evaluate_samples(net, val_s, card["tile"], divisor, device, use_amp)
    rec.update({f"val_{c}_{k}": scores[c][k] for c in CLASS3 for k in ("precision", "recall", "f1")})
    parts = [scores["helix"]["f1"], scores["sheet"]["f1"]]
    sheet = scores["sheet"]["f1"]
    if val_real:
        sr = evaluate_samples(net, val_real, card["tile"], divisor, device, use_amp)
        rec.update({f"valreal_{c}_f1": sr[c]["f1"] for c in CLASS3})
        parts += [sr["helix"]["f1"], sr["sheet"]["f1"]]
        sheet = float(np.nanmean([sheet, sr["sheet"]["f1"]]))
    return float(np.nanmean(parts)), sheet


def _load_samples(dl: dict, key: str, cfg: TrainConfig) -> list[Sample]:
    """A datalist's ``key`` items as samples on the run's grid and normalisation (raw kept for
    realism), with the label radius the datalist records (else the default)."""
    r = dl.get("label_radius_a", DEFAULT_RADIUS_A)
    return [load_sample(it["id"], it["image"], it["label"], cfg.voxel_size_a, cfg.norm, keep_raw=cfg.realism,
                        label_radius_a=r) for it in dl.get(key, [])]


def validate(net, card: dict, datalist_path: str | os.PathLike, device: str = "cpu") -> dict:
    """Validation metrics of a trained network, as training records them (``val_*`` on the
    datalist's validation samples, ``valreal_*`` on their degraded copies when the card's run
    used realism), with the card's training settings: for networks made without a training
    run of their own (``cryosse soup``)."""
    from dataclasses import fields

    known = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in (card.get("train_config") or {}).items() if k in known})
    val_s = _load_samples(load_datalist(datalist_path), "validation", cfg)
    if not val_s:
        raise InputError(datalist_path, "has no validation samples")
    check_compatible(card, classes=list(CLASS3), voxel_size_a=val_s[0].data_voxel_size_a, path=str(datalist_path))
    val_real = _degraded_copies(val_s, cfg) if cfg.realism else []
    rec: dict = {"train_loss": float("nan")}
    _validate(net.to(device).eval(), val_s, val_real, card, net.divisor, device, False, rec)
    return rec


def train(datalist_path: str | os.PathLike, out_dir: str | os.PathLike,
          cfg: TrainConfig = TrainConfig(), *, init: str | os.PathLike | None = None,
          init_member: int | None = None, resume: bool = True) -> dict:
    """Train a U-Net on a datalist (see module doc for the files written).

    ``init``: start from another checkpoint's weights (fine-tuning); it must have the same
    classes and data voxel size; ``init_member`` picks one network of an ensemble. ``resume``:
    continue from ``out_dir/last.pt`` if present.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check(cfg)
    device = resolve_device(cfg.device)
    use_amp = cfg.amp and device == "cuda"
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    dl = load_datalist(datalist_path)
    if cfg.norm not in NORMALISATIONS:
        raise InputError("train.norm", f"unknown normalisation {cfg.norm!r} ({', '.join(NORMALISATIONS)})")
    train_s, val_s = _load_samples(dl, "training", cfg), _load_samples(dl, "validation", cfg)
    # validation on degraded copies too (one fixed draw per sample at full strength)
    val_real = _degraded_copies(val_s, cfg) if cfg.realism else []
    data_voxel = train_s[0].data_voxel_size_a
    net, arch = _network(cfg)
    divisor = net.divisor
    alpha = list(cfg.focal_alpha) if cfg.focal_alpha else None
    loss_fn = make_loss(cfg.loss, gamma=cfg.focal_gamma, alpha=alpha, weights=tuple(cfg.loss_weights))
    card = _model_card(cfg, arch, datalist_path, len(train_s), len(val_s), data_voxel, device, use_amp)
    if init:
        _init_from(net, card, init, arch, data_voxel, cfg, init_member)
    net = net.to(device)
    opt, sched = _make_optimizer(net, cfg)
    sampler = PatchSampler(train_s, cfg, rng)
    metrics_path = out / "metrics.jsonl"
    state = {"step": 0, "log": [], "best_score": -1.0, "best": None, "best_sheet": -1.0,
             "since_better": 0, "running": [], "elapsed": 0.0}
    last = out / "last.pt"
    blob = _resumable(last, device, card, data_voxel) if resume and last.is_file() else None
    if blob is not None and blob["state"].get("best") is not None and not (out / "checkpoint.pt").is_file():
        # its best weights are gone (a workflow rerun deletes a job's outputs, not last.pt)
        print(f"{last}: the run's best checkpoint is gone; starting afresh", file=sys.stderr)
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
        state.setdefault("losses", []).append([step, state["running"][-1]])  # every step: the curve
        _progress(step, cfg.steps, t0, float(np.mean(state["running"][-20:])), start)
        over_time = cfg.max_minutes > 0 and time.time() - t0 > 60 * cfg.max_minutes
        if step % cfg.val_every == 0 or step == cfg.steps or over_time:
            rec = {"step": step, "time_s": round(time.time() - t0, 1),
                   "train_loss": float(np.mean(state["running"])), "lr": float(sched.get_last_lr()[0])}
            score, sheet = _validate(net, val_s, val_real, card, divisor, device, use_amp, rec)
            state["log"].append(rec)
            write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in state["log"]))
            write_step_losses(out / "train_loss.tsv", state["losses"])
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
    return _finish(out, card, state, stop_reason, t0, metrics_path)


def _finish(out: Path, card: dict, state: dict, stop_reason: str, t0: float, metrics_path: Path) -> dict:
    """The best checkpoint gets the final card (train time), weights untouched; the model card
    and the training curve are written."""
    best = state["best"]
    card = dict(card, metrics=best, step=best["step"] if best else state["step"],
                steps_run=state["step"], stop_reason=stop_reason or "all steps done",
                train_time_s=round(time.time() - t0, 1))
    best_net, _, _ = load_checkpoint(out / "checkpoint.pt")
    save_checkpoint(out / "checkpoint.pt", best_net, card)
    write_json(out / "model_card.json", card)
    write_step_losses(out / "train_loss.tsv", state.get("losses", []))
    plot_curve(metrics_path, out / "training_curve.png", out / "train_loss.tsv")
    return card
