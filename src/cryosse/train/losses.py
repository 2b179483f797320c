"""The five losses of Mu et al. 2024, composed from two parts, on softmax probabilities.

* ``ce``: mean cross-entropy over voxels.
* ``focal``: softmax focal loss, ``-alpha_t (1 - p_t)^gamma log p_t`` averaged over voxels;
  ``alpha`` per class (default all 1), ``gamma`` default 2.
* ``dice``: multi-class soft Dice, ``1 - mean_c (2 sum p t + s) / (sum p + sum t + s)`` with
  sums over the batch and all voxels, smoothing ``s = 1e-5`` (nnU-Net), all classes included.
* ``ce_dice`` and ``focal_dice``: ``w1 * first + w2 * dice`` (default 1:1).

MONAI's ``DiceFocalLoss`` is not used: it applies a sigmoid focal term even with softmax.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import LOSSES

__all__ = ["LOSSES", "make_loss", "cross_entropy", "focal", "soft_dice"]



def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, target)


def focal(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
          alpha: torch.Tensor | None = None) -> torch.Tensor:
    logp = F.log_softmax(logits.float(), dim=1)
    logp_t = logp.gather(1, target.unsqueeze(1)).squeeze(1)
    p_t = logp_t.exp()
    loss = -((1 - p_t) ** gamma) * logp_t
    if alpha is not None:
        loss = loss * alpha.to(loss.device)[target]
    return loss.mean()


def soft_dice(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    p = F.softmax(logits.float(), dim=1)
    t = F.one_hot(target, p.shape[1]).movedim(-1, 1).to(p.dtype)
    dims = (0,) + tuple(range(2, p.ndim))
    inter = (p * t).sum(dims)
    denom = p.sum(dims) + t.sum(dims)
    return 1 - ((2 * inter + smooth) / (denom + smooth)).mean()


def make_loss(name: str, *, gamma: float = 2.0, alpha: list[float] | None = None,
              weights: tuple[float, float] = (1.0, 1.0), smooth: float = 1e-5):
    """The loss function ``f(logits, target)`` called ``name`` (one of :data:`LOSSES`)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    a = torch.tensor(alpha, dtype=torch.float32) if alpha is not None else None
    w1, w2 = weights

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if name == "ce":
            return cross_entropy(logits, target)
        if name == "focal":
            return focal(logits, target, gamma, a)
        if name == "dice":
            return soft_dice(logits, target, smooth)
        first = cross_entropy(logits, target) if name == "ce_dice" else focal(logits, target, gamma, a)
        return w1 * first + w2 * soft_dice(logits, target, smooth)

    return loss
