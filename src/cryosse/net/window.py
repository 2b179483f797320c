"""Sliding-window inference with Gaussian importance blending (as nnU-Net).

Tiles of ``tile`` voxels overlap by ``overlap`` (fraction of a tile); each tile's softmax
probabilities are weighted by a Gaussian (sigma = tile / 8, floor 1e-3 of its peak) and the
weighted sum is divided by the summed weights. A volume no larger than one tile is done in
one pass (padded to the network's divisor). Memory: one float32 copy of the volume per class
plus one of the weights, and a batch of tiles.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

__all__ = ["gaussian_weight", "tile_starts", "sliding_window_probs", "activation_bytes_per_voxel"]


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


def _pad_to(x: np.ndarray, shape: tuple[int, ...], value: float) -> np.ndarray:
    pads = [(0, max(0, s - n)) for n, s in zip(x.shape, shape)]
    return np.pad(x, pads, constant_values=value) if any(p[1] for p in pads) else x


def activation_bytes_per_voxel(net: torch.nn.Module, divisor: int) -> float:
    """Bytes of float32 layer outputs per input voxel in one forward pass (the sum over all
    convolution and normalisation layers: an upper bound of what inference holds at once).
    Measured once per network on a ``divisor``³ input and remembered on the network."""
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
    net._cryosse_activation_bytes = 4.0 * total[0] / side ** 3
    return net._cryosse_activation_bytes


@torch.inference_mode()
def sliding_window_probs(net: torch.nn.Module, volume: np.ndarray, *, tile: int = 64,
                         overlap: float = 0.5, batch: int = 2, divisor: int = 4,
                         pad_value: float = 0.0, device: str | torch.device = "cpu",
                         amp: bool = False, progress=None) -> np.ndarray:
    """Class probabilities (C, Z, Y, X) of ``net`` on a normalised ``volume`` (Z, Y, X).
    ``progress(done, total)``, if given, is called with the tiles done after each batch."""
    net.eval()
    device = torch.device(device)
    shape = volume.shape
    # small volumes: one pass over the whole (padded) volume
    padded = tuple(max(int(math.ceil(n / divisor) * divisor), divisor) for n in shape)
    tile_shape = tuple(min(tile, p) for p in padded)
    tile_shape = tuple(int(math.ceil(t / divisor) * divisor) for t in tile_shape)
    full = tuple(max(p, t) for p, t in zip(padded, tile_shape))
    vol = _pad_to(volume.astype(np.float32), full, pad_value)
    starts = list(itertools.product(*(tile_starts(n, t, overlap) for n, t in zip(full, tile_shape))))
    weight = gaussian_weight(tile_shape) if len(starts) > 1 else np.ones(tile_shape, np.float32)
    acc = None
    norm = np.zeros(full, np.float32)
    autocast = torch.autocast(device_type=device.type, dtype=torch.float16 if device.type == "cuda"
                              else torch.bfloat16, enabled=amp)
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
