"""cryosse: secondary-structure segmentation data and models for medium-resolution cryo-EM maps.

Stages, in the order data flows through them: :mod:`cryosse.fetch` (EMDB/PDB downloads),
:mod:`cryosse.prep` (structures, density, experimental maps, DSSP, labels, components,
splits, data set), :mod:`cryosse.net` (networks, checkpoints, sliding window),
:mod:`cryosse.train`, :mod:`cryosse.inference` (predict any map), :mod:`cryosse.evaluate`;
:mod:`cryosse.io` (maps, models, files), :mod:`cryosse.ids` and :mod:`cryosse.metrics` are
shared; :mod:`cryosse.cli` is the command line and :mod:`cryosse.workflow` what the Snakefile
calls.
"""
__version__ = "0.1.0"

#: The name of the model that ships with cryosse: ``data/models/{BUNDLED_NAME}.pt`` in the package,
#: ``results/bundle/{BUNDLED_NAME}.pt`` from ``snakemake bundled_model`` (one place to change when
#: a new model ships).
BUNDLED_NAME = "cryosse-sse-v1.2"

#: Version of the tensor data contract (see docs/data_contract.md).
DATA_CONTRACT_VERSION = "1.1"

#: Label codes of the data contract.
BACKGROUND, HELIX, SHEET, OTHER = 0, 1, 2, 3
LABEL_NAMES = {BACKGROUND: "background", HELIX: "helix", SHEET: "sheet", OTHER: "other"}
