"""Research diagnostics, not part of the pipeline: what bounds a network's score on a real map
(:mod:`.diagnostics`). ``cryosse real-maps --diagnose`` and the benchmarks use them."""
