# Config validation (schema defaults filled in), the structures table, input functions.
import json
import os
import re
from pathlib import Path

from snakemake.utils import validate

from cryosse.fetch import read_query_table
from cryosse.io import read_tsv
from cryosse.workflow import experimental_entries, load_structures, predict_maps, resolution_for, sample_id


validate(config, "../schemas/config.schema.yaml")

# simulated entries (structures table; "" for none) and experimental ones (EMDB, see fetch.smk)
STRUCTURES = (
    {e.entry: e for e in load_structures(config["structures"], config["entries"])}
    if config["structures"]
    else {}
)
ENTRIES = list(STRUCTURES)
SAMPLES = [sample_id(e.entry, c) for e in STRUCTURES.values() for c in e.chains]
SIM = config["simulate"]
COMP = config["components"]
PREDICT = config["predict"]
PREDICT_MAPS = predict_maps(PREDICT["maps"])


EMDB = config["emdb"]
QUERY = EMDB["query"]
EXP = config["experimental"]
QUERY_TABLE = EMDB["table"] or "resources/emdb_query.tsv"
EXPERIMENTAL = experimental_entries(EMDB["entries"], simulated=ENTRIES)
EMDB_ID = r"EMD-[0-9]{4,5}"
if any(re.fullmatch(EMDB_ID, e) for e in ENTRIES):
    raise ValueError("structures table: entry ids like EMD-NNNN are reserved for experimental entries")


wildcard_constraints:
    entry=r"[A-Za-z0-9][A-Za-z0-9-]*",
    chain=r"[A-Za-z0-9]+",
    sample=r"[A-Za-z0-9][A-Za-z0-9-]*_[A-Za-z0-9]+",
    loss=r"ce|focal|dice|ce_dice|focal_dice",
    map_id=r"[A-Za-z0-9][A-Za-z0-9_-]*",


    emdb=EMDB_ID,


def model_path(wildcards):
    return STRUCTURES[wildcards.entry].path


def pdb_id(wildcards):
    return STRUCTURES[wildcards.entry].pdb_id


def resolution(wildcards):
    lo, hi = SIM["resolution_a"]
    return resolution_for(wildcards.entry, SIM["seed"], lo, hi)


def query_rows():
    """Rows of the query table: after the query checkpoint when `emdb.query.enabled`, else
    the saved table `emdb.table` (if any)."""
    if QUERY["enabled"]:
        return read_query_table(checkpoints.query_emdb.get().output[0])
    return read_query_table(EMDB["table"]) if EMDB["table"] else []


def experimental():
    return experimental_entries(EMDB["entries"], query_rows(), ENTRIES)


def all_components(wildcards):
    return expand("results/components/{sample}", sample=SAMPLES) + expand(
        "results/components/{emdb}", emdb=list(experimental())
    )


def all_prepared(wildcards):
    return expand("results/experimental/{emdb}", emdb=list(experimental()))


def structures_table(wildcards):
    return [config["structures"]] if STRUCTURES else []


def split_sources(wildcards, input):
    args = []
    if STRUCTURES:
        args += ["--structures", input.table[0], "--sse-dir", "results/sse", "--entries", ",".join(ENTRIES)]
    if input.prepared:
        args += ["--prepared", *input.prepared]
    return " ".join(args)


def _known_entry(emdb):
    """An experimental entry's settings, without waiting for the query (the table exists
    whenever a job of that entry runs)."""
    if emdb in EXPERIMENTAL:
        return EXPERIMENTAL[emdb]
    table = QUERY_TABLE if QUERY["enabled"] else EMDB["table"]
    rows = read_query_table(table) if table and Path(table).is_file() else []
    return experimental_entries([], rows).get(emdb)


def fetch_pdb_arg(wildcards):
    e = _known_entry(wildcards.emdb)
    return f"--pdb {e.pdb}" if e and e.pdb else ""


def chains_arg(wildcards):
    e = _known_entry(wildcards.emdb)
    return f"--chains {','.join(e.chains)}" if e and e.chains else ""


def query_date_args(wildcards):
    args = []
    if QUERY["released_after"]:
        args.append(f"--released-after {QUERY['released_after']}")
    if QUERY["released_before"]:
        args.append(f"--released-before {QUERY['released_before']}")
    return " ".join(args)


def test_samples(wildcards):
    """Accepted test samples, known once the data set is built (checkpoint)."""
    manifest = checkpoints.dataset.get().output.manifest
    return [r["id"] for r in read_tsv(manifest) if r["split"] == "test" and r["status"] == "ok"]


def test_evaluations(wildcards):
    return expand("results/evaluation/{sample}.json", sample=test_samples(wildcards))


BUNDLE = config["bundle"]
# validated now (one-line error naming the table); its entries only ever train the bundled model
BUNDLE_EXTRA = load_structures(BUNDLE["extra_structures"]) if BUNDLE["extra_structures"] else []
if BUNDLE_EXTRA and not config["structures"]:
    raise ValueError("bundle.extra_structures needs the structures table: its splits decide what the extra entries are screened against")


def training_set_input(wildcards):
    inputs = {"table": config["structures"], "splits": "results/dataset/splits.tsv"}
    if BUNDLE_EXTRA:
        inputs["extra"] = BUNDLE["extra_structures"]
    return inputs


def have_real_maps():
    return bool(config["real_maps"]) and os.path.isdir(config["real_maps"])


def bundle_targets(wildcards):
    """The exported model, and its scores on the real maps when they are present."""
    targets = ["results/bundle/cryosse-sse-v1.pt"]
    if have_real_maps():
        targets.append("results/bundle/real_maps/real_maps.md")
    return targets


def bundle_checkpoint(wildcards=None):
    """The recipe's model: the one run's best checkpoint, or the ensemble of the seeds' runs."""
    seeds = BUNDLE["seeds"]
    if len(seeds) == 1:
        return f"results/bundle/model/seed{seeds[0]}/checkpoint.pt"
    return "results/bundle/model/ensemble.pt"


def bundle_export_input(wildcards):
    inputs = {"checkpoint": bundle_checkpoint()}
    if have_real_maps():
        inputs["scores"] = "results/bundle/real_maps/real_maps.json"
    return inputs

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


# A sample "<entry>_<chain>" of an experimental entry lives in the entry's component folder,
# results/components/<entry>/<entry>_<chain>, and its model and DSSP in results/experimental/<entry>.


def _entry_of(wildcards):
    return wildcards.entry if "entry" in wildcards.keys() else wildcards.sample.rsplit("_", 1)[0]


def _experimental(wildcards):
    return re.fullmatch(EMDB_ID, _entry_of(wildcards)) is not None


def component_input(wildcards):
    return f"results/components/{_entry_of(wildcards)}" if _experimental(wildcards) else (
        f"results/components/{_entry_of(wildcards)}_{wildcards.chain}"
        if "chain" in wildcards.keys() else f"results/components/{wildcards.sample}")


def component_dir(wildcards):
    sample = wildcards.sample if "sample" in wildcards.keys() else f"{wildcards.entry}_{wildcards.chain}"
    return f"results/components/{_entry_of(wildcards)}/{sample}" if _experimental(wildcards) else (
        f"results/components/{sample}")


def model_input(wildcards):
    return f"results/experimental/{wildcards.entry}" if _experimental(wildcards) else model_path(wildcards)


def model_file(wildcards):
    return f"results/experimental/{wildcards.entry}/model.cif" if _experimental(wildcards) else (
        model_path(wildcards))


def sse_input(wildcards):
    return f"results/experimental/{wildcards.entry}" if _experimental(wildcards) else (
        f"results/sse/{wildcards.entry}.tsv")


def sse_file(wildcards):
    return f"results/experimental/{wildcards.entry}/sse.tsv" if _experimental(wildcards) else (
        f"results/sse/{wildcards.entry}.tsv")


def real_maps_arg(wildcards, input):
    return f"--real-maps {input.scores}" if "scores" in input.keys() else ""
