"""The data set where ML users already work: a MONAI reader for MRC/CCP4 maps
(:class:`MRCReader`, needs the ``monai`` extra), an nnU-Net v2 raw-data export
(:func:`export_nnunet`, needs nibabel from the same extra) and a plain PyTorch
:class:`DatalistDataset` over the datalist (needs neither).

Nothing in :mod:`cryosse.prep` imports this package; it reads what preparation wrote
(``datalist.json``, the component maps) as any user would.
"""
from __future__ import annotations

from .affine import map_affine
from .torch_dataset import DatalistDataset, datalist_items

__all__ = ["MRCReader", "DatalistDataset", "datalist_items", "export_nnunet", "map_affine"]


def __getattr__(name):  # MONAI and nibabel are optional: imported on first use
    if name == "MRCReader":
        from . import monai_reader

        return getattr(monai_reader, name)
    if name == "export_nnunet":
        from .nnunet import export_nnunet

        return export_nnunet
    raise AttributeError(name)
