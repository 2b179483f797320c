"""Inference: helix and sheet probabilities and a label map for any map, on its own grid.

:mod:`.predictor` segments a loaded map (:func:`predict_map`), :mod:`.memory` plans the
peak memory before any work, :mod:`.outputs` writes the files of ``cryosse predict``.
"""
from .memory import GB, MemoryPlan, cpu_threads, plan_memory
from .outputs import BUNDLED_CHECKPOINT, OUTPUT_FILES, predict_to_dir, write_view_script
from .predictor import FlipAverage, PredictConfig, Prediction, Zone, chain_zone, predict_map

__all__ = ["PredictConfig", "cpu_threads", "Zone", "Prediction", "MemoryPlan", "chain_zone", "plan_memory",
           "predict_map", "write_view_script", "predict_to_dir", "OUTPUT_FILES", "BUNDLED_CHECKPOINT",
           "FlipAverage", "GB"]
