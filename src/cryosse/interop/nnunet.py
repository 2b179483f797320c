"""nnU-Net v2 raw data from the datalist: ``RAW/DatasetNNN_cryosse/`` with ``imagesTr/``,
``labelsTr/``, ``imagesTs/`` (the test split), ``dataset.json`` and ``splits_final.json``.

- Training cases are the datalist's ``training`` and ``validation`` items (nnU-Net does its own
  cross-validation); ``imagesTs`` holds the ``test`` items (their labels are not exported, so
  nothing of the test split leaks into training).
- Images are NIfTI (``{case}_0000.nii.gz``, one channel ``density``, which nnU-Net z-scores),
  labels ``{case}.nii.gz`` as uint8 with the data contract's codes (``--merge-other``: code 3
  becomes background, the 3 classes cryosse's network learns). Arrays are stored in NIfTI's
  ``[x, y, z]`` order with the affine ``diag(voxel size) + origin`` of the MRC header, so the
  spacing nnU-Net reads is the map's voxel size.
- ``splits_final.json`` keeps the project's leakage-free folds: with k folds in the datalist
  (the items' ``fold`` key) fold f validates on the cases of fold f and trains on the others;
  without folds it is one split, the datalist's training vs validation items.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import BACKGROUND, DATA_CONTRACT_VERSION, LABEL_NAMES, OTHER
from ..errors import InputError
from ..io import read_map, write_json
from ..prep.dataset import load_datalist
from .affine import map_affine

__all__ = ["export_nnunet", "dataset_folder"]


def dataset_folder(raw: str | os.PathLike, dataset_id: int, name: str = "cryosse") -> Path:
    return Path(raw) / f"Dataset{dataset_id:03d}_{name}"


def _nifti(m, data, path: Path, dtype) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(np.ascontiguousarray(data.transpose(2, 1, 0)).astype(dtype), map_affine(m))
    img.header.set_xyzt_units("mm")  # nnU-Net and viewers take the unit as given: here 1 unit = 1 Å
    tmp = path.with_name(f".{path.name}.tmp.nii.gz")
    nib.save(img, tmp)
    os.replace(tmp, path)


def export_nnunet(datalist: str | os.PathLike, dataset_id: int, raw: str | os.PathLike, *,
                  merge_other: bool = False, name: str = "cryosse") -> dict:
    """Write the nnU-Net v2 raw data set (see the module doc); returns its ``dataset.json``."""
    if not 1 <= int(dataset_id) <= 999:
        raise InputError("--dataset-id", f"must be 1-999, not {dataset_id}")
    try:
        import nibabel  # noqa: F401
    except ImportError:
        raise InputError("export-nnunet", "needs nibabel: pip install 'cryosse[monai]'") from None
    dl = load_datalist(datalist)
    train = dl.get("training", []) + dl.get("validation", [])
    out = dataset_folder(raw, int(dataset_id), name)
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for item in train:
        dens, lab = read_map(item["image"]), read_map(item["label"])
        if dens.data.shape != lab.data.shape or not np.allclose(dens.voxel_size_a, lab.voxel_size_a):
            raise InputError(item["label"], "labels are not on the density's grid")
        codes = lab.data.astype(np.uint8)
        if merge_other:
            codes = np.where(codes == OTHER, BACKGROUND, codes).astype(np.uint8)
        _nifti(dens, dens.data, out / "imagesTr" / f"{item['id']}_0000.nii.gz", np.float32)
        _nifti(lab, codes, out / "labelsTr" / f"{item['id']}.nii.gz", np.uint8)
    for item in dl.get("test", []):
        dens = read_map(item["image"])
        _nifti(dens, dens.data, out / "imagesTs" / f"{item['id']}_0000.nii.gz", np.float32)
    codes = sorted(c for c in LABEL_NAMES if not (merge_other and c == OTHER))
    meta = {"channel_names": {"0": "density"},
            "labels": {LABEL_NAMES[c]: c for c in codes},
            "numTraining": len(train), "file_ending": ".nii.gz", "name": name,
            "description": "cryo-EM density (Å grid) with helix/sheet labels exported by cryosse "
                           f"(data contract {DATA_CONTRACT_VERSION}); spacing unit: Å",
            "cryosse_data_contract": DATA_CONTRACT_VERSION}
    write_json(out / "dataset.json", meta)
    write_json(out / "splits_final.json", splits_from_folds(dl))
    return meta


def splits_from_folds(dl: dict) -> list[dict]:
    """nnU-Net's ``splits_final.json`` (a list of ``{"train", "val"}`` case lists) from the
    datalist's folds, or its training vs validation split when it has none."""
    train = dl.get("training", []) + dl.get("validation", [])
    folds = sorted({it["fold"] for it in train if isinstance(it.get("fold"), int) and it["fold"] >= 0})
    if folds and all(isinstance(it.get("fold"), int) for it in train):
        return [{"train": sorted(it["id"] for it in train if it["fold"] != f),
                 "val": sorted(it["id"] for it in train if it["fold"] == f)} for f in folds]
    return [{"train": sorted(it["id"] for it in dl.get("training", [])),
             "val": sorted(it["id"] for it in dl.get("validation", []))}]
