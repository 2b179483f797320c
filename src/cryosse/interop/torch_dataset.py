"""A plain PyTorch :class:`~torch.utils.data.Dataset` over the datalist: for users who want
neither MONAI nor nnU-Net.

Each item is a dict ``{"id", "image", "label"}``: ``image`` a float32 tensor ``(1, Z, Y, X)``
(the density as stored, or z-scored with ``normalize=True``), ``label`` an int64 tensor
``(Z, Y, X)`` of the data contract's codes (0 background, 1 helix, 2 sheet, 3 other). Arrays
are in cryosse's ``[z, y, x]`` order (:func:`cryosse.io.read_map`), whatever the stored axis
order. With ``patch=(pz, py, px)`` (or one int) each access returns a random patch of that size
(maps smaller than it are padded with 0 / background), drawn from a generator seeded with
``seed`` and the access count, so a run is reproducible.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from ..errors import InputError
from ..io import read_map
from ..prep.dataset import load_datalist

__all__ = ["DatalistDataset", "datalist_items"]

_SPLITS = ("training", "validation", "test")


def datalist_items(datalist: str | os.PathLike, split: str = "training",
                   folds: tuple[int, ...] | None = None) -> list[dict]:
    """The items of one split of a datalist (paths made absolute), optionally only those of
    the given k-fold folds (the ``fold`` key of training and validation items)."""
    if split not in _SPLITS:
        raise InputError(datalist, f"unknown split {split!r} (one of {', '.join(_SPLITS)})")
    items = load_datalist(datalist).get(split, [])
    if folds is not None:
        items = [it for it in items if it.get("fold") in set(folds)]
    return items


class DatalistDataset(torch.utils.data.Dataset):
    """Density and labels of a datalist's split as tensors (see the module doc)."""

    def __init__(self, datalist: str | os.PathLike, split: str = "training", *,
                 patch: int | tuple[int, int, int] | None = None, normalize: bool = False, seed: int = 0,
                 folds: tuple[int, ...] | None = None):
        self.items = datalist_items(datalist, split, folds)
        self.patch = (patch,) * 3 if isinstance(patch, int) else (tuple(patch) if patch else None)
        self.normalize = normalize
        self.seed = seed
        self._draws = 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        density = read_map(item["image"]).data.astype(np.float32)
        labels = read_map(item["label"]).data.astype(np.int64)
        if density.shape != labels.shape:
            raise InputError(item["label"], f"shape {labels.shape} differs from the density's {density.shape}")
        if self.normalize:
            density = (density - density.mean()) / max(float(density.std()), 1e-6)
        if self.patch:
            rng = np.random.default_rng([self.seed, index, self._draws])
            self._draws += 1
            density, labels = _random_patch(density, labels, self.patch, rng)
        return {"id": item["id"], "image": torch.from_numpy(np.ascontiguousarray(density))[None],
                "label": torch.from_numpy(np.ascontiguousarray(labels))}


def _random_patch(d: np.ndarray, lab: np.ndarray, patch: tuple[int, int, int], rng) -> tuple[np.ndarray, np.ndarray]:
    pads = [(0, max(0, p - n)) for n, p in zip(d.shape, patch)]
    if any(p[1] for p in pads):
        d, lab = np.pad(d, pads), np.pad(lab, pads)
    lo = [int(rng.integers(0, n - p + 1)) for n, p in zip(d.shape, patch)]
    sl = tuple(slice(a, a + p) for a, p in zip(lo, patch))
    return d[sl], lab[sl]
