"""The data set in other tools: MONAI's LoadImaged with MRCReader (affine checked against the
MRC header fields and a fitted model), the nnU-Net v2 export read back with nibabel, the plain
PyTorch Dataset, the examples of docs/interop.md, and manifest paths relative to the manifest."""
from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from cryosse.cli import main
from cryosse.io import read_tsv

ROOT = Path(__file__).resolve().parents[1]
monai = pytest.importorskip("monai", reason="MONAI is the optional extra 'monai' (pip install '.[monai]')")


def _header_affine(path) -> np.ndarray:
    """The affine from the raw header fields, computed here (mapc/mapr/maps = 1,2,3 maps)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.open(path, header_only=True, permissive=True) as m:
            h = m.header
            assert (int(h.mapc), int(h.mapr), int(h.maps)) == (1, 2, 3)
            vox = np.array([float(m.voxel_size.x), float(m.voxel_size.y), float(m.voxel_size.z)])
            origin = np.array([float(h.origin.x), float(h.origin.y), float(h.origin.z)])
            nstart = np.array([int(h.nxstart), int(h.nystart), int(h.nzstart)])
    a = np.eye(4)
    a[:3, :3] = np.diag(vox)
    a[:3, 3] = origin if np.any(origin != 0) else nstart * vox
    return a


def _load(path, key="image"):
    from monai.transforms import LoadImaged

    from cryosse.interop import MRCReader

    return LoadImaged(keys=[key], reader=MRCReader())({key: str(path)})[key]


@pytest.mark.parametrize("name, placement", [("emd_5168/emd_5168.map", "nstart"),
                                             ("emd_2566_chain9/emd_2566_3j6b_chain9_crop.mrc", "origin")])
def test_mrc_reader_affine_on_real_maps(shared_data, name, placement):
    path = shared_data / name
    img = _load(path)
    with mrcfile.open(path, permissive=True) as m:
        raw = np.asarray(m.data)
        h = m.header
        used = (int(h.nxstart) != 0) if placement == "nstart" else bool(float(h.origin.x) != 0)
    assert used, f"{name} is expected to place the map by {placement}"
    assert np.allclose(img.affine.numpy(), _header_affine(path))
    assert tuple(img.shape) == raw.shape[::-1]  # [x, y, z]
    assert np.array_equal(img.numpy(), raw.transpose(2, 1, 0))
    assert img.meta["space"] == "RAS" and list(img.meta["nstart_crs"]) == [int(h.nxstart), int(h.nystart),
                                                                            int(h.nzstart)]
    if placement == "nstart":  # the README's fact: 100^3 @ 1.742 Å, nstart -50
        assert np.allclose(img.affine[:3, 3].numpy(), -50 * 1.742, atol=1e-3)


def test_mrc_reader_puts_the_fitted_model_on_its_density(shared_data):
    """Independent of the header: the fitted chain's atoms, mapped into voxels by the inverse
    affine, sit on density far above the map's mean (and not 5 Å away)."""
    import gemmi

    d = shared_data / "emd_2566_chain9"
    img = _load(d / "emd_2566_3j6b_chain9_crop.mrc")
    st = gemmi.read_structure(str(d / "3j6b_chain9.pdb"))
    xyz = np.array([a.pos.tolist() for r in st[0][0] for a in r if a.element.name != "H"])
    inv = np.linalg.inv(img.affine.numpy())

    def mean_at(points):
        ijk = np.rint(points @ inv[:3, :3].T + inv[:3, 3]).astype(int)
        inside = np.all((ijk >= 0) & (ijk < np.array(img.shape)), axis=1)
        assert inside.mean() > 0.9
        return img.numpy()[tuple(ijk[inside].T)].mean()

    arr = img.numpy()
    on, shifted = mean_at(xyz), mean_at(xyz + [5.0, 0, 0])
    assert on > arr.mean() + 2 * arr.std() and on > 1.5 * shifted


def test_mrc_reader_any_axis_order_and_gzip(tmp_path, shared_data):
    """A map stored with mapc/mapr/maps = 3,1,2 (and gzipped) reads as the same [x, y, z]
    array with the same affine as the 1,2,3 original."""
    src = shared_data / "emd_2566_chain9/emd_2566_3j6b_chain9_crop.mrc"
    ref = _load(src)
    with mrcfile.open(src, permissive=True) as m:
        raw, vox, origin = np.asarray(m.data).copy(), m.voxel_size.copy(), m.header.origin.copy()
    # columns = z, rows = x, sections = y: the stored array is [y][x][z]
    stored = raw.transpose(1, 2, 0)  # [z, y, x] -> [y, x, z]
    out = tmp_path / "permuted.mrc.gz"
    with mrcfile.new(out, compression="gzip") as m:
        m.set_data(np.ascontiguousarray(stored))
        h = m.header
        h.mapc, h.mapr, h.maps = 3, 1, 2
        h.mx, h.my, h.mz = raw.shape[2], raw.shape[1], raw.shape[0]
        h.cella = (vox.x * raw.shape[2], vox.y * raw.shape[1], vox.z * raw.shape[0])
        h.origin = origin
    img = _load(out)
    assert np.array_equal(img.numpy(), ref.numpy())
    assert np.allclose(img.affine.numpy(), ref.affine.numpy())
    assert list(img.meta["mapcrs"]) == [3, 1, 2]


def test_load_imaged_reads_every_datalist_item(tiny_dataset):
    from monai.data import load_decathlon_datalist
    from monai.transforms import LoadImaged

    from cryosse.interop import MRCReader

    load = LoadImaged(keys=["image", "label"], reader=MRCReader())
    n = 0
    for split in ("training", "validation", "test"):
        for item in load_decathlon_datalist(str(tiny_dataset / "datalist.json"), True, split):
            d = load(item)
            with mrcfile.open(item["label"], permissive=True) as m:
                codes = np.asarray(m.data)
            assert d["image"].shape == d["label"].shape == codes.shape[::-1]
            assert np.allclose(d["image"].affine, d["label"].affine)
            assert np.allclose(d["image"].affine.numpy(), _header_affine(item["image"]))
            assert np.array_equal(d["label"].numpy(), codes.transpose(2, 1, 0))
            n += 1
    assert n == 5


def _doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "docs/interop.md").read_text(), re.S)


def test_docs_monai_example_trains(tiny_dataset, capsys):
    code = _doc_blocks()[0].replace("results/dataset/datalist.json", str(tiny_dataset / "datalist.json"))
    import torch

    torch.manual_seed(0)
    exec(compile(code, "docs/interop.md", "exec"), {})
    out = capsys.readouterr().out
    losses = [float(v) for v in re.findall(r"loss (\d+\.\d+)", out)]
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_docs_pytorch_example_and_dataset(tiny_dataset):
    import torch

    from cryosse.interop import DatalistDataset

    code = _doc_blocks()[1]
    assert len(code.strip().splitlines()) <= 10
    torch.manual_seed(0)
    exec(compile(code.replace("results/dataset/datalist.json", str(tiny_dataset / "datalist.json")),
                 "docs/interop.md", "exec"), {})
    dl = json.loads((tiny_dataset / "datalist.json").read_text())
    whole = DatalistDataset(tiny_dataset / "datalist.json", "training")
    assert len(whole) == len(dl["training"]) == 3
    item = whole[0]
    with mrcfile.open(tiny_dataset / dl["training"][0]["image"], permissive=True) as m:
        raw = np.asarray(m.data)
    assert item["id"] == dl["training"][0]["id"]
    assert tuple(item["image"].shape) == (1, *raw.shape) and item["image"].dtype == torch.float32
    assert np.array_equal(item["image"][0].numpy(), raw) and item["label"].dtype == torch.int64
    a = DatalistDataset(tiny_dataset / "datalist.json", "training", patch=(16, 24, 200), seed=3)
    b = DatalistDataset(tiny_dataset / "datalist.json", "training", patch=(16, 24, 200), seed=3)
    pa, pb = a[1], b[1]
    assert tuple(pa["image"].shape) == (1, 16, 24, 200) and tuple(pa["label"].shape) == (16, 24, 200)
    assert torch.equal(pa["image"], pb["image"]) and torch.equal(pa["label"], pb["label"])
    assert set(np.unique(pa["label"].numpy())) <= {0, 1, 2, 3}
    assert len(DatalistDataset(tiny_dataset / "datalist.json", "test")) == 1
    assert main(["export-nnunet", "--datalist", str(tiny_dataset / "nope.json"), "--dataset-id", "1",
                 "-o", str(tiny_dataset / "raw")]) == 2


@pytest.fixture(scope="module")
def folded_dataset(tiny_dataset, tmp_path_factory) -> Path:
    """The tiny components with two folds over the train + val chains."""
    root = tmp_path_factory.mktemp("folded")
    ids = [r["id"] for r in read_tsv(tiny_dataset / "splits.tsv")]
    splits = ["train", "train", "train", "val", "test"]
    folds = ["0", "1", "0", "1", "-1"]
    (root / "splits.tsv").write_text("id\tsplit\tfold\n" + "".join(
        f"{i}\t{s}\t{f}\n" for i, s, f in zip(ids, splits, folds)))
    comps = sorted(str(p) for p in (tiny_dataset / "components").iterdir())
    assert main(["dataset", *comps, "--splits", str(root / "splits.tsv"), "--manifest",
                 str(root / "manifest.tsv"), "--datalist", str(root / "datalist.json")]) == 0
    return root


def test_export_nnunet_layout_and_nifti(folded_dataset, tmp_path):
    nib = pytest.importorskip("nibabel", reason="nibabel comes with the 'monai' extra")
    assert main(["export-nnunet", "--datalist", str(folded_dataset / "datalist.json"), "--dataset-id", "7",
                 "-o", str(tmp_path / "raw")]) == 0
    ds = tmp_path / "raw" / "Dataset007_cryosse"
    meta = json.loads((ds / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "density"} and meta["file_ending"] == ".nii.gz"
    assert meta["labels"] == {"background": 0, "helix": 1, "sheet": 2, "other": 3}
    dl = json.loads((folded_dataset / "datalist.json").read_text())
    train = dl["training"] + dl["validation"]
    assert meta["numTraining"] == len(train) == 4
    assert sorted(p.name for p in (ds / "imagesTr").iterdir()) == sorted(f"{i['id']}_0000.nii.gz" for i in train)
    assert sorted(p.name for p in (ds / "labelsTr").iterdir()) == sorted(f"{i['id']}.nii.gz" for i in train)
    assert [p.name for p in (ds / "imagesTs").iterdir()] == [f"{dl['test'][0]['id']}_0000.nii.gz"]
    for item in train:
        with mrcfile.open(folded_dataset / item["image"], permissive=True) as m:
            raw, vox = np.asarray(m.data), m.voxel_size
        with mrcfile.open(folded_dataset / item["label"], permissive=True) as m:
            codes = np.asarray(m.data)
        img = nib.load(ds / "imagesTr" / f"{item['id']}_0000.nii.gz")
        lab = nib.load(ds / "labelsTr" / f"{item['id']}.nii.gz")
        assert img.shape == lab.shape == raw.shape[::-1]
        assert np.allclose(img.header.get_zooms(), (vox.x, vox.y, vox.z))
        assert np.allclose(lab.header.get_zooms(), (vox.x, vox.y, vox.z))
        assert np.allclose(img.affine, _header_affine(folded_dataset / item["image"]), atol=1e-4)
        assert np.array_equal(np.asarray(img.dataobj), raw.transpose(2, 1, 0))
        assert np.asarray(lab.dataobj).dtype == np.uint8
        assert np.array_equal(np.asarray(lab.dataobj), codes.transpose(2, 1, 0))
    # the folds of the datalist, no case in both lists, every training case validated once
    splits = json.loads((ds / "splits_final.json").read_text())
    fold_of = {i["id"]: i["fold"] for i in train}
    assert len(splits) == 2
    for k, s in enumerate(splits):
        assert set(s["val"]) == {i for i, f in fold_of.items() if f == k}
        assert set(s["train"]) == set(fold_of) - set(s["val"])
    assert sorted(sum((s["val"] for s in splits), [])) == sorted(fold_of)
    assert dl["test"][0]["id"] not in sum((s["train"] + s["val"] for s in splits), [])
    assert main(["export-nnunet", "--datalist", str(folded_dataset / "datalist.json"), "--dataset-id", "8",
                 "--merge-other", "-o", str(tmp_path / "raw")]) == 0
    merged = tmp_path / "raw" / "Dataset008_cryosse"
    assert json.loads((merged / "dataset.json").read_text())["labels"] == {"background": 0, "helix": 1, "sheet": 2}
    assert set(np.unique(np.asarray(nib.load(next((merged / "labelsTr").iterdir())).dataobj))) <= {0, 1, 2}


def test_export_nnunet_without_folds_uses_train_and_val(tiny_dataset, tmp_path):
    pytest.importorskip("nibabel", reason="nibabel comes with the 'monai' extra")
    from cryosse.interop.nnunet import splits_from_folds

    dl = json.loads((tiny_dataset / "datalist.json").read_text())
    splits = splits_from_folds(dl)
    assert splits == [{"train": sorted(i["id"] for i in dl["training"]),
                       "val": sorted(i["id"] for i in dl["validation"])}]
    assert main(["export-nnunet", "--datalist", str(tiny_dataset / "datalist.json"), "--dataset-id", "1000",
                 "-o", str(tmp_path)]) == 2


def test_manifest_paths_are_relative_to_the_manifest(tiny_dataset, tmp_path):
    """density, labels and source resolve from the manifest's folder, also after the folder
    is copied elsewhere (the original removed from view)."""
    from cryosse.prep.dataset import read_manifest

    rows = read_tsv(tiny_dataset / "manifest.tsv")
    for r in rows:
        for k in ("density", "labels", "source"):
            assert not Path(r[k]).is_absolute() and (tiny_dataset / r[k]).is_file(), (k, r[k])
    moved = tmp_path / "moved"
    shutil.copytree(tiny_dataset, moved)
    for r in read_manifest(moved / "manifest.tsv"):
        for k in ("density", "labels", "source"):
            p = Path(r[k])
            assert p.is_file() and moved.resolve() in p.resolve().parents, (k, p)


def test_interop_env_is_the_rule_env_plus_nibabel():
    """envs/interop.yaml (the export_nnunet rule) = envs/cryosse.yaml + nibabel, at the pins."""
    import yaml

    def pip(name):
        env = yaml.safe_load((ROOT / "envs" / name).read_text())
        return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))

    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pip("interop.yaml") == [*pip("cryosse.yaml")[:-1], f"nibabel=={pins['nibabel']}", "-e ../"]


def test_export_passes_nnunet_integrity_check(folded_dataset, tmp_path):
    """nnU-Net's own check (nnunetv2 comes with the 'nnunet' extra, which `make setup` installs
    beside the CPU torch)."""
    pytest.importorskip("nibabel", reason="nibabel comes with the 'monai' extra")
    integrity = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity",
                                    reason="nnunetv2 is not installed (pip install '.[nnunet]')")
    assert main(["export-nnunet", "--datalist", str(folded_dataset / "datalist.json"), "--dataset-id", "9",
                 "-o", str(tmp_path)]) == 0
    integrity.verify_dataset_integrity(str(tmp_path / "Dataset009_cryosse"), num_processes=1)
