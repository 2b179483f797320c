"""The data set: the manifest (TSV) and the MONAI-style datalist (JSON) of the components.

Rejected components stay in the manifest with their reason; the datalist lists the accepted
ones per split, paths relative to its own folder; every path of the manifest (``density``,
``labels``, ``source``) is relative to the manifest's folder (data contract 1.1), so the
folder can be moved.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .. import DATA_CONTRACT_VERSION
from ..errors import InputError
from ..io import read_tsv, write_json, write_tsv
from .labels import DEFAULT_RADIUS_A
from .split import read_splits

__all__ = ["MANIFEST_COLUMNS", "MANIFEST_PATHS", "write_manifest", "read_manifest", "load_datalist"]


MANIFEST_COLUMNS = ["id", "entry", "chain", "pdb_id", "split", "status", "reason", "resolution_a",
                    "voxel_size_a", "shape_xyz", "n_background", "n_helix", "n_sheet", "n_other",
                    "density", "labels", "source", "correlation", "atoms_in_contour", "fold", "n_residues",
                    "n_missing_backbone", "n_chain_breaks", "n_insertion_codes", "n_altloc_chosen", "n_modified"]

#: The manifest's path columns, each relative to the manifest's folder.
MANIFEST_PATHS = ("density", "labels", "source")


def _component_folders(dirs) -> list[Path]:
    """Component folders (holding ``meta.json``); a folder without one stands for the
    component folders inside it (an entry's, one per chain)."""
    out = []
    for d in map(Path, dirs):
        if (d / "meta.json").is_file():
            out.append(d)
        else:
            out.extend(sorted(p.parent for p in d.glob("*/meta.json")))
    return sorted(out)


def write_manifest(component_dirs: list[str | os.PathLike], splits_tsv: str | os.PathLike,
                   manifest_path: str | os.PathLike, datalist_path: str | os.PathLike) -> list[dict]:
    """Gather component metadata into the manifest (TSV) and a MONAI-style datalist (JSON).

    Paths in the datalist are relative to the datalist's folder (MONAI's
    ``load_decathlon_datalist`` default); the manifest's paths are relative to its own folder.
    Rejected components stay in the manifest with ``status = rejected`` and their reason.
    """
    split_of = read_splits(splits_tsv)
    fold_of = {r["id"]: r.get("fold", "") for r in read_tsv(splits_tsv)}
    manifest_dir = Path(manifest_path).resolve().parent
    datalist_dir = Path(datalist_path).resolve().parent
    rows = []
    radii: dict[float, str] = {}  # label radius -> a component made with it
    datalist = {"training": [], "validation": [], "test": []}
    key = {"train": "training", "val": "validation", "test": "test"}
    for d in _component_folders(component_dirs):
        meta = json.loads((d / "meta.json").read_text())
        row = {k: meta.get(k, "") for k in MANIFEST_COLUMNS}
        row["split"] = split_of.get(meta["id"], "")
        row["fold"] = fold_of.get(meta["id"], "")
        counts = meta.get("counts", {})
        for c in ("background", "helix", "sheet", "other"):
            row[f"n_{c}"] = counts.get(c, "")
        row["shape_xyz"] = "x".join(str(v) for v in meta.get("shape_xyz", []))
        if row["source"]:
            row["source"] = os.path.relpath(Path(row["source"]).resolve(), manifest_dir)
        quality = meta.get("quality") or {}
        for k in ("correlation", "atoms_in_contour"):  # experimental maps only
            row[k] = "" if quality.get(k) is None else f"{quality[k]:.3f}"
        if meta.get("status") == "ok":
            dens, lab = (d / "density.mrc").resolve(), (d / "labels.mrc").resolve()
            row["density"] = os.path.relpath(dens, manifest_dir)
            row["labels"] = os.path.relpath(lab, manifest_dir)
            if row["split"] in key:
                item = {"id": meta["id"], "image": os.path.relpath(dens, datalist_dir),
                        "label": os.path.relpath(lab, datalist_dir)}
                if row["fold"] not in ("", "-1"):
                    item["fold"] = int(row["fold"])
                datalist[key[row["split"]]].append(item)
                radii.setdefault(float(meta.get("label_radius_a", DEFAULT_RADIUS_A)), str(d))
        rows.append(row)
    if len(radii) > 1:
        (a, da), (b, db) = sorted(radii.items())[:2]
        raise InputError(db, f"labels made within {b:g} Å, but {da} within {a:g} Å: one data set, one label radius")
    write_tsv(manifest_path, rows, MANIFEST_COLUMNS)
    if radii and next(iter(radii)) != DEFAULT_RADIUS_A:  # realism's zones need it (the default: as before)
        datalist["label_radius_a"] = next(iter(radii))
    datalist.update(name="cryosse", data_contract=DATA_CONTRACT_VERSION,
                    labels={"0": "background", "1": "helix", "2": "sheet", "3": "other"},
                    numTraining=len(datalist["training"]))
    write_json(datalist_path, datalist)
    return rows


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """The manifest's rows with ``density``, ``labels`` and ``source`` as paths (absolute,
    from the manifest's folder; empty stays empty)."""
    base = Path(path).resolve().parent
    rows = read_tsv(path)
    for r in rows:
        for k in MANIFEST_PATHS:
            if r.get(k):
                r[k] = str(base / r[k])
    return rows


def load_datalist(path: str | os.PathLike) -> dict:
    """A datalist with every item's ``image`` and ``label`` made absolute (they are relative
    to the datalist's folder). Every item is checked before any file is read: a JSON object with
    a plain sample ``id`` (:data:`cryosse.ids.SAMPLE_ID`, unique within the datalist) and
    ``image`` and ``label`` paths without control characters. One-line error naming the file and
    the item (``training[3].label``) for anything else, and for no training items."""
    import re

    from ..ids import SAMPLE_ID
    from ..io.rules import PATH

    p = Path(path)
    try:
        dl = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(p, f"not a readable datalist ({' '.join(str(exc).split())})") from None
    if not isinstance(dl, dict):
        raise InputError(p, f"not a datalist: a JSON object of splits is expected, got a {type(dl).__name__}")
    base = p.resolve().parent
    seen: dict[str, str] = {}
    for key in ("training", "validation", "test"):
        items = dl.setdefault(key, []) if key != "test" else dl.get(key, [])
        if not isinstance(items, list):
            raise InputError(p, f"{key}: a list of items is expected, got a {type(items).__name__}")
        for k, item in enumerate(items):
            where = f"{key}[{k}]"
            if not isinstance(item, dict):
                raise InputError(p, f"{where}: an item is an object with id, image and label, got {item!r:.60}")
            sid = item.get("id")
            if not isinstance(sid, str) or not SAMPLE_ID.match(sid):
                raise InputError(p, f"{where}.id: invalid sample id {sid!r:.60}")
            if sid in seen:
                raise InputError(p, f"{where}.id: {sid!r} is also {seen[sid]}")
            seen[sid] = where
            for f in ("image", "label"):
                v = item.get(f)
                if not isinstance(v, str) or not v or not re.fullmatch(PATH, v):
                    raise InputError(p, f"{where}.{f}: a path is expected, got {v!r:.60}")
                item[f] = str(base / v)
    r = dl.get("label_radius_a", DEFAULT_RADIUS_A)
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 20:
        raise InputError(p, f"label_radius_a must be a number in (0, 20] Å, got {r!r:.40}")
    if not dl["training"]:
        raise InputError(p, "datalist has no training samples")
    return dl
