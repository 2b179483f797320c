"""Configurable 3D U-Nets and their named presets.

* :class:`UNet3D`: the classic layout (two 3x3x3 conv + norm + ReLU per level, max-pool down,
  transposed conv up, skip concatenation), used by the ``small`` and ``deepssetracer`` presets.
* :class:`ResUNet3D`: a leaner layout as in MONAI's ``UNet`` and nnU-Net's residual encoders:
  a strided first stage, strided convolutions down, one residual block per level, transposed
  convolutions up with additive skips, and a transposed-conv head back to the input grid.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .presets import PRESETS

__all__ = ["UNet3D", "ResUNet3D", "Ensemble", "PRESETS", "build_network"]

def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm3d(ch)
    if kind == "instance":
        return nn.InstanceNorm3d(ch, affine=True)
    raise ValueError(f"unknown norm {kind!r} (batch, instance)")


def _block(cin: int, mid: int, cout: int, norm: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, mid, 3, padding=1, bias=False), _norm(norm, mid), nn.ReLU(inplace=True),
        nn.Conv3d(mid, cout, 3, padding=1, bias=False), _norm(norm, cout), nn.ReLU(inplace=True))


class UNet3D(nn.Module):
    """U-Net: per level two 3x3x3 conv + norm + ReLU; max-pool down; transposed conv up with
    skip concatenation; a 1x1x1 conv to ``n_classes`` logits. Input sides must be multiples
    of ``2 ** (len(levels) - 1)``."""

    def __init__(self, levels: list[list[int]], n_classes: int = 3, in_channels: int = 1,
                 norm: str = "batch", dropout: float = 0.0):
        super().__init__()
        self.levels = [list(map(int, lv)) for lv in levels]
        self.down = nn.ModuleList()
        cin = in_channels
        for mid, cout in self.levels:
            self.down.append(_block(cin, mid, cout, norm))
            cin = cout
        self.drop = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()
        self.pool = nn.MaxPool3d(2)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for lv in range(len(self.levels) - 2, -1, -1):
            below = self.levels[lv + 1][1]
            skip = self.levels[lv][1]
            self.up.append(nn.ConvTranspose3d(below, below, 2, stride=2))
            self.dec.append(_block(below + skip, skip, skip, norm))
        self.head = nn.Conv3d(self.levels[0][1], n_classes, 1)

    @property
    def divisor(self) -> int:
        return 2 ** (len(self.levels) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, block in enumerate(self.down):
            x = block(x)
            if k < len(self.down) - 1:
                skips.append(x)
                x = self.pool(self.drop(x))
        for up, dec in zip(self.up, self.dec):
            x = up(x)
            x = dec(torch.cat([x, skips.pop()], dim=1))
        return self.head(x)


class _ResBlock(nn.Module):
    def __init__(self, ch: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(ch, ch, 3, padding=1, bias=False), _norm(norm, ch), nn.ReLU(inplace=True),
            nn.Conv3d(ch, ch, 3, padding=1, bias=False), _norm(norm, ch))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(x + self.body(x))


def _conv(cin: int, cout: int, stride: int, norm: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         _norm(norm, cout), nn.ReLU(inplace=True))


class ResUNet3D(nn.Module):
    """Residual U-Net with a strided first stage (``stem_stride`` 2: the finest features are
    at half the input resolution, as in MONAI's UNet). Input sides must be multiples of
    ``stem_stride * 2 ** (len(widths) - 1)``."""

    def __init__(self, widths: list[int], n_classes: int = 3, in_channels: int = 1,
                 stem_stride: int = 2, norm: str = "batch", dropout: float = 0.0):
        super().__init__()
        w = [int(v) for v in widths]
        self.stem_stride = int(stem_stride)
        self.stem = _conv(in_channels, w[0], self.stem_stride, norm)
        self.enc = nn.ModuleList([_ResBlock(w[0], norm)])
        self.down = nn.ModuleList()
        for a, b in zip(w[:-1], w[1:]):
            self.down.append(_conv(a, b, 2, norm))
            self.enc.append(_ResBlock(b, norm))
        self.drop = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for a, b in zip(w[::-1][:-1], w[::-1][1:]):
            self.up.append(nn.Sequential(nn.ConvTranspose3d(a, b, 2, stride=2, bias=False),
                                         _norm(norm, b), nn.ReLU(inplace=True)))
            self.dec.append(_ResBlock(b, norm))
        if self.stem_stride == 1:
            self.head = nn.Conv3d(w[0], n_classes, 1)
        else:
            self.head = nn.ConvTranspose3d(w[0], n_classes, self.stem_stride, stride=self.stem_stride)

    @property
    def divisor(self) -> int:
        return self.stem_stride * 2 ** len(self.down)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.enc[0](self.stem(x))
        skips = []
        for down, enc in zip(self.down, self.enc[1:]):
            skips.append(x)
            x = enc(down(self.drop(x)))
        for up, dec in zip(self.up, self.dec):
            x = dec(up(x) + skips.pop())
        return self.head(x)


class Ensemble(nn.Module):
    """Several networks as one: the output is the log of their mean softmax probabilities, so
    a softmax of it (as inference applies) gives the mean probability of the members."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    @property
    def divisor(self) -> int:
        return math.lcm(*(int(getattr(m, "divisor", 1)) for m in self.members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = None  # a running sum: one probability volume in memory, whatever the member count
        for m in self.members:
            q = torch.softmax(m(x).float(), dim=1)
            p = q if p is None else p.add_(q)
        return torch.log((p / len(self.members)).clamp_min(1e-8))


def build_network(arch: dict) -> nn.Module:
    """Network from an architecture dict (as stored in the model card); an ensemble's dict is
    ``{"type": "ensemble", "members": [arch, ...]}``."""
    if arch.get("type") == "ensemble":
        return Ensemble([build_network(dict(a, n_classes=arch["n_classes"])) for a in arch["members"]])
    if arch.get("type") == "resunet":
        return ResUNet3D(arch["widths"], n_classes=arch["n_classes"], in_channels=1,
                         stem_stride=int(arch.get("stem_stride", 2)), norm=arch.get("norm", "batch"),
                         dropout=float(arch.get("dropout", 0.0)))
    return UNet3D(arch["levels"], n_classes=arch["n_classes"], in_channels=1,
                  norm=arch.get("norm", "batch"), dropout=float(arch.get("dropout", 0.0)))
