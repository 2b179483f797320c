"""Training patches: class-aware centres, grid-respecting augmentation (proper 90-degree
rotations only), and on-the-fly realism (cryosse.prep.realism) with its schedule."""
from __future__ import annotations

import hashlib
import random

import numpy as np
import torch

from ..net.inputs import normalise
from .config import TrainConfig
from .data import Sample

__all__ = ["PatchSampler", "realism_strength", "degraded_sample", "realism_config", "REALISM_REUSE"]


def _degrade_whole(s: Sample, cfg: TrainConfig, g: np.random.Generator, strength: float = 1.0,
                   sid: str | None = None) -> Sample:
    """``s`` degraded as a whole by one realism draw and normalised as prediction normalises a
    whole map."""
    from ..prep.realism import degrade, segment

    rc = realism_config(cfg).scaled(strength)
    protein = s.labels4 > 0  # every labelled voxel: helix, sheet and other (loops)
    x, _ = degrade(s.raw, protein, cfg.voxel_size_a, g, rc, label_radius_a=s.label_radius_a)
    x, keep, box, _ = segment(x, protein, cfg.voxel_size_a, g, rc, s.label_radius_a)
    if box is None:
        x, pad = normalise(x, cfg.voxel_size_a, cfg.norm)
    else:  # the user's tight box, normalised on its own; outside it, what prediction pads with
        inner, pad = normalise(x[box], cfg.voxel_size_a, cfg.norm)
        x = np.full(x.shape, pad, np.float32)
        x[box] = inner
        in_box = np.zeros(keep.shape, bool)
        in_box[box] = True
        keep = keep & in_box
    y = s.y if keep is None else np.where(keep, s.y, 0).astype(s.y.dtype)
    points = None if keep is None else {c: np.argwhere(keep & (y == c)) for c in (0, 1, 2)}
    return Sample(sid or s.id, x, y, pad, s.labels4, s.data_voxel_size_a, keep=keep, keep_points=points,
                  label_radius_a=s.label_radius_a)


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
    from ..prep.realism import RealismConfig

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

    def _in_segment(self, src: Sample, cls: int) -> np.ndarray:
        """A centre inside a segmented copy, of class ``cls`` when the segment holds any (so
        the class-aware sampling survives segmentation)."""
        by = src.keep_points
        w = by[cls] if len(by[cls]) else next((by[c] for c in (1, 2, 0) if len(by[c])), None)
        if w is None:
            return np.array([n // 2 for n in src.y.shape])
        return w[self.rng.randrange(len(w))]

    def batch(self, step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        strength = realism_strength(step, self.cfg) if self.cfg.realism else 0.0
        for _ in range(self.cfg.batch):
            i, c = self.centre()
            src = self._source(i, strength)
            if src.keep is not None and not src.keep[tuple(c)]:
                c = self._in_segment(src, int(self.samples[i].y[tuple(c)]))
            x, y = _patch(src, c, self.cfg.patch)
            if self.cfg.augment:
                x, y = _augment(x, y, self.rng, rotate_only=self.cfg.realism)
            xs.append(x)
            ys.append(y)
        return (torch.from_numpy(np.stack(xs)[:, None]),
                torch.from_numpy(np.stack(ys).astype(np.int64)))
