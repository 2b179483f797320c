"""Checkpoints as model cards: weights plus everything needed to use them correctly.

A checkpoint is a ``torch.save`` of a dict holding only tensors and plain Python values, so
it loads with ``torch.load(weights_only=True)``: ``state_dict``, ``card`` (architecture,
classes, working voxel size, normalisation, training data hash, loss, metrics, versions) and,
for resumable checkpoints, ``optimizer``/``step``.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import InputError
from ..io import atomic_path
from .network import UNet3D, build_network

__all__ = ["save_checkpoint", "load_checkpoint", "check_compatible", "export_checkpoint", "ensemble_checkpoints",
           "soup_checkpoints"]

CARD_FORMAT = 1


def save_checkpoint(path: str | os.PathLike, net: torch.nn.Module, card: dict, **extra) -> None:
    """Write atomically (temp file, then rename)."""
    blob = {"format": CARD_FORMAT, "card": card,
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}, **extra}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> tuple[UNet3D, dict, dict]:
    """(network in eval mode, card, the whole blob), loaded with ``weights_only=True``."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such checkpoint")
    try:
        blob = torch.load(p, map_location=device, weights_only=True)
    except Exception as exc:
        raise InputError(p, f"not a loadable cryosse checkpoint ({load_problem(exc)})") from None
    if not isinstance(blob, dict) or "card" not in blob or "state_dict" not in blob:
        raise InputError(p, "not a cryosse checkpoint (no model card)")
    card = blob["card"]
    try:
        net = build_network(card["arch"])
        net.load_state_dict(blob["state_dict"])
    except Exception as exc:
        raise InputError(p, f"weights do not match the model card ({' '.join(str(exc).split())[:200]})") from None
    return net.to(device).eval(), card, blob


def load_problem(exc: BaseException) -> str:
    """Why torch.load failed, in one short line, without torch's advice to load with
    ``weights_only=False`` (that would run code from the file: never)."""
    text = " ".join(str(exc).split())
    if "weights_only" in text or "Unsupported global" in text or "UnpicklingError" in type(exc).__name__:
        first = text.split(". ")[0].split("Weights only load failed")[-1].strip(" .:")
        hint = f": {first[:120]}" if first and "weights_only" not in first else ""
        return "not a torch file of tensors and plain data" + hint
    if "zip archive" in text or "central directory" in text:
        return "not a torch zip archive: truncated, or not a checkpoint"
    if isinstance(exc, (KeyError, EOFError, ValueError)) or len(text) < 12:
        return f"not a torch checkpoint file ({type(exc).__name__}: {text[:80]})"
    return text[:200]


def check_compatible(card: dict, *, classes: list[str] | None = None,
                     voxel_size_a: float | None = None, path: str = "checkpoint") -> None:
    """Refuse a checkpoint whose classes or data voxel size do not match the data."""
    if classes is not None and list(card["classes"]) != list(classes):
        raise InputError(path, f"checkpoint classes {card['classes']} do not match the data's {classes}")
    if voxel_size_a is not None and abs(card["data_voxel_size_a"] - voxel_size_a) > 1e-3:
        raise InputError(path, f"checkpoint was trained on {card['data_voxel_size_a']} Å data, "
                               f"the data has {voxel_size_a} Å voxels")


def export_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, *, half: bool | None = True,
                      card_update: dict | None = None) -> dict:
    """A slim copy of a checkpoint for distribution: weights only (no optimiser or resume
    state), float16 when ``half`` (half the size; loading casts them back to the network's
    float32), the source's own precision when ``half`` is None, and the card updated with
    ``card_update``. Returns the new card."""
    _, card, blob = load_checkpoint(src)
    if half is None:
        half = _all_half(blob["state_dict"])
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in blob["state_dict"].items()}
    card = dict(card, **(card_update or {}), weights_dtype="float16" if half else "float32")
    with atomic_path(dst) as tmp:
        torch.save({"format": CARD_FORMAT, "card": card, "state_dict": state}, tmp)
    return card


def _all_half(state: dict) -> bool:
    """Whether every floating-point tensor of a state dict is float16."""
    return all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())


#: Card fields that must agree between the members of an ensemble.
_ENSEMBLE_AGREE = ("classes", "voxel_size_a", "data_voxel_size_a", "norm", "data_contract")


def ensemble_checkpoints(srcs: list[str | os.PathLike], dst: str | os.PathLike, *,
                         half: bool = True, card_update: dict | None = None) -> dict:
    """One checkpoint holding several trained networks (:class:`~.network.Ensemble`: their mean
    softmax probability). The members must agree on classes, grids and normalisation. The
    card is the first member's with the ensemble's architecture and a ``members`` list (each
    member's loss, seed, step, training config and validation metrics). Returns the card."""
    if len(srcs) < 2:
        raise InputError(str(dst), "an ensemble needs at least two checkpoints")
    cards, state, archs = [], {}, []
    for i, src in enumerate(srcs):
        _, card, blob = load_checkpoint(src)
        if card["arch"].get("type") == "ensemble":
            raise InputError(src, "is already an ensemble; give its members instead")
        for k in _ENSEMBLE_AGREE:
            if cards and card.get(k) != cards[0].get(k):
                raise InputError(src, f"{k} {card.get(k)!r} differs from {cards[0].get(k)!r} in {srcs[0]}")
        cards.append(card)
        archs.append(card["arch"])
        for k, v in blob["state_dict"].items():
            state[f"members.{i}.{k}"] = v.half() if half and v.is_floating_point() else v
    first = cards[0]
    members = [{"checkpoint": Path(s).name, "loss": c.get("loss"), "step": c.get("step"),
                "seed": (c.get("train_config") or {}).get("seed"), "train_config": c.get("train_config"),
                "metrics": c.get("metrics"), "device": c.get("device"), "gpu_run": c.get("gpu_run"),
                "train_time_s": c.get("train_time_s"), "data_sha256": c.get("data_sha256"),
                **{k: c[k] for k in ("init_checkpoint", "soup") if c.get(k)}}
               for s, c in zip(srcs, cards)]
    arch = {"type": "ensemble", "n_classes": first["arch"]["n_classes"], "members": archs,
            "preset": "ensemble of " + ", ".join(sorted({a.get("preset", "?") for a in archs}))}
    # the first member's training config stands for all (members differ in seed, listed in members)
    card = {k: v for k, v in first.items()
            if k not in ("metrics", "step", "gpu_run", "steps_run", "stop_reason", "train_time_s")}
    card.update(arch=arch, members=members, loss=first.get("loss") if len({c.get("loss") for c in cards}) == 1
                else "mixed", tile=max(c.get("tile", 64) for c in cards), **(card_update or {}),
                weights_dtype="float16" if _all_half(state) else "float32")
    build_network(arch).load_state_dict(state)  # the members' weights fit the ensemble
    with atomic_path(dst) as tmp:
        torch.save({"format": CARD_FORMAT, "card": card, "state_dict": state}, tmp)
    return card


def soup_checkpoints(srcs: list[str | os.PathLike], dst: str | os.PathLike, *,
                     validate_on: str | os.PathLike | None = None) -> dict:
    """One network whose weights (and BatchNorm statistics) are the mean of several fine-tunes
    of one start: a uniform "model soup" (Wortsman et al. 2022). Averaging weights is only
    meaningful for runs that began from the same weights, so every source must record the same
    ``init_checkpoint`` (path, member and step), the same architecture and the same data; the
    card is the first source's with a ``soup`` list (each source's seed, steps, validation
    metrics). With ``validate_on`` (the sources' datalist) the soup's own validation metrics
    are the card's ``metrics``, else ``None``. Returns the card."""
    if len(srcs) < 2:
        raise InputError(str(dst), "a soup needs at least two checkpoints")
    cards, states = [], []
    for src in srcs:
        _, card, blob = load_checkpoint(src)
        if card["arch"].get("type") == "ensemble":
            raise InputError(src, "is an ensemble; average its members' fine-tunes one member at a time")
        start = card.get("init_checkpoint")
        if not start:
            raise InputError(src, "records no init checkpoint: only fine-tunes of one start can be averaged")
        if cards:
            first = cards[0]
            for k, what in (("arch", "architecture"), ("data_sha256", "data"), ("init_checkpoint", "start")):
                if card.get(k) != first.get(k):
                    raise InputError(src, f"{what} differs from {srcs[0]}'s ({card.get(k)!r} vs {first.get(k)!r})")
        cards.append(card)
        states.append(blob["state_dict"])
    state = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            state[k] = (sum(s[k].double() for s in states) / len(states)).to(v.dtype)
        else:  # counters (BatchNorm's num_batches_tracked): the first source's
            state[k] = v
    card = {k: v for k, v in cards[0].items() if k not in ("gpu_run", "steps_run", "stop_reason")}
    card["soup"] = [{"checkpoint": str(s), "seed": (c.get("train_config") or {}).get("seed"), "step": c.get("step"),
                     "metrics": c.get("metrics"), "train_time_s": c.get("train_time_s")} for s, c in zip(srcs, cards)]
    net = build_network(card["arch"])
    net.load_state_dict(state)
    card["metrics"] = None  # each source's metrics are in soup; the soup's own only when validated
    if validate_on is not None:
        from ..train.loop import validate

        card["metrics"] = validate(net, card, validate_on)
    with atomic_path(dst) as tmp:
        torch.save({"format": CARD_FORMAT, "card": card, "state_dict": state}, tmp)
    return card
