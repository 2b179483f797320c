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

__all__ = ["save_checkpoint", "load_checkpoint", "check_compatible", "export_checkpoint"]

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
        raise InputError(p, f"not a loadable cryosse checkpoint ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(blob, dict) or "card" not in blob or "state_dict" not in blob:
        raise InputError(p, "not a cryosse checkpoint (no model card)")
    card = blob["card"]
    try:
        net = build_network(card["arch"])
        net.load_state_dict(blob["state_dict"])
    except Exception as exc:
        raise InputError(p, f"weights do not match the model card ({' '.join(str(exc).split())[:200]})") from None
    return net.to(device).eval(), card, blob


def check_compatible(card: dict, *, classes: list[str] | None = None,
                     voxel_size_a: float | None = None, path: str = "checkpoint") -> None:
    """Refuse a checkpoint whose classes or data voxel size do not match the data."""
    if classes is not None and list(card["classes"]) != list(classes):
        raise InputError(path, f"checkpoint classes {card['classes']} do not match the data's {classes}")
    if voxel_size_a is not None and abs(card["data_voxel_size_a"] - voxel_size_a) > 1e-3:
        raise InputError(path, f"checkpoint was trained on {card['data_voxel_size_a']} Å data, "
                               f"the data has {voxel_size_a} Å voxels")


def export_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, *, half: bool = True,
                      card_update: dict | None = None) -> dict:
    """A slim copy of a checkpoint for distribution: weights only (no optimiser or resume
    state), float16 when ``half`` (half the size; loading casts them back to the network's
    float32), and the card updated with ``card_update``. Returns the new card."""
    _, card, blob = load_checkpoint(src)
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in blob["state_dict"].items()}
    card = dict(card, **(card_update or {}), weights_dtype="float16" if half else "float32")
    with atomic_path(dst) as tmp:
        torch.save({"format": CARD_FORMAT, "card": card, "state_dict": state}, tmp)
    return card
