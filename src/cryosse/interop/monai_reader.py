"""A MONAI :class:`~monai.data.ImageReader` for MRC/CCP4 maps (optionally gzipped).

``LoadImaged(keys=["image", "label"], reader=MRCReader())`` reads every item of the datalist.
The array follows MONAI's (and NIfTI's) convention: its first spatial axis is the first column
of the affine, so a map comes back indexed ``[x, y, z]`` whatever its stored axis order
(``mapc/mapr/maps``), with the affine

    world (Å) = diag(voxel_x, voxel_y, voxel_z) @ (i, j, k) + origin

where ``origin`` is the position of the centre of voxel ``(0, 0, 0)``: the header's ``origin``
field when it is non-zero, else ``nstart * voxel size`` (both conventions occur in EMDB maps;
cryosse writes ``nstart`` when the origin is a whole number of voxels). The space is declared
RAS so MONAI applies no LPS flip. The metadata also carries the header fields a user may want
(``voxel_size_a``, ``origin_a``, ``mapcrs``, ``nstart_crs``, ``mrc_mode``, ``dmin``,
``dmax``, ``dmean``, ``rms``).
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
from monai.data import ImageReader
from monai.data.image_reader import _copy_compatible_dict, _stack_images
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

from ..io import read_map
from .affine import map_affine

__all__ = ["MRCReader", "MRC_SUFFIXES"]

#: File name endings the reader accepts (each also with ``.gz``).
MRC_SUFFIXES = ("mrc", "map", "ccp4", "mrcs")


def _header(path) -> dict:
    import mrcfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.open(path, mode="r", header_only=True, permissive=True) as mrc:
            h = mrc.header
            return {"nstart_crs": [int(h.nxstart), int(h.nystart), int(h.nzstart)], "mrc_mode": int(h.mode),
                    "dmin": float(h.dmin), "dmax": float(h.dmax), "dmean": float(h.dmean), "rms": float(h.rms)}


class MRCReader(ImageReader):
    """Read MRC/CCP4 maps (``.mrc``, ``.map``, ``.ccp4``, ``.mrcs``, each optionally ``.gz``)
    for MONAI: see the module doc for the array order and the affine. Several files given at
    once are stacked as channels (they must share the grid)."""

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        names = [str(f).lower() for f in ensure_tuple(filename)]
        ok = MRC_SUFFIXES + tuple(f"{s}.gz" for s in MRC_SUFFIXES)
        return bool(names) and all(n.endswith(tuple(f".{s}" for s in ok)) for n in names)

    def read(self, data, **kwargs):
        maps = [read_map(f) for f in ensure_tuple(data)]
        for m, f in zip(maps, ensure_tuple(data)):
            m.meta.update(_header(f))
        return maps if len(maps) > 1 else maps[0]

    def get_data(self, img) -> tuple[np.ndarray, dict]:
        arrays, meta = [], {}
        for m in ensure_tuple(img):
            affine = map_affine(m)
            header = {MetaKeys.AFFINE: affine, MetaKeys.ORIGINAL_AFFINE: affine.copy(),
                      MetaKeys.SPATIAL_SHAPE: np.asarray(m.shape_xyz), MetaKeys.SPACE: SpaceKeys.RAS,
                      MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan"),
                      "voxel_size_a": np.asarray(m.voxel_size_a), "origin_a": np.asarray(m.origin_a),
                      "mapcrs": np.asarray(m.meta.get("mapcrs", [1, 2, 3]))}
            header.update({k: (np.asarray(v) if isinstance(v, list) else v) for k, v in m.meta.items()
                           if k not in ("path", "mapcrs")})
            arrays.append(np.ascontiguousarray(m.data.transpose(2, 1, 0)))
            _copy_compatible_dict(header, meta)
        return _stack_images(arrays, meta), meta
