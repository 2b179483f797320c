"""The neural network and what training and prediction share about it: architectures
(:mod:`.network`), checkpoints with their model cards, loaded with ``weights_only=True``
(:mod:`.checkpoint`), the sliding-window inference (:mod:`.window`), the input
normalisation (:mod:`.inputs`) and where the network runs (:mod:`.device`)."""
