"""The voxel-to-Å affine of a map for an ``[x, y, z]``-ordered array (MONAI, NIfTI)."""
from __future__ import annotations

import numpy as np

from ..io import Map

__all__ = ["map_affine"]


def map_affine(m: Map) -> np.ndarray:
    """``world (Å) = diag(voxel_x, voxel_y, voxel_z) @ (i, j, k) + origin``, ``origin`` the
    centre of voxel ``(0, 0, 0)`` (:func:`cryosse.io.read_map`: the header's ``origin`` when
    non-zero, else ``nstart * voxel size``)."""
    a = np.eye(4)
    a[:3, :3] = np.diag(np.asarray(m.voxel_size_a, float))
    a[:3, 3] = np.asarray(m.origin_a, float)
    return a
