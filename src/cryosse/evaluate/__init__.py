"""Evaluation: scores of predicted label maps (:mod:`.scores`), their figures and reports
(:mod:`.figures`, :mod:`.report`), a checkpoint on a datalist split (:mod:`.scoring`), a map
scored in its fitted model's zone (:mod:`.zone`) and the real-map benchmark (:mod:`.realmaps`).
"""
from .figures import write_slice_figure
from .report import compare_scores, write_report
from .scores import evaluate_maps, evaluate_residues, format_table, residue_truth, same_grid
from .scoring import score_checkpoint

__all__ = ["evaluate_maps", "format_table", "write_report", "same_grid", "evaluate_residues",
           "score_checkpoint", "compare_scores", "write_slice_figure", "residue_truth"]
