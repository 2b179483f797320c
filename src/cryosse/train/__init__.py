"""The trainer: 3D U-Net, the paper's five losses, the training loop, metrics, model card.

Nothing before this stage imports it; :mod:`cryosse.predict` and :mod:`cryosse.evaluate`
build on it.
"""
