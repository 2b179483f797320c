# Config validation (schema defaults filled in), the structures table, the one artifact layout of
# every entry (cryosse.workflow.Layout) and the input functions.
import json
import os

from snakemake.utils import validate

from cryosse import BUNDLED_NAME, ids
from cryosse.fetch import read_query_table
from cryosse.io import read_tsv
from cryosse.train.config import LOSSES
from cryosse.workflow import (Layout, STAGES, check_config, experimental_entries, finetune_members,
                              is_experimental, load_structures, predict_maps, resolution_for, stage_configs)


validate(config, "../schemas/config.schema.yaml")
check_config(config)  # what the schema cannot say: low < high, fractions > 0, paths, URLs (cryosse.io.rules)

# simulated entries (structures table; "" for none) and experimental ones (EMDB, see fetch.smk)
STRUCTURES = (
    {e.entry: e for e in load_structures(config["structures"], config["entries"])}
    if config["structures"]
    else {}
)
ENTRIES = list(STRUCTURES)
SIM = config["simulate"]
PREDICT = config["predict"]
PREDICT_MAPS = predict_maps(PREDICT["maps"])
SETTINGS = stage_configs(config)
LAYOUT = Layout(STRUCTURES)

EMDB = config["emdb"]
QUERY = EMDB["query"]
QUERY_TABLE = EMDB["table"] or "resources/emdb_query.tsv"
EXPERIMENTAL = experimental_entries(EMDB["entries"], simulated=ENTRIES)
if any(is_experimental(e) for e in ENTRIES):
    raise ValueError("structures table: entry ids like EMD-NNNN are reserved for experimental entries")


wildcard_constraints:
    entry=rf"(?!EMD-[0-9]){ids.ENTRY}",
    emdb=ids.EMDB,
    any_entry=rf"{ids.ENTRY}",
    chain=ids.CHAIN,
    loss="|".join(LOSSES),
    map_id=ids.MAP,
    stage="|".join(STAGES),


def stage_config(stage):
    """The settings file of a stage (rule stage_config writes it)."""
    return f"results/config/{stage}.json"


def model_path(wildcards):
    return STRUCTURES[wildcards.entry].path


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
    return [LAYOUT.components(e) for e in ENTRIES + list(experimental())]


def all_prepared(wildcards):
    return [LAYOUT.entry_dir(e) for e in experimental()]


def structures_table(wildcards):
    return [config["structures"]] if STRUCTURES else []


def split_sources(wildcards, input):
    args = []
    if STRUCTURES:
        args += ["--structures", input.table[0], "--sse-dir", LAYOUT.ENTRIES, "--entries", ",".join(ENTRIES)]
    if input.prepared:
        args += ["--prepared", *input.prepared]
    return args


def _known_entry(emdb):
    """An experimental entry's settings, without waiting for the query (the table exists
    whenever a job of that entry runs)."""
    if emdb in EXPERIMENTAL:
        return EXPERIMENTAL[emdb]
    table = QUERY_TABLE if QUERY["enabled"] else EMDB["table"]
    rows = read_query_table(table) if table and os.path.isfile(table) else []
    return experimental_entries([], rows).get(emdb)


def fetch_pdb_arg(wildcards):
    e = _known_entry(wildcards.emdb)
    return ["--pdb", e.pdb] if e and e.pdb else []


def chains_arg(wildcards):
    e = _known_entry(wildcards.emdb)
    return ["--chain", ",".join(e.chains)] if e and e.chains else []


def test_samples(wildcards):
    """Accepted test samples, known once the data set is built (checkpoint)."""
    manifest = checkpoints.dataset.get().output.manifest
    return [r["id"] for r in read_tsv(manifest) if r["split"] == "test" and r["status"] == "ok"]


def test_evaluations(wildcards):
    return [f"results/predict/test/{s}/scores.json" for s in test_samples(wildcards)]


BUNDLE = config["bundle"]
# validated now (one-line error naming the table); its entries only ever train the bundled model
BUNDLE_EXTRA = load_structures(BUNDLE["extra_structures"]) if BUNDLE["extra_structures"] else []
if BUNDLE_EXTRA and not config["structures"]:
    raise ValueError("bundle.extra_structures needs the structures table: its splits decide what the extra entries are screened against")


def training_set_input(wildcards):
    inputs = {"table": config["structures"], "splits": "results/dataset/splits.tsv",
              "settings": stage_config("training_set")}
    if BUNDLE_EXTRA:
        inputs["extra"] = BUNDLE["extra_structures"]
    return inputs


def have_real_maps():
    """The real-map cases (a YAML file) are configured and their data folder exists."""
    cases = config["real_maps"]
    if not cases or not os.path.isfile(cases):
        return False
    from cryosse.evaluate.realmaps import read_cases

    data = read_cases(cases)[1]
    return bool(data and data.is_dir())


def real_map_names():
    """The real-map cases' names (each gets a figure), none when they are absent."""
    if not have_real_maps():
        return []
    from cryosse.evaluate.realmaps import read_cases

    return [c.name for c in read_cases(config["real_maps"])[0]]


def bundle_targets(wildcards):
    """The exported model, and its scores on the real maps when they are present."""
    targets = [f"results/bundle/{BUNDLED_NAME}.pt"]
    if have_real_maps():
        targets.append("results/bundle/real_maps/real_maps.md")
    return targets


FINETUNE = BUNDLE["finetune"]


def bundle_run(seed):
    """The first stage's run of a seed (rule bundle_train)."""
    return f"results/bundle/model/seed{seed}/checkpoint.pt"


def finetunes(seed):
    """The seed's fine-tunes, one per bundle.finetune.seed_offsets."""
    return [f"results/bundle/model/seed{seed}/finetune{o}/checkpoint.pt" for o in FINETUNE["seed_offsets"]]


def bundle_member(seed):
    """A member of the recipe's model: the seed's run; with a fine-tune, its fine-tune, or the
    mean weights of its fine-tunes (cryosse soup) when there are several seed offsets."""
    if not FINETUNE["steps"]:
        return bundle_run(seed)
    tunes = finetunes(seed)
    return tunes[0] if len(tunes) == 1 else f"results/bundle/model/seed{seed}/soup.pt"


def finetune_init(wildcards):
    """What the seed's fine-tune starts from: its own run, or a member of bundle.finetune.init."""
    return FINETUNE["init"] or bundle_run(wildcards.seed)


FINETUNE_MEMBERS = finetune_members(config)  # seed -> member of bundle.finetune.init (None: a single network)


def finetune_member(wildcards):
    """``--init-member i`` when bundle.finetune.init is an ensemble (i: the seed's place in
    bundle.seeds); nothing for a single network or the seed's own run."""
    member = FINETUNE_MEMBERS.get(int(wildcards.seed))
    return [] if member is None else ["--init-member", str(member)]


def bundle_trained(wildcards=None):
    """The recipe's trained model: the one member, or the ensemble of the seeds' members."""
    seeds = BUNDLE["seeds"]
    if len(seeds) == 1:
        return bundle_member(seeds[0])
    return "results/bundle/model/ensemble.pt"


def bundle_checkpoint(wildcards=None):
    """The recipe's model: the trained one, calibrated on the real maps' selection set when
    bundle.calibrate is on and the real maps are present."""
    if BUNDLE["calibrate"] and have_real_maps():
        return "results/bundle/model/calibrated.pt"
    return bundle_trained()


def bundle_export_input(wildcards):
    inputs = {"checkpoint": bundle_checkpoint()}
    if have_real_maps():
        inputs["scores"] = "results/bundle/real_maps/real_maps.json"
    return inputs


def real_maps_arg(wildcards, input):
    return ["--real-maps", input.scores] if "scores" in input.keys() else []


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
    return args


def map_chain_args(wildcards):
    chain = PREDICT_MAPS[wildcards.map_id].get("chain")
    return ["--chain", chain] if chain else []


def predict_targets(wildcards):
    """Every configured map's prediction, and its evaluation when it has a model."""
    out = [f"results/predict/maps/{i}/summary.json" for i in PREDICT_MAPS]
    return out + [f"results/predict/maps/{i}/scores.json" for i, m in PREDICT_MAPS.items() if m.get("model")]


def folder_of(key):
    """A params function: the folder of output ``key`` (shell lines derive folders from it)."""
    return lambda wildcards, output: os.path.dirname(output[key])

