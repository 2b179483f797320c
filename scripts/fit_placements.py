"""Placements of an unplaced (predicted) model in a map with cyclic symmetry, for a real-map case
(``placements`` in ``bench/real_maps.yaml``): how the EMD-6824 case's truth was made.

The global search is PowerFit's (``pip install powerfit-em``; an exhaustive rotational search
with FFT translation scans, the tool made for the job); this script does what PowerFit does not:
it takes PowerFit's best solution for one copy, makes the other copies by the map's C_n symmetry
(axis along z through ``--axis X Y``), refines the one copy's rigid transform (6 parameters, Powell)
for the correlation of the whole symmetric model's simulated density with the map, and reports
the control of the fit (the same model shifted by 5 Å along each axis) and the closest Cα contacts
between copies. It prints the ``placements`` block for the case file.

    powerfit MAP.mrc 5.8 model_trim.pdb -a 10 -n 10 -d pf          # the global search
    python scripts/fit_placements.py MAP.mrc model.pdb pf/fit_1.pdb --resolution 5.8 \\
        --min-plddt 70 --order 4 --axis 92.4 92.4

``model.pdb`` is the unplaced model; ``fit_1.pdb`` is PowerFit's placed copy of the same residues
(the transform between them is recovered by a least-squares superposition).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def _xyz(chain) -> np.ndarray:
    return np.array([[a.pos.x, a.pos.y, a.pos.z] for r in chain for a in r])


def _superpose(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) with q ≈ R p + t (Kabsch)."""
    pc, qc = p.mean(0), q.mean(0)
    u, _, vt = np.linalg.svd((p - pc).T @ (q - qc))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return r, qc - r @ pc


def main(argv=None) -> int:
    from scipy.optimize import minimize
    from scipy.spatial import cKDTree
    from scipy.spatial.transform import Rotation

    from cryosse.evaluate.zone import RealCase, case_structure
    from cryosse.io import read_map, read_model
    from cryosse.research.diagnostics import clean_simulation

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("map")
    ap.add_argument("model", help="the unplaced model")
    ap.add_argument("fit", help="PowerFit's placed copy of the same residues (fit_1.pdb)")
    ap.add_argument("--resolution", type=float, required=True)
    ap.add_argument("--min-plddt", type=float)
    ap.add_argument("--order", type=int, default=1, help="cyclic symmetry order of the map (C_n)")
    ap.add_argument("--axis", type=float, nargs=2, default=None, metavar=("X", "Y"),
                    help="where the symmetry axis (along z) crosses the xy plane, Å (default: the box centre)")
    ap.add_argument("--max-evaluations", type=int, default=400, help="of the refinement")
    a = ap.parse_args(argv)

    m = read_map(a.map)
    unplaced = read_model(a.model)  # read once; every evaluation places copies of it
    trimmed = case_structure(RealCase("fit", a.map, a.model, a.resolution, min_plddt=a.min_plddt), unplaced)
    p, q = _xyz(trimmed[0][0]), _xyz(read_model(a.fit)[0][0])
    if p.shape != q.shape:
        sys.exit(f"{a.fit}: {len(q)} atoms, but {a.model} after --min-plddt has {len(p)}: not the same residues")
    r0, t0 = _superpose(p, q)
    size = np.asarray(m.shape_xyz) * np.asarray(m.voxel_size_a)
    axis = np.array([*(a.axis if a.axis else (np.asarray(m.origin_a[:2]) + size[:2] / 2)), 0.0])
    sym = [Rotation.from_euler("z", 360.0 * k / a.order, degrees=True).as_matrix() for k in range(a.order)]
    centre = r0 @ p.mean(0) + t0

    def placements(x):
        d = Rotation.from_rotvec(x[:3]).as_matrix()
        r, t = d @ r0, d @ (t0 - centre) + centre + x[3:]
        return [(s @ r, s @ (t - axis) + axis) for s in sym]

    def structure(pl, shift=(0.0, 0.0, 0.0)):
        case = RealCase("fit", a.map, a.model, a.resolution, min_plddt=a.min_plddt,
                        placements=tuple((tuple(map(tuple, r)), tuple(t + np.asarray(shift))) for r, t in pl))
        return case_structure(case, unplaced)

    def cc(st):
        return float(np.corrcoef(m.data.ravel(), clean_simulation(m, st, a.resolution).data.ravel())[0, 1])

    start = cc(structure(placements(np.zeros(6))))
    res = minimize(lambda x: -cc(structure(placements(x))), np.zeros(6), method="Powell",
                   options={"xtol": 1e-3, "ftol": 1e-4, "maxfev": a.max_evaluations})
    best = placements(res.x)
    print(f"# correlation with the map: {start:.3f} (PowerFit) -> {-res.fun:.3f} (refined, {res.nfev} evaluations)")
    shifts = [cc(structure(best, s)) for s in ((5, 0, 0), (0, 5, 0), (0, 0, 5))]
    print(f"# control, the model shifted 5 Å along x, y, z: {', '.join(f'{v:.3f}' for v in shifts)}")
    st = structure(best)
    ca = [np.array([[at.pos.x, at.pos.y, at.pos.z] for r in ch for at in r if at.name == "CA"]) for ch in st[0]]
    for i in range(1, len(ca)):
        d, _ = cKDTree(ca[i]).query(ca[0])
        print(f"# copy 1 vs copy {i + 1}: {int((d < 3).sum())} Cα pairs closer than 3 Å")
    print("placements:")
    for r, t in best:
        rot = ", ".join("[" + ", ".join(f"{v:.6f}" for v in row) + "]" for row in r)
        print(f"  - {{rotation: [{rot}], translation: [{', '.join(f'{v:.4f}' for v in t)}]}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
