"""Sliding-window inference: margin tiles (default) or Gaussian importance blending (as nnU-Net).

Two tilings:

- ``margin`` given (what prediction uses, see :func:`plan_tiles`): a volume that fits one tile
  (``tile`` may be a (z, y, x) shape) is done in one pass; otherwise tiles overlap by
  ``2 * margin`` voxels only, and each voxel takes the probabilities of the one tile whose
  core holds it (cores split each overlap in the middle, so every voxel is at least
  ``margin`` voxels from the edge of the tile that predicts it, or at the volume's own edge).
  The network's context reaches about ``margin`` voxels (:data:`CONTEXT_MARGIN`), so this is
  the single pass up to a tiny tolerance, at the cost of the margins only.
- ``margin=None``: tiles of ``tile`` voxels overlap by ``overlap`` (fraction of a tile); each
  tile's softmax probabilities are weighted by a Gaussian (sigma = tile / 8, floor 1e-3 of
  its peak) and the weighted sum is divided by the summed weights. With the old default of
  half a tile, a 148³ working grid took 27 tiles of 128³ (~17x its voxels).

Memory: one float32 copy of the volume per class (plus one of the weights when blending),
and a batch of tiles.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

__all__ = ["gaussian_weight", "tile_starts", "margin_starts", "plan_tiles", "sliding_window_probs",
           "activation_bytes_per_voxel", "CONTEXT_MARGIN", "LIVE_FRACTION"]

#: Voxels of context each side that a prediction needs to equal the single pass: on EMD-0093
#: with the bundled model, a 32³ core predicted with 24/32/40 voxels of context differed from
#: the single pass by at most 0.50/0.069/0.007 in probability (labels 99.66/99.99/100 %
#: equal; docs/prediction.md "Tiles"). Margin tiles overlap by twice this.
CONTEXT_MARGIN = 40


def gaussian_weight(tile: tuple[int, int, int], sigma_scale: float = 1 / 8) -> np.ndarray:
    axes = []
    for n in tile:
        x = np.arange(n) - (n - 1) / 2
        axes.append(np.exp(-0.5 * (x / max(n * sigma_scale, 1e-6)) ** 2))
    w = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    w = w / w.max()
    return np.maximum(w, 1e-3).astype(np.float32)


def tile_starts(size: int, tile: int, overlap: float) -> list[int]:
    """Start offsets covering ``size`` with tiles of ``tile``, step ``tile * (1 - overlap)``."""
    if size <= tile:
        return [0]
    step = max(1, int(round(tile * (1 - overlap))))
    n = math.ceil((size - tile) / step) + 1
    starts = np.linspace(0, size - tile, n).round().astype(int)
    return sorted(set(starts.tolist()))


def margin_starts(size: int, tile: int, margin: int, divisor: int = 1) -> list[int]:
    """Start offsets (multiples of ``divisor``, so that every tile pools on the grid of the
    single pass) covering ``size`` with tiles of ``tile`` that overlap by at least
    ``2 * margin``, evenly spread. ``size`` and ``tile`` are multiples of ``divisor``."""
    if size <= tile:
        return [0]
    step = max(divisor, (tile - 2 * margin) // divisor * divisor)
    n = math.ceil((size - tile) / step) + 1
    starts = [int(k * (size - tile) / (n - 1)) // divisor * divisor for k in range(n - 1)] + [size - tile]
    return sorted(set(starts))


def _cores(starts: list[int], tile: int, size: int) -> list[tuple[int, int]]:
    """Per tile, the [lo, hi) range of the volume it predicts: overlaps split in the middle."""
    bounds = [0] + [(b + a + tile) // 2 for a, b in zip(starts, starts[1:])] + [size]
    return list(zip(bounds[:-1], bounds[1:]))


def plan_tiles(shape: tuple[int, int, int], divisor: int, max_tile_voxels: float,
               margin: int = CONTEXT_MARGIN) -> tuple[int, int, int]:
    """The tile shape for a working volume of ``shape`` (z, y, x): the whole volume (padded to
    ``divisor``) when it has at most ``max_tile_voxels`` voxels (one pass), else the largest
    cube of a multiple of ``divisor`` within that many voxels, and at least
    ``2 * (margin + divisor)`` (tiles then overlap by ``2 * margin`` only)."""
    padded = tuple(max(int(math.ceil(n / divisor) * divisor), divisor) for n in shape)
    if int(np.prod(padded)) <= max_tile_voxels:
        return padded
    side = int(max(max_tile_voxels, 1) ** (1 / 3) + 1e-6) // divisor * divisor
    side = max(side, 2 * (margin + divisor) // divisor * divisor + divisor * (2 * margin % divisor > 0))
    return tuple(min(side, p) for p in padded)


def _pad_to(x: np.ndarray, shape: tuple[int, ...], value: float) -> np.ndarray:
    pads = [(0, max(0, s - n)) for n, s in zip(x.shape, shape)]
    return np.pad(x, pads, constant_values=value) if any(p[1] for p in pads) else x


#: What inference holds at once, as a fraction of the sum of all layer outputs: for the bundled
#: model (resunet_fine ensemble) the sum is 2052 B/voxel, the measured peak resident growth of
#: one CPU forward pass 562 B/voxel at 64³ and 416 at 112³ (0.27 and 0.20 of it); 0.4 keeps
#: a margin over both (docs/prediction.md "Tiles").
LIVE_FRACTION = 0.4


def activation_bytes_per_voxel(net: torch.nn.Module, divisor: int) -> float:
    """Bytes per input voxel that one forward pass holds at once: :data:`LIVE_FRACTION` of
    the float32 outputs of all convolution and normalisation layers (their sum would be an
    upper bound). Counted once per network on a ``divisor``³ input and remembered on it."""
    cached = getattr(net, "_cryosse_activation_bytes", None)
    if cached is not None:
        return cached
    total = [0]

    def hook(mod, inp, out):
        total[0] += out.numel()

    layers = (torch.nn.Conv3d, torch.nn.ConvTranspose3d, torch.nn.BatchNorm3d, torch.nn.InstanceNorm3d)
    hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, layers)]
    side = divisor
    try:
        with torch.inference_mode():
            net.eval()(torch.zeros(1, 1, side, side, side, device=next(net.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    net._cryosse_activation_bytes = LIVE_FRACTION * 4.0 * total[0] / side ** 3
    return net._cryosse_activation_bytes


@torch.inference_mode()
def sliding_window_probs(net: torch.nn.Module, volume: np.ndarray, *, tile: int | tuple = 64,
                         overlap: float = 0.5, batch: int = 2, divisor: int = 4,
                         pad_value: float = 0.0, device: str | torch.device = "cpu",
                         amp: bool = False, margin: int | None = None, progress=None) -> np.ndarray:
    """Class probabilities (C, Z, Y, X) of ``net`` on a normalised ``volume`` (Z, Y, X);
    ``margin``: margin tiles, else Gaussian blending with ``overlap`` (see the module doc).
    ``progress(done, total)``, if given, is called with the tiles done after each batch."""
    net.eval()
    device = torch.device(device)
    shape = volume.shape
    # small volumes: one pass over the whole (padded) volume
    padded = tuple(max(int(math.ceil(n / divisor) * divisor), divisor) for n in shape)
    tiles = tuple(tile) if isinstance(tile, (tuple, list)) else (tile,) * 3
    tile_shape = tuple(min(t, p) for t, p in zip(tiles, padded))
    tile_shape = tuple(int(math.ceil(t / divisor) * divisor) for t in tile_shape)
    full = tuple(max(p, t) for p, t in zip(padded, tile_shape))
    vol = _pad_to(volume.astype(np.float32), full, pad_value)
    autocast = torch.autocast(device_type=device.type, dtype=torch.float16 if device.type == "cuda"
                              else torch.bfloat16, enabled=amp)
    if margin is not None:
        return _margin_tiles(net, vol, shape, full, tile_shape, margin, batch, divisor, device, autocast,
                             progress)
    starts = list(itertools.product(*(tile_starts(n, t, overlap) for n, t in zip(full, tile_shape))))
    weight = gaussian_weight(tile_shape) if len(starts) > 1 else np.ones(tile_shape, np.float32)
    acc = None
    norm = np.zeros(full, np.float32)
    if progress is not None:
        progress(0, len(starts))
    for b in range(0, len(starts), batch):
        chunk = starts[b:b + batch]
        x = np.stack([vol[z:z + tile_shape[0], y:y + tile_shape[1], x0:x0 + tile_shape[2]]
                      for z, y, x0 in chunk])[:, None]
        with autocast:
            logits = net(torch.from_numpy(x).to(device))
        probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
        if acc is None:
            acc = np.zeros((probs.shape[1],) + full, np.float32)
        for (z, y, x0), p in zip(chunk, probs):
            sl = (slice(z, z + tile_shape[0]), slice(y, y + tile_shape[1]), slice(x0, x0 + tile_shape[2]))
            acc[(slice(None),) + sl] += p * weight
            norm[sl] += weight
        if progress is not None:
            progress(b + len(chunk), len(starts))
    acc /= norm[None]
    return acc[:, :shape[0], :shape[1], :shape[2]]


def _margin_tiles(net, vol, shape, full, tile_shape, margin, batch, divisor, device, autocast,
                  progress=None) -> np.ndarray:
    """Margin tiling (module doc): each voxel from the one tile whose core holds it."""
    per_axis = []
    for n, t in zip(full, tile_shape):
        st = margin_starts(n, t, margin, divisor)
        per_axis.append(list(zip(st, _cores(st, t, n))))
    tiles = list(itertools.product(*per_axis))
    acc = None
    if progress is not None:
        progress(0, len(tiles))
    for b in range(0, len(tiles), batch):
        chunk = tiles[b:b + batch]
        x = np.stack([vol[z:z + tile_shape[0], y:y + tile_shape[1], x0:x0 + tile_shape[2]]
                      for (z, _), (y, _), (x0, _) in chunk])[:, None]
        with autocast:
            logits = net(torch.from_numpy(x).to(device))
        probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
        if acc is None:
            acc = np.zeros((probs.shape[1],) + tuple(shape), np.float32)
        for axes, p in zip(chunk, probs):
            dst, src = [slice(None)], [slice(None)]
            for (s0, (lo, hi)), n in zip(axes, shape):
                hi = min(hi, n)  # the padding beyond the volume is dropped
                dst.append(slice(lo, hi))
                src.append(slice(lo - s0, hi - s0))
            acc[tuple(dst)] = p[tuple(src)]
        if progress is not None:
            progress(b + len(chunk), len(tiles))
    return acc
