"""What a prediction is asked to do: its settings (config ``predict``; ``cryosse predict`` takes
each as a flag or from ``--config``) and the chain zone it may be limited to."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PredictConfig", "Zone"]


@dataclass(frozen=True)
class PredictConfig:
    """How to predict. ``tile`` is in working voxels (0: automatic, the whole working volume in
    one pass when it fits the memory budget, else the largest margin tiles that fit, which
    overlap by twice :data:`cryosse.net.window.CONTEXT_MARGIN` only; an explicit tile is
    blended with Gaussian weights and ``overlap``, a fraction of the tile); ``max_memory_gb`` bounds the arrays (maps, accumulators,
    network activations on the CPU), not the ~0.5 GB of Python and torch themselves."""

    contour: float | None = None
    overlap: float = 0.5
    tile: int = 0
    batch: int = 2
    device: str | None = None
    amp: bool | None = None
    max_memory_gb: float = 8.0
    slab: int = 16
    threads: int = 0  # CPU threads; 0: see cpu_threads()
    tta: bool = False  # average over the four 180-degree grid rotations (FlipAverage), ~4x time


@dataclass(frozen=True)
class Zone:
    """A chain component on the input grid: box start and size (x, y, z voxels of the input
    grid; may reach outside it) and the mask of voxels within the zone radius (``[z, y, x]``
    of the box)."""

    start_xyz: np.ndarray
    size_xyz: np.ndarray
    mask: np.ndarray
    chains: tuple[str, ...]
    radius_a: float
