"""Research tools, not part of the pipeline: what bounds a network's score on a real map
(:mod:`.diagnostics`; ``cryosse real-maps --diagnose`` and the benchmarks use them), synthetic
protein families with designed identities (:mod:`.families`, for the split's tests and bench)
and a rehearsal archive in the EMDB/PDB layouts (:mod:`.rehearse`, ``make rehearse``)."""
