"""cryosse: secondary-structure segmentation data and models for medium-resolution cryo-EM maps.

Stages, in the order data flows through them: :mod:`cryosse.io` (maps and models),
:mod:`cryosse.fetch` (EMDB/PDB downloads), :mod:`cryosse.density` (simulate, resample,
normalise), :mod:`cryosse.sse` (DSSP), :mod:`cryosse.labels`, :mod:`cryosse.experimental`
(experimental maps: preparation and quality checks), :mod:`cryosse.components`, :mod:`cryosse.dataset`, :mod:`cryosse.train`,
:mod:`cryosse.predict`, :mod:`cryosse.evaluate`; :mod:`cryosse.cli` is the command line.
"""
__version__ = "0.1.0"

#: Version of the tensor data contract (see README, "Data contract").
DATA_CONTRACT_VERSION = "1.0"

#: Label codes of the data contract.
BACKGROUND, HELIX, SHEET, OTHER = 0, 1, 2, 3
LABEL_NAMES = {BACKGROUND: "background", HELIX: "helix", SHEET: "sheet", OTHER: "other"}
