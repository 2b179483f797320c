"""A map scored in the zone of its fitted model: the truth is the label rule applied on the
map's own grid (DSSP classes of the nearest heavy atom within 3 Å), and scores count only
voxels within ``SCORE_RADIUS_A`` (6 Å) of the model's atoms: the rest of a map (neighbouring
subunits without a model, solvent) has no truth. Residue F1 is the majority vote of the
voxels within 3 Å of each residue's heavy atoms. A case may low-pass a high-resolution map
to a medium resolution first (:func:`lowpass`)."""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..inference.predictor import PredictConfig, predict_map
from ..io import Map, protein_atoms, read_map, read_model
from ..metrics import confusion, prf_from_confusion, to_three_class
from .scores import evaluate_maps, evaluate_residues

__all__ = ["RealCase", "case_structure", "SCORE_RADIUS_A", "lowpass", "load_case", "score_case", "diagnose_case"]

#: Scores count voxels within this distance (Å) of the model's heavy atoms.
SCORE_RADIUS_A = 6.0


@dataclass(frozen=True)
class RealCase:
    name: str
    map: str               # relative to the data folder
    model: str
    native_resolution_a: float
    lowpass_a: float | None = None   # low-pass to this resolution first (None: native map)
    has_sheet: bool = True            # sheets scored (the map's model has sheet)
    note: str = ""
    set: str = "report"               # "selection" (may choose recipes) or "report" (never)
    min_plddt: float | None = None    # a predicted model: keep residues whose pLDDT (B) is at least this
    placements: tuple = ()            # copies of an unplaced model fitted into the map: (R 3x3, t 3), x' = R x + t


def case_structure(case: RealCase, path):
    """The case's model as scored: read from ``path`` (or a copy of ``path`` when it is a gemmi
    structure already read), residues below ``min_plddt`` removed, and, when the case gives
    placements (a model fitted into the map as rigid copies of an unplaced one), one chain per
    placement (A, B, ...: the copies of the model's first chain)."""
    import gemmi

    st = path.clone() if isinstance(path, gemmi.Structure) else read_model(path)
    if case.min_plddt is not None:
        for ch in st[0]:
            for i in reversed(range(len(ch))):
                ca = ch[i].find_atom("CA", "*")
                if (ca.b_iso if ca else min(a.b_iso for a in ch[i])) < case.min_plddt:
                    del ch[i]
        st.remove_empty_chains()
    if case.placements:
        src = st[0][0]
        model = gemmi.Model("1")
        for k, (rot, t) in enumerate(case.placements):
            ch = src.clone()
            ch.name = chr(ord("A") + k)
            tr = gemmi.Transform(gemmi.Mat33([list(map(float, r)) for r in rot]), gemmi.Vec3(*map(float, t)))
            for res in ch:
                for a in res:
                    a.pos = gemmi.Position(tr.apply(a.pos))
            model.add_chain(ch)
        del st[:]
        st.add_model(model)
        st.setup_entities()
    return st


def lowpass(m: Map, resolution_a: float, native_resolution_a: float = 0.0) -> Map:
    """Gaussian low-pass to ``resolution_a`` with the simulation's convention
    (sigma = 0.225 x resolution), removing what the map's own resolution already blurs."""
    from scipy.ndimage import gaussian_filter

    sigma_a = 0.225 * math.sqrt(max(resolution_a ** 2 - native_resolution_a ** 2, 0.0))
    sigma_vox = [sigma_a / v for v in m.voxel_size_a[::-1]]  # data is [z, y, x]
    return m.with_data(gaussian_filter(m.data.astype(np.float32), sigma_vox, mode="nearest"))


def load_case(case: RealCase, data_dir: str | os.PathLike, raw: Map | None = None):
    """(map as scored, structure, DSSP residues, truth label map on the map's grid, score mask).
    ``raw``: the case's map as read, when the caller has it already (it is not read again)."""
    from ..prep.labels import atom_classes, label_voxels, within
    from ..prep.sse import assign_sse

    root = Path(data_dir)
    m = read_map(root / case.map) if raw is None else raw
    if case.lowpass_a:
        m = lowpass(m, case.lowpass_a, case.native_resolution_a)
    st = case_structure(case, root / case.model)
    sse = assign_sse(st)
    atoms = protein_atoms(st)
    truth = label_voxels(m, atoms, atom_classes(atoms, sse))
    mask = within(m, atoms.xyz, SCORE_RADIUS_A)
    if not mask.any():
        raise InputError(root / case.map, "the model lies outside the map")
    return m, st, sse, truth, mask


def score_case(case: RealCase, data_dir, net, card: dict, *, device: str | None = None,
               tta: bool = False, diagnose: bool = False) -> dict:
    """Predict one real map and score it against its model (voxel and residue F1).

    With ``diagnose``, also: the voxel F1 on a clean simulation of the fitted model on the
    same grid (:func:`clean_simulation`: what is left when realism is perfect), the Cα-trace
    oracle (:func:`trace_oracle`: what a perfect trace with perfect classes reaches under the
    label rule) and the working grid's ceiling (:func:`grid_ceiling`)."""

    m, st, sse, truth, mask = load_case(case, data_dir)
    t0 = time.time()
    pred = predict_map(m, net, card, PredictConfig(device=device, tta=tta))
    seconds = time.time() - t0
    vox = evaluate_maps(pred.labels, truth, mask)
    diagnosis = None
    if diagnose:
        diagnosis = diagnose_case(case, m, st, sse, truth, mask, net, card, device=device, tta=tta)
    res = evaluate_residues(pred.labels, st, None, sse)
    # the trivial references: every scored voxel helix / every one sheet
    t3 = to_three_class(truth.data)
    trivial = {}
    for name, code in (("all_helix", 1), ("all_sheet", 2)):
        cm = confusion(np.full(t3.shape, code, np.uint8), t3, mask)
        trivial[name] = prf_from_confusion(cm)["helix" if code == 1 else "sheet"]["f1"]
    return {"case": case.name, "note": case.note, "has_sheet": case.has_sheet,
            "voxel": vox["classes"], "voxel_confusion": vox["confusion"],
            "residue": res["classes"], "trivial": trivial, "predict_s": round(seconds, 2),
            **({"diagnosis": diagnosis} if diagnosis else {}), "_arrays": (m, truth, mask, pred)}


def diagnose_case(case, m: Map, structure, sse, truth: Map, mask: np.ndarray, net, card: dict, *,
                  device: str | None = None, tta: bool = False) -> dict:
    """Voxel F1 (helix, sheet) of the network on a clean simulation of the fitted model on the
    same grid, of the Cα-trace oracle and of the working grid's ceiling."""
    from ..research.diagnostics import clean_simulation, grid_ceiling, trace_oracle

    sim = clean_simulation(m, structure, case.lowpass_a or case.native_resolution_a)
    sim_pred = predict_map(sim, net, card, PredictConfig(device=device, tta=tta))
    cs = evaluate_maps(sim_pred.labels, truth, mask)["classes"]
    return {"clean_simulation": {"helix": cs["helix"]["f1"], "sheet": cs["sheet"]["f1"]},
            "trace_oracle": trace_oracle(m, structure, sse, truth, mask),
            "grid_ceiling": grid_ceiling(truth, mask, float(card["voxel_size_a"]))}
