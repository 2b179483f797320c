"""The named network presets: architecture parameters only (no torch needed to list them)."""
from __future__ import annotations

__all__ = ["PRESETS"]

#: ``levels``: per level (channels after the first conv, channels after the second conv);
#: ``widths``: channels per level of a ResUNet3D.
PRESETS: dict[str, dict] = {
    # cryosse default (chosen by measurement, see docs/training.md): strided stem, residual blocks,
    # 16-32-64-128; 13.7 kFLOP per voxel, 118x cheaper than the DeepSSETracer layout
    "resunet": {"type": "resunet", "widths": [16, 32, 64, 128], "stem_stride": 2, "norm": "batch",
                "dropout": 0.0},
    # the same, 1.5x wider (24-48-96-192): 2.2x the FLOPs, for the GPU recipe runs
    "resunet_wide": {"type": "resunet", "widths": [24, 48, 96, 192], "stem_stride": 2, "norm": "batch",
                     "dropout": 0.0},
    # the default without the strided stem: features at the working grid (109 kFLOP/voxel, 8x)
    "resunet_fine": {"type": "resunet", "widths": [16, 32, 64, 128], "stem_stride": 1, "norm": "batch",
                     "dropout": 0.0},
    # classic U-Net: three levels, 16-32-64, BatchNorm, no dropout (0.39 M parameters)
    "small": {"levels": [[16, 16], [32, 32], [64, 64]], "norm": "batch", "dropout": 0.0},
    # the published DeepSSETracer 1.1 layout: 1->32->64, 64->64->128, 128->128->256,
    # BatchNorm + ReLU, Dropout 0.5 before each of the two poolings
    "deepssetracer": {"levels": [[32, 64], [64, 128], [128, 256]], "norm": "batch", "dropout": 0.5},
}
