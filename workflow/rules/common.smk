# Config validation (schema defaults filled in), the structures table, input functions.
import os

from snakemake.utils import validate

from cryosse.io import read_tsv
from cryosse.workflow import load_structures, resolution_for, sample_id


validate(config, "../schemas/config.schema.yaml")

STRUCTURES = {e.entry: e for e in load_structures(config["structures"], config["entries"])}
ENTRIES = list(STRUCTURES)
SAMPLES = [sample_id(e.entry, c) for e in STRUCTURES.values() for c in e.chains]
SIM = config["simulate"]
COMP = config["components"]


wildcard_constraints:
    entry=r"[A-Za-z0-9][A-Za-z0-9-]*",
    chain=r"[A-Za-z0-9]+",
    sample=r"[A-Za-z0-9][A-Za-z0-9-]*_[A-Za-z0-9]+",
    loss=r"ce|focal|dice|ce_dice|focal_dice",


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
