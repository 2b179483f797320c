"""Data preparation, in the order data flows: structures tables (:mod:`.structures`), density
simulated from models or experimental maps resampled and checked (:mod:`.density`,
:mod:`.experimental`, :mod:`.realism`), secondary structure (:mod:`.sse`), voxel labels
(:mod:`.labels`), chain components (:mod:`.components`, :mod:`.crop`), leakage-free splits
(:mod:`.split`), the manifest and datalist (:mod:`.dataset`) and its report (:mod:`.report`),
and the bundled model's whole-entry training maps (:mod:`.trainingset`).

Nothing here imports :mod:`cryosse.train`, :mod:`cryosse.net` or :mod:`cryosse.inference`.
"""
