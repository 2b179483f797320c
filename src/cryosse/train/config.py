"""The training settings (config ``train``; ``cryosse train`` takes each as a flag or from
``--config``): one place for every default."""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TrainConfig", "LOSSES"]

#: The five losses of Mu et al. 2024 (DeepSSETracer 1.1).
LOSSES = ("ce", "focal", "dice", "ce_dice", "focal_dice")


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "resunet"
    loss: str = "focal_dice"
    voxel_size_a: float = 2.0          # working grid of the network
    patch: int = 32                    # voxels per side on the working grid
    batch: int = 4
    steps: int = 3000
    optimizer: str = "adamw"           # adamw (one-cycle schedule) or sgd (poly schedule)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    val_every: int = 500
    checkpoint_every: int = 250        # steps between resumable checkpoints (last.pt)
    patience: int = 0                  # validations without better sheet F1 before stopping (0: never)
    max_minutes: float = 0.0           # 0: no time limit
    focal_gamma: float = 2.0
    focal_alpha: tuple[float, ...] | None = None
    loss_weights: tuple[float, float] = (1.0, 1.0)
    oversample: dict = field(default_factory=lambda: {"helix": 0.33, "sheet": 0.33})
    augment: bool = True
    device: str = "auto"               # auto, cpu or cuda; AMP = bf16 autocast on CUDA (no scaler needed)
    amp: bool = True
    norm: str = "zscore"               # input normalisation: zscore (whole box) or local
    realism: bool = False              # degrade patches like native maps (cryosse.prep.realism)
    realism_ramp: tuple[float, float] = (0.2, 0.5)  # fractions of the steps: start, full strength
    realism_clean: float = 0.2         # share of patches left clean at full strength
    realism_params: dict = field(default_factory=dict)  # RealismConfig fields to change
