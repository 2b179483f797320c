"""Shared fixtures: embedded structures, independent reference data, tiny synthetic models."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import gemmi
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STRUCTURES = ROOT / "src" / "cryosse" / "data" / "structures"
SHARED_DATA = ROOT.parent / "shared" / "data"
EXTRA_STRUCTURES = ROOT / "resources" / "structures_extra"
REAL_CASES = ROOT / "bench" / "real_maps.yaml"


@pytest.fixture(scope="session")
def structures_dir() -> Path:
    return STRUCTURES


@pytest.fixture(scope="session")
def mda_dssp_dir() -> Path:
    """The 50 single chains with reference DSSP strings shipped by MDAnalysisTests."""
    spec = importlib.util.find_spec("MDAnalysisTests")
    if spec is None:
        pytest.skip("MDAnalysisTests is not installed (pip install '.[test]')")
    return Path(spec.origin).parent / "data" / "dssp"


@pytest.fixture(scope="session")
def extra_structures_dir() -> Path:
    """The bundle-only training structures (outside the package)."""
    return EXTRA_STRUCTURES


@pytest.fixture(scope="session")
def real_cases():
    """The real-map evaluation cases of the bundled model (bench/real_maps.yaml)."""
    from cryosse.evaluate.realmaps import read_cases

    return read_cases(REAL_CASES)[0]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (real maps live outside the project)")
    return SHARED_DATA


def make_structure(atoms: list[tuple[str, str, str, tuple[float, float, float]]],
                   chain: str = "A") -> gemmi.Structure:
    """A one-chain structure from (resname, atom name, element, xyz) records, one residue each
    unless consecutive records share a residue name and the previous atom is not 'O'."""
    st = gemmi.Structure()
    model = gemmi.Model(1)
    ch = gemmi.Chain(chain)
    for k, (resname, name, element, xyz) in enumerate(atoms):
        res = gemmi.Residue()
        res.name = resname
        res.seqid = gemmi.SeqId(k + 1, " ")
        res.entity_type = gemmi.EntityType.Polymer
        a = gemmi.Atom()
        a.name = name
        a.element = gemmi.Element(element)
        a.pos = gemmi.Position(*xyz)
        a.occ = 1.0
        res.add_atom(a)
        ch.add_residue(res)
    model.add_chain(ch)
    st.add_model(model)
    return st


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


TINY = [("1a8o", "A", 6.0), ("2xdga", "A", 8.0), ("1ahsa", "A", 7.0), ("3a4ra", "A", 5.5),
        ("2cvia", "A", 9.0)]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Five real chain components (simulated, labelled, cropped) with a datalist: 3 train,
    1 val, 1 test. Built with the library, as the workflow would."""
    from cryosse.cli import main

    root = tmp_path_factory.mktemp("tiny")
    comps = []
    for entry, chain, res in TINY:
        model = STRUCTURES / f"{entry}.pdb.gz"
        assert main(["simulate", str(model), "--resolution", str(res), "-o", str(root / f"{entry}.mrc")]) == 0
        assert main(["sse", str(model), "-o", str(root / f"{entry}.tsv")]) == 0
        out = root / "components" / f"{entry}_{chain}"
        assert main(["crop", str(model), str(root / f"{entry}.mrc"), "--chain", chain, "--id",
                     f"{entry}_{chain}", "--entry", entry, "--sse", str(root / f"{entry}.tsv"),
                     "--resolution", str(res), "-o", str(out)]) == 0
        comps.append(out)
    splits = ["train", "train", "train", "val", "test"]
    (root / "splits.tsv").write_text("id\tsplit\n" + "".join(
        f"{e}_{c}\t{s}\n" for (e, c, _), s in zip(TINY, splits)))
    assert main(["dataset", *map(str, comps), "--splits", str(root / "splits.tsv"),
                 "--manifest", str(root / "manifest.tsv"), "--datalist", str(root / "datalist.json")]) == 0
    return root


@pytest.fixture(scope="session")
def tiny_local_run(tmp_path_factory) -> Path:
    """The workflow's default target on the tiny config (test_workflow.TINY_CONFIG), run once
    locally per test process (per xdist worker, and `make test` keeps each file on one):
    test_end_to_end_tiny checks it and goes on with more targets in the same folder (they leave
    the default target's files alone), and the Slurm scenario compares its own run with it."""
    from test_workflow import snakemake, tiny_project

    project = tiny_project(tmp_path_factory.mktemp("tiny-workflow") / "project")
    r = snakemake("--cores", "2", "--workflow-profile", str(ROOT / "workflow/profiles/default"), cwd=project)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return project


@pytest.fixture
def checkpoint(tmp_path):
    """A small untrained 3-class network (seed 0) saved with a minimal model card."""
    torch = pytest.importorskip("torch")
    from cryosse.net.checkpoint import save_checkpoint
    from cryosse.net.network import PRESETS, build_network

    torch.manual_seed(0)
    arch = dict(PRESETS["small"], n_classes=3, preset="small")
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, build_network(arch), {"arch": arch, "classes": ["other", "helix", "sheet"],
                                                "voxel_size_a": 2.0, "data_voxel_size_a": 1.0, "tile": 32})
    return path


@pytest.fixture
def uncalibrated_bundled(tmp_path):
    """cryosse-sse-v1's network: the previous bundled model (v1.1, kept in the package as the
    recipe's fine-tune start) with its card's class weights and calibration removed, saved in
    tmp_path."""
    torch = pytest.importorskip("torch")
    from cryosse.inference.outputs import PREVIOUS_CHECKPOINT

    blob = torch.load(PREVIOUS_CHECKPOINT, weights_only=True)
    assert blob["card"]["calibration"]["source"] == "cryosse-sse-v1.pt"
    blob["card"] = {k: v for k, v in blob["card"].items() if k not in ("class_weights", "calibration")}
    path = tmp_path / "uncalibrated.pt"
    torch.save(blob, path)
    return path
