"""The Snakemake workflow: lint, dry run on the default config, and a real end-to-end run on a
tiny config in a temporary folder."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from cryosse import BUNDLED_NAME
from cryosse.io import read_map, read_tsv

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def snakemake(*args, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the project's Snakefile with ``cwd`` as working directory and its config.yaml."""
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    return subprocess.run([str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(cwd),
                           "--configfile", str(cwd / "config.yaml"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _default_config(dest: Path) -> None:
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["structures"] = str(ROOT / cfg["structures"])
    if cfg["bundle"].get("extra_structures"):
        cfg["bundle"]["extra_structures"] = str(ROOT / cfg["bundle"]["extra_structures"])
    if cfg["bundle"].get("finetune", {}).get("init"):
        cfg["bundle"]["finetune"]["init"] = str(ROOT / cfg["bundle"]["finetune"]["init"])
    if cfg.get("real_maps"):
        cfg["real_maps"] = str(ROOT / cfg["real_maps"])
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg))


def test_lint(tmp_path):
    _default_config(tmp_path)
    r = snakemake("--lint", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Congratulations" in r.stdout + r.stderr


def test_dry_run_default_config(tmp_path):
    _default_config(tmp_path)
    r = snakemake("-n", "--workflow-profile", str(ROOT / "workflow/profiles/default"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    for rule in ("simulate", "sse", "label", "crop", "split", "dataset", "dataset_report", "train", "report"):
        assert f"\n{rule} " in out or f"rule {rule}:" in out, rule


def test_bundled_model_recipe_calibrates_when_the_real_maps_are_present(tmp_path, shared_data):
    """snakemake bundled_model: the trained ensemble is calibrated on the selection set (rule
    bundle_calibrate) and the calibrated model is scored and exported; bundle.calibrate false
    exports the ensemble itself."""
    _default_config(tmp_path)
    r = snakemake("-n", "-p", "bundled_model", cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "rule bundle_calibrate:" in out and "cryosse calibrate --checkpoint" in out
    assert "cryosse export-model results/bundle/model/calibrated.pt" in out
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    cfg["bundle"]["calibrate"] = False
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "-p", "bundled_model", cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "bundle_calibrate" not in out, out
    assert "cryosse export-model results/bundle/model/ensemble.pt" in out


def test_dry_run_with_configured_maps(tmp_path):
    """A map with a fitted model is predicted (on a GPU under the slurm profile) and scored; a
    map without one is only predicted."""
    from cryosse.io import Map, write_map

    write_map(Map(np.zeros((8, 8, 8), np.float32), (1.0,) * 3), tmp_path / "emd_1.map")
    write_map(Map(np.zeros((8, 8, 8), np.float32), (1.0,) * 3), tmp_path / "other.mrc.gz")
    _default_config(tmp_path)
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    cfg["predict"] = {"maps": [{"path": str(tmp_path / "emd_1.map"), "contour": 0.5,
                                "model": str(ROOT / "src/cryosse/data/structures/1a8o.pdb.gz"), "chain": "A"},
                               {"path": str(tmp_path / "other.mrc.gz")}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "-p", "--workflow-profile", str(ROOT / "workflow/profiles/default"), cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    for path in ("results/predict/maps/emd_1/summary.json", "results/predict/maps/other/view.cxc",
                 "results/predict/maps/emd_1/scores.json", "results/predict/maps/emd_1/slices.png"):
        assert path in out, path
    assert "results/predict/maps/other/scores.json" not in out
    assert "--model" in out and "--chain A" in out and "--contour 0.5" in out and "--png" in out
    profile = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    assert profile["set-resources"]["predict"]["gpu"] == 1
    bad = dict(cfg, predict={"maps": [{"path": str(tmp_path / "emd_1.map"), "chain": "A"}]})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(bad))
    r = snakemake("-n", cwd=tmp_path)
    assert r.returncode != 0 and "needs 'model'" in r.stdout + r.stderr


def test_dry_run_bundled_model_seeds(tmp_path):
    """The bundled model's recipe: one training run per seed, an ensemble when there are two or
    more, then the real-map scores (when that folder exists) and the export."""
    _default_config(tmp_path)
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    real = tmp_path / "real"
    real.mkdir()
    cases = tmp_path / "real_maps.yaml"  # a case file whose data folder exists
    cases.write_text("data: real\ncases:\n  - {name: a, map: a.mrc, model: a.pdb, native_resolution_a: 6}\n")
    extra_table = str(ROOT / "resources/structures_extra/structures.tsv")
    for seeds, ensemble, splits, extra in (([0, 3], True, ["train"], extra_table), ([5], False, ["train", "test"], "")):
        cfg["bundle"] = dict(cfg["bundle"], seeds=seeds, train_splits=splits, extra_structures=extra,
                             finetune={"steps": 0})  # the first stage alone (the fine-tune: the next test)
        cfg["real_maps"] = str(cases)
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
        r = snakemake("-n", "-p", "bundled_model", "--workflow-profile", str(ROOT / "workflow/profiles/default"),
                      cwd=tmp_path)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        # the stage's settings travel as one JSON file (results/config/training_set.json)
        assert f'"train_splits": {json.dumps(splits)}' in out and '"max_identity": 0.3' in out
        assert (f"--extra-structures {extra_table} " in out) == bool(extra)
        for seed in seeds:
            assert f"results/bundle/model/seed{seed}/checkpoint.pt" in out and f"--seed {seed} " in out
        assert ("results/bundle/model/ensemble.pt" in out) == ensemble
        assert "cryosse real-maps" in out and "--real-maps results/bundle/real_maps/real_maps.json" in out
    cfg["bundle"]["seeds"] = []
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "bundled_model", cwd=tmp_path)
    assert r.returncode != 0 and "seeds" in r.stdout + r.stderr
    bad = tmp_path / "extra.tsv"
    bad.write_text("entry\tfile\tchains\n../x\tx.pdb\tA\n")
    cfg["bundle"] = dict(cfg["bundle"], seeds=[0], extra_structures=str(bad))  # checked before any job runs
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "bundled_model", cwd=tmp_path)
    assert r.returncode != 0 and "extra.tsv" in r.stdout + r.stderr and "invalid entry id" in r.stdout + r.stderr
    cfg["bundle"] = dict(cfg["bundle"], seeds=[0], extra_structures="", train_splits=["train", "val"])  # val never trains
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "bundled_model", cwd=tmp_path)
    assert r.returncode != 0 and "train_splits" in r.stdout + r.stderr


def test_dry_run_bundled_model_fine_tune(tmp_path):
    """bundle.finetune: every member is trained on from its own run or, with an init ensemble,
    from that ensemble's member in the seed's place, with the fine-tune's settings and seed; the
    ensemble is made of the fine-tuned members. A realism setting that does not exist, or a
    probability above 1, is a one-line error naming the config key before any job runs."""
    _default_config(tmp_path)
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    shipped = str(ROOT / "src/cryosse/data/models/cryosse-sse-v1.1.pt")
    ft = {"steps": 300, "lr": 0.0004, "realism_ramp": "0,0.1", "seed_offsets": [50],
          "realism_params": {"segment_p": 0.5, "belt_p": 0.3}}
    for init in ("", shipped):
        cfg["bundle"] = dict(cfg["bundle"], seeds=[0, 3], finetune=dict(ft, init=init))
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
        r = snakemake("-n", "-p", "results/bundle/model/ensemble.pt", cwd=tmp_path)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert '"realism_params": {"belt_p": 0.3, "segment_p": 0.5}' in out and '"steps": 300' in out
        assert '"lr": 0.0004' in out and '"realism_ramp": [0.0, 0.1]' in out
        for k, seed in enumerate((0, 3)):
            start = shipped if init else f"results/bundle/model/seed{seed}/checkpoint.pt"
            member = f" --init-member {k}" if init else ""
            line = next(x for x in out.splitlines() if f"-o results/bundle/model/seed{seed}/finetune50 " in x)
            assert f"--seed {seed + 50} --init {start}{member} --threads 1 -o" in " ".join(line.split()), line
            assert (f"cryosse train --datalist results/bundle/data/datalist.json --config results/config/bundle_train.json "
                    f"--seed {seed} " in out) == (not init)
        assert ("cryosse ensemble results/bundle/model/seed0/finetune50/checkpoint.pt "
                "results/bundle/model/seed3/finetune50/checkpoint.pt") in out
    # two seed offsets: two fine-tunes per member, averaged (cryosse soup), and the soups ensembled
    cfg["bundle"]["finetune"]["seed_offsets"] = [0, 100]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "-p", "results/bundle/model/ensemble.pt", cwd=tmp_path)
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 0, out
    for seed in (0, 3):
        for offset in (0, 100):
            assert f"--seed {seed + offset} --init {shipped} --init-member {(0, 3).index(seed)} --threads 1" in out
        assert (f"cryosse soup results/bundle/model/seed{seed}/finetune0/checkpoint.pt "
                f"results/bundle/model/seed{seed}/finetune100/checkpoint.pt --datalist results/bundle/data/datalist.json "
                f"--threads 1 -o results/bundle/model/seed{seed}/soup.pt" in out)
    assert "cryosse ensemble results/bundle/model/seed0/soup.pt results/bundle/model/seed3/soup.pt" in out
    for bad, what in (({"segmnt_p": 0.5}, "bundle.finetune.realism_params.segmnt_p: not a realism setting "
                                         "(did you mean segment_p?)"),
                      ({"belt_p": 1.5}, "bundle.finetune.realism_params.belt_p: is a probability"),
                      ({"cut_keep": [0.8, 0.2]}, "bundle.finetune.realism_params.cut_keep: low must not be above high")):
        cfg["bundle"]["finetune"] = dict(ft, realism_params=bad)
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
        r = snakemake("-n", "results/bundle/model/ensemble.pt", cwd=tmp_path)
        assert r.returncode != 0 and what in r.stdout + r.stderr, r.stdout + r.stderr
        assert "Traceback" not in r.stdout + r.stderr
    cfg["bundle"]["finetune"] = dict(ft, init=str(tmp_path / "absent.pt"))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "results/bundle/model/ensemble.pt", cwd=tmp_path)
    assert r.returncode != 0 and "bundle.finetune.init" in r.stdout + r.stderr and "absent.pt" in r.stdout + r.stderr


def test_dry_run_fine_tune_from_one_network(tmp_path, checkpoint):
    """bundle.finetune.init a single network: every seed fine-tunes that network (no
    --init-member, which would fail at train time); an ensemble with fewer members than
    bundle.seeds is refused before any job runs, naming the config key."""
    _default_config(tmp_path)
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    ft = {"steps": 300, "seed_offsets": [0]}
    cfg["bundle"] = dict(cfg["bundle"], seeds=[0, 3], finetune=dict(ft, init=str(checkpoint)))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "-p", "results/bundle/model/ensemble.pt", cwd=tmp_path)
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 0, out
    for seed in (0, 3):
        assert f"--seed {seed} --init {checkpoint} --threads 1 -o results/bundle/model/seed{seed}/finetune0" in out
    assert "--init-member" not in out
    shipped = str(ROOT / "src/cryosse/data/models/cryosse-sse-v1.1.pt")  # an ensemble of two
    cfg["bundle"] = dict(cfg["bundle"], seeds=[0, 1, 2], finetune=dict(ft, init=shipped))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "results/bundle/model/ensemble.pt", cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "config bundle.finetune.init:" in out, out
    assert "is an ensemble of 2 networks and bundle.seeds has 3: one member per seed" in out
    assert "Traceback" not in out


def test_predict_maps_runs(tmp_path):
    """snakemake predict_maps with a given checkpoint: prediction, truth labels, scores, slices."""
    import torch

    from cryosse.prep.density import simulate_density
    from cryosse.io import read_model, write_map
    from cryosse.net.checkpoint import save_checkpoint
    from cryosse.net.network import PRESETS, build_network

    torch.manual_seed(0)
    arch = dict(PRESETS["small"], n_classes=3, preset="small")
    save_checkpoint(tmp_path / "ckpt.pt", build_network(arch),
                    {"arch": arch, "classes": ["other", "helix", "sheet"], "voxel_size_a": 2.0,
                     "data_voxel_size_a": 1.0, "tile": 32})
    model = ROOT / "src/cryosse/data/structures/1a8o.pdb.gz"
    write_map(simulate_density(read_model(model), 7.0, 1.2), tmp_path / "sim.mrc")
    _default_config(tmp_path)
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    cfg["predict"] = {"checkpoint": str(tmp_path / "ckpt.pt"),
                      "maps": [{"path": str(tmp_path / "sim.mrc"), "model": str(model), "chain": "A"}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("--cores", "2", "predict_maps", "--workflow-profile", str(ROOT / "workflow/profiles/default"),
                  cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    scores = json.loads((tmp_path / "results/predict/maps/sim/scores.json").read_text())
    assert set(scores["classes"]) >= {"helix", "sheet", "other"} and scores["residues"]["n_residues"] > 40
    assert (tmp_path / "results/predict/maps/sim/slices.png").read_bytes()[:4] == b"\x89PNG"
    for png in ("preview.png", "preview_vs_truth.png"):  # predict's preview, evaluate's true vs predicted
        assert (tmp_path / "results/predict/maps/sim" / png).read_bytes()[:4] == b"\x89PNG"
    assert "tiles" in (tmp_path / "logs/predict_map/sim.log").read_text()  # progress lines in the log
    summary = json.loads((tmp_path / "results/predict/maps/sim/summary.json").read_text())
    assert summary["zone_chains"] == ["A"] and summary["device"] in ("cpu", "cuda")


def test_dry_run_experimental_entries(tmp_path):
    """EMDB entries next to the embedded ones: fetch, prepare and crop jobs per entry, no network."""
    _default_config(tmp_path)
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    cfg["entries"] = ["1a8o", "2xdga"]
    cfg["emdb"] = {"entries": [{"emdb": "EMD-5168", "pdb": "3mfp", "chains": ["A"]}, {"emdb": "2566"}],
                   "emdb_url": "http://127.0.0.1:9/emdb"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "--workflow-profile", str(ROOT / "workflow/profiles/default"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    for job in ("fetch_entry", "prepare_map", "crop_entry", "simulate", "crop", "dataset"):
        assert f"\n{job} " in out or f"rule {job}:" in out, job
    assert "results/fetch/EMD-5168.json" in out and "results/components/EMD-2566" in out


def test_bad_emdb_id_in_config_is_rejected(tmp_path):
    cfg = {"structures": "", "emdb": {"entries": [{"emdb": "../../etc/passwd"}]}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", cwd=tmp_path)
    assert r.returncode != 0 and "emdb" in r.stdout + r.stderr


def test_bad_config_is_rejected(tmp_path):
    cfg = {"structures": str(ROOT / "src/cryosse/data/structures/structures.tsv"),
           "entries": ["../etc"]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", cwd=tmp_path)
    assert r.returncode != 0
    assert "entries" in r.stdout + r.stderr


TINY_ENTRIES = ["1a8o", "2xdga", "1ahsa", "3nbka", "1i8na", "2cvia", "3a4ra"]


def _local_structures(dest: Path, entries: list[str]) -> str:
    """The embedded table's rows of ``entries`` and their models, inside the work folder (so
    the folder is self-contained and can be moved); returns the table's relative path."""
    src = ROOT / "src/cryosse/data/structures"
    (dest / "structures").mkdir()
    lines = (src / "structures.tsv").read_text().splitlines()
    rows = [ln for ln in lines[1:] if ln.split("\t")[0] in entries]
    (dest / "structures/structures.tsv").write_text("\n".join([lines[0], *rows]) + "\n")
    for ln in rows:
        shutil.copy2(src / ln.split("\t")[1], dest / "structures")
    return "structures/structures.tsv"


#: the tiny end-to-end config (its structures table comes from :func:`tiny_project`)
TINY_CONFIG = {"entries": TINY_ENTRIES, "train": {"steps": 12, "val_every": 6, "batch": 2},
               "compare_losses": {"steps": 3}}


def tiny_project(dest: Path) -> Path:
    """A self-contained work folder with the tiny config and its structures."""
    dest.mkdir(parents=True, exist_ok=True)
    cfg = {"structures": _local_structures(dest, TINY_ENTRIES), **TINY_CONFIG}
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg))
    return dest


@pytest.mark.slow
def test_end_to_end_tiny(tiny_local_run):
    tmp_path = tiny_local_run  # the default target, run once (conftest.py); this test goes on in it
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    res = tmp_path / "results"
    manifest = read_tsv(res / "dataset/manifest.tsv")
    assert {m["id"] for m in manifest} == {f"{e}_{c}" for e, c in
                                           [("1a8o", "A"), ("2xdga", "A"), ("1ahsa", "A"), ("3nbka", "A"),
                                            ("1i8na", "A"), ("2cvia", "A"), ("3a4ra", "A")]}
    assert {m["split"] for m in manifest} == {"train", "val", "test"}
    for m in manifest:
        assert m["status"] == "ok"
        d, lab = read_map(res / "dataset" / m["density"]), read_map(res / "dataset" / m["labels"])
        assert d.data.shape == lab.data.shape and d.origin_a == lab.origin_a
        assert all(n % 8 == 0 for n in d.data.shape)
        assert 5.0 <= float(m["resolution_a"]) <= 10.0
        counts = np.bincount(lab.data.ravel().astype(np.uint8), minlength=4)
        assert [int(m[f"n_{c}"]) for c in ("background", "helix", "sheet", "other")] == counts.tolist()
    datalist = json.loads((res / "dataset/datalist.json").read_text())
    assert len(datalist["training"]) + len(datalist["validation"]) + len(datalist["test"]) == 7
    assert (res / "dataset" / datalist["test"][0]["image"]).is_file()
    assert "accepted" in (res / "dataset/report/dataset_report.md").read_text()
    # MONAI reads every datalist item with cryosse's reader, and the MONAI example of
    # docs/interop.md trains on this datalist
    if importlib.util.find_spec("monai") is not None:
        import re

        from monai.data import load_decathlon_datalist
        from monai.transforms import LoadImaged

        from cryosse.interop import MRCReader

        load = LoadImaged(keys=["image", "label"], reader=MRCReader())
        for split in ("training", "validation", "test"):
            for item in load_decathlon_datalist(str(res / "dataset/datalist.json"), True, split):
                d = load(item)
                assert d["image"].shape == d["label"].shape and np.allclose(d["image"].affine, d["label"].affine)
        example = re.findall(r"```python\n(.*?)```", (ROOT / "docs/interop.md").read_text(), re.S)[0]
        exec(compile(example.replace("results/dataset/datalist.json", str(res / "dataset/datalist.json")),
                     "docs/interop.md", "exec"), {})
    folds = read_tsv(res / "dataset/folds.tsv")
    assert {f["fold"] for f in folds if f["split"] != "test"} <= {"0", "1", "2", "3", "4"}
    report = (res / "report/report.md").read_text()
    assert "| helix |" in report and "| sheet |" in report
    f1 = json.loads((res / "report/f1.json").read_text())
    assert f1["n_samples"] == len(datalist["test"])
    for png in ("report/f1.png", "report/slice.png", "model/training_curve.png"):
        assert (res / png).read_bytes()[:4] == b"\x89PNG"
    test_id = datalist["test"][0]["id"]
    pred = read_map(res / f"predict/test/{test_id}/labels.mrc")
    truth = read_map(res / "dataset" / datalist["test"][0]["label"])
    assert pred.data.shape == truth.data.shape and np.allclose(pred.origin_a, truth.origin_a)
    # entry-level label maps sit on their simulated maps' grids
    lab, dens = read_map(res / "entries/1a8o/labels.mrc"), read_map(res / "entries/1a8o/map.mrc")
    assert lab.data.shape == dens.data.shape and lab.origin_a == dens.origin_a
    ev = json.loads((res / f"predict/test/{test_id}/scores.json").read_text())
    assert ev["residues"]["n_residues"] > 40 and "Residue level" in report
    # a second run has nothing to do, nor has a copy of the work folder elsewhere (every
    # recorded path is relative to the working folder)
    r2 = snakemake("--cores", "2", "-n", cwd=tmp_path)
    assert "Nothing to be done" in r2.stdout + r2.stderr
    moved = tmp_path.parent / "elsewhere" / "copy"
    moved.parent.mkdir()
    subprocess.run(["cp", "-a", str(tmp_path), str(moved)], check=True)
    r2m = snakemake("--cores", "2", "-n", cwd=moved)
    assert r2m.returncode == 0 and "Nothing to be done" in r2m.stdout + r2m.stderr, r2m.stdout[-3000:]
    shutil.rmtree(moved.parent)
    # predict's preview of each test sample
    assert (res / f"predict/test/{datalist['test'][0]['id']}/preview.png").read_bytes()[:4] == b"\x89PNG"
    # the loss comparison: five trainings with one seed and budget, a table and a chart
    r3 = snakemake("--cores", "2", "compare_losses", cwd=tmp_path)
    assert r3.returncode == 0, r3.stdout[-3000:] + r3.stderr[-3000:]
    table = (res / "losses/comparison.md").read_text()
    for loss in ("ce", "focal", "dice", "ce_dice", "focal_dice"):
        assert f"| {loss} |" in table
    assert (res / "losses/comparison.png").read_bytes()[:4] == b"\x89PNG"
    # the bundled model's recipe, really run at a tiny budget: training maps, one run per seed with
    # the recipe's settings (from results/config/bundle_train.json), the ensemble and the export
    cfg["bundle"] = {"steps": 4, "val_every": 2, "seeds": [0, 1], "resolutions_a": [6.0], "realism_ramp": "0.0,0.5"}
    cfg["real_maps"] = ""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r4 = snakemake("--cores", "2", "bundled_model", cwd=tmp_path)
    assert r4.returncode == 0, r4.stdout[-3000:] + r4.stderr[-3000:]
    card = json.loads((res / f"bundle/{BUNDLED_NAME}.json").read_text())
    assert card["arch"]["type"] == "ensemble" and [m["seed"] for m in card["members"]] == [0, 1]
    for m in card["members"]:
        tc = m["train_config"]
        assert (tc["preset"], tc["loss"], tc["norm"], tc["realism"], tc["steps"]) == ("resunet_fine", "dice", "local", True, 4)
        assert tc["realism_ramp"] == [0.0, 0.5]
    assert card["recipe"]["target"] == "snakemake bundled_model"
    # the second stage, really run: two fine-tunes per member from the first stage's runs, with
    # segmentation and belt realism, averaged (cryosse soup) and validated, then the ensemble
    cfg["bundle"]["finetune"] = {"steps": 2, "val_every": 1, "seed_offsets": [0, 100],
                                 "realism_params": {"segment_p": 1.0, "tight_p": 1.0, "belt_p": 1.0}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r4b = snakemake("--cores", "2", "bundled_model", cwd=tmp_path)
    assert r4b.returncode == 0, r4b.stdout[-3000:] + r4b.stderr[-3000:]
    card = json.loads((res / f"bundle/{BUNDLED_NAME}.json").read_text())
    for i, m in enumerate(card["members"]):
        assert m["init_checkpoint"]["path"] == f"results/bundle/model/seed{i}/checkpoint.pt"
        assert [x["seed"] for x in m["soup"]] == [i, i + 100] and m["metrics"]["val_helix_f1"] >= 0
        assert m["train_config"]["steps"] == 2 and m["train_config"]["realism_params"]["belt_p"] == 1.0
    # the nnU-Net export target
    r5 = snakemake("--cores", "2", "export_nnunet", cwd=tmp_path)
    assert r5.returncode == 0, r5.stdout[-3000:] + r5.stderr[-3000:]
    nn = json.loads((res / "nnunet_raw/Dataset501_cryosse/dataset.json").read_text())
    assert nn["numTraining"] == len(datalist["training"]) + len(datalist["validation"])
    # the Snakemake report embeds every figure the runs made
    r6 = snakemake("--report", "report.html", "all", "compare_losses", "bundled_model", cwd=tmp_path)
    assert r6.returncode == 0, r6.stdout[-3000:] + r6.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    figures = sorted(p.relative_to(tmp_path).as_posix() for p in res.rglob("*.png"))
    assert len(figures) >= 14, figures
    for png in figures:  # an embedded result (not just the path in a rule's code), with its caption
        assert f'"{png}": {{"name": ' in html, png
    assert "centre of mass" in html and "colour key" in html  # captions of preview.png and thumbnails.png
