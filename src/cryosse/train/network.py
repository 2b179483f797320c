"""A configurable 3D U-Net and its named presets."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNet3D", "PRESETS", "build_network"]

#: Per level: (channels after the first conv, channels after the second conv).
PRESETS: dict[str, dict] = {
    # cryosse default: three levels, 16-32-64, BatchNorm, no dropout (~0.35 M parameters)
    "small": {"levels": [[16, 16], [32, 32], [64, 64]], "norm": "batch", "dropout": 0.0},
    # the published DeepSSETracer 1.1 layout: 1->32->64, 64->64->128, 128->128->256,
    # BatchNorm + ReLU, Dropout 0.5 before each of the two poolings
    "deepssetracer": {"levels": [[32, 64], [64, 128], [128, 256]], "norm": "batch", "dropout": 0.5},
}


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


def build_network(arch: dict) -> UNet3D:
    """Network from an architecture dict (as stored in the model card)."""
    return UNet3D(arch["levels"], n_classes=arch["n_classes"], in_channels=1,
                  norm=arch.get("norm", "batch"), dropout=float(arch.get("dropout", 0.0)))
