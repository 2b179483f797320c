"""The trainer: the paper's five losses, training samples, patch sampling with augmentation and
realism, the training loop with exact resume, the training curve and the model card.

It builds on :mod:`cryosse.net` (the networks, checkpoints, sliding window and input
normalisation that prediction shares); nothing in :mod:`cryosse.prep` imports it.
"""
