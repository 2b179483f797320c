# Config validation (schema defaults filled in), the structures table, input functions.
import os

from snakemake.utils import validate

from cryosse.io import read_tsv
from cryosse.workflow import load_structures, predict_maps, resolution_for, sample_id


validate(config, "../schemas/config.schema.yaml")

STRUCTURES = {e.entry: e for e in load_structures(config["structures"], config["entries"])}
ENTRIES = list(STRUCTURES)
SAMPLES = [sample_id(e.entry, c) for e in STRUCTURES.values() for c in e.chains]
SIM = config["simulate"]
COMP = config["components"]
PREDICT = config["predict"]
PREDICT_MAPS = predict_maps(PREDICT["maps"])


wildcard_constraints:
    entry=r"[A-Za-z0-9][A-Za-z0-9-]*",
    chain=r"[A-Za-z0-9]+",
    sample=r"[A-Za-z0-9][A-Za-z0-9-]*_[A-Za-z0-9]+",
    loss=r"ce|focal|dice|ce_dice|focal_dice",
    map_id=r"[A-Za-z0-9][A-Za-z0-9_-]*",


def model_path(wildcards):
    return STRUCTURES[wildcards.entry].path


def pdb_id(wildcards):
    return STRUCTURES[wildcards.entry].pdb_id


def resolution(wildcards):
    lo, hi = SIM["resolution_a"]
    return resolution_for(wildcards.entry, SIM["seed"], lo, hi)


def all_components(wildcards):
    return expand("results/components/{sample}", sample=SAMPLES)


def test_samples(wildcards):
    """Accepted test samples, known once the data set is built (checkpoint)."""
    manifest = checkpoints.dataset.get().output.manifest
    return [r["id"] for r in read_tsv(manifest) if r["split"] == "test" and r["status"] == "ok"]


def test_evaluations(wildcards):
    return expand("results/evaluation/{sample}.json", sample=test_samples(wildcards))


BUNDLE = config["bundle"]


def bundle_targets(wildcards):
    """The recipe's checkpoint, and its scores on the real maps when they are present."""
    targets = ["results/bundle/model/checkpoint.pt"]
    if config["real_maps"] and os.path.isdir(config["real_maps"]):
        targets.append("results/bundle/real_maps/real_maps.md")
    return targets

def predict_map_input(wildcards):
    return PREDICT_MAPS[wildcards.map_id]["path"]


def predict_model_input(wildcards):
    return PREDICT_MAPS[wildcards.map_id]["model"]


def predict_args(wildcards):
    """--model/--chain/--contour options of one configured map."""
    m = PREDICT_MAPS[wildcards.map_id]
    args = []
    if m.get("model"):
        args += ["--model", m["model"]] + (["--chain", m["chain"]] if m.get("chain") else [])
    if m.get("contour") is not None:
        args += ["--contour", str(m["contour"])]
    return " ".join(args)


def label_chain_args(wildcards):
    chain = PREDICT_MAPS[wildcards.map_id].get("chain")
    return f"--chains {chain}" if chain else ""


def evaluate_chain_args(wildcards):
    chain = PREDICT_MAPS[wildcards.map_id].get("chain")
    return f"--chain {chain}" if chain else ""


def predict_targets(wildcards):
    """Every configured map's prediction, and its evaluation when it has a model."""
    out = [f"results/predict/{i}/summary.json" for i in PREDICT_MAPS]
    return out + [f"results/evaluate_map/{i}/scores.json" for i, m in PREDICT_MAPS.items() if m.get("model")]
