"""Diagnostics of the real-map benchmark: how far a network is from what the map and the label
rule allow.

- :func:`clean_simulation`: the fitted model simulated without noise on the map's grid (what
  the network would get if the experiment were perfect);
- :func:`trace_oracle`: the Cα-trace oracle (exact trace and DSSP classes, nearest-Cα labels);
- :func:`grid_ceiling`: the truth passed through the network's working grid.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import Map, protein_atoms
from ..metrics import confusion, prf_from_confusion, to_three_class

__all__ = ["clean_simulation", "grid_ceiling", "trace_oracle", "diagnosis_figure",
           "TRACE_ORACLE_RADII_A"]

#: Radii (Å) the trace oracle tries; it reports the best (see :func:`trace_oracle`).
TRACE_ORACLE_RADII_A = (3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0)


def clean_simulation(m: Map, structure, resolution_a: float) -> Map:
    """A noise-free simulation of ``structure`` at ``resolution_a`` on ``m``'s grid: the map
    the network would get if the experiment were perfect (simulated on a 1 Å grid, then
    interpolated onto ``m``'s)."""
    from ..prep.density import resample_to_grid, simulate_density

    sim = simulate_density(structure, resolution_a, min(1.0, min(m.voxel_size_a)))
    return resample_to_grid(sim, m.origin_a, m.voxel_size_a, m.shape_xyz, order=1)


def grid_ceiling(truth: Map, mask: np.ndarray, voxel_size_a: float) -> dict:
    """Voxel F1 (helix, sheet) of the truth itself passed through a working grid of
    ``voxel_size_a`` Å the way a prediction is: each class's indicator averaged onto that grid
    (Gaussian, sigma = half a working voxel), interpolated back linearly, argmax. No network on
    that grid can do better than this, up to the averaging chosen."""
    from scipy.ndimage import gaussian_filter

    from ..prep.density import resample_to_grid

    t3 = to_three_class(truth.data)
    extent = (np.asarray(truth.shape_xyz) - 1) * np.asarray(truth.voxel_size_a)
    shape = np.floor(extent / voxel_size_a + 1e-6).astype(int) + 2
    sig = [0.5 * voxel_size_a / v for v in truth.voxel_size_a[::-1]]
    probs = []
    for c in range(3):
        ind = (t3 == c).astype(np.float32)
        if voxel_size_a > max(truth.voxel_size_a) + 1e-6:
            ind = gaussian_filter(ind, sig, mode="nearest")
        coarse = resample_to_grid(truth.with_data(ind), truth.origin_a, voxel_size_a, shape, order=1,
                                  mode="nearest")
        probs.append(resample_to_grid(coarse, truth.origin_a, truth.voxel_size_a, truth.shape_xyz,
                                      order=1, mode="nearest").data)
    cm = confusion(np.argmax(np.stack(probs), 0).astype(np.uint8), t3, mask)
    f = prf_from_confusion(cm)
    return {"helix": f["helix"]["f1"], "sheet": f["sheet"]["f1"]}


def trace_oracle(m: Map, structure, sse, truth: Map, mask: np.ndarray,
                 radii_a=TRACE_ORACLE_RADII_A) -> dict:
    """Voxel F1 (helix, sheet) of the **Cα-trace oracle**: a predictor that knows every
    residue's DSSP class and its Cα position exactly, but no other atom, and labels each voxel
    with the class of its nearest Cα within r (the best r of ``radii_a``, per class). A map at
    5–10 Å shows at most the trace, so this is about the best a network could do from a
    perfectly placed, perfectly classified trace: what the label rule's side chains cost.
    Returns ``{"helix", "sheet", "radius_a": {"helix", "sheet"}}``."""
    from ..prep.labels import atom_classes, label_voxels

    trace = structure.clone()
    for ch in trace[0]:
        for res in ch:
            for i in range(len(res) - 1, -1, -1):
                if res[i].name != "CA":
                    del res[i]
    ca = protein_atoms(trace)
    if not len(ca.xyz):
        raise InputError(structure.name or "model", "no CA atoms for the trace oracle")
    classes = atom_classes(ca, sse)
    t3 = to_three_class(truth.data)
    best = {"helix": (-1.0, None), "sheet": (-1.0, None)}
    for r in radii_a:
        lab = to_three_class(label_voxels(m, ca, classes, radius_a=float(r)).data)
        f = prf_from_confusion(confusion(lab, t3, mask))
        for cls in best:
            if f[cls]["f1"] > best[cls][0]:
                best[cls] = (f[cls]["f1"], float(r))
    return {"helix": best["helix"][0], "sheet": best["sheet"][0],
            "radius_a": {c: best[c][1] for c in best}}


def diagnosis_figure(summary: dict, png: Path) -> None:
    """Per map and class: F1 on the real map, on the clean simulation, the Cα-trace oracle and
    the grid ceiling."""
    from ..io import pyplot, write_png

    plt = pyplot()
    cases = summary["cases"]
    bars = (("real map", lambda r, c: r["voxel"][c]["f1"], "tab:gray"),
            ("clean simulation", lambda r, c: r["diagnosis"]["clean_simulation"][c], "tab:green"),
            ("Cα-trace oracle", lambda r, c: r["diagnosis"]["trace_oracle"][c], "tab:blue"),
            ("grid ceiling", lambda r, c: r["diagnosis"]["grid_ceiling"][c], "tab:olive"))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    x = np.arange(len(cases))
    for ax, cls in zip(axes, ("helix", "sheet")):
        for k, (label, get, color) in enumerate(bars):
            ys = [get(r, cls) if (cls == "helix" or r["has_sheet"]) else np.nan for r in cases]
            ax.bar(x + (k - 1.5) * 0.2, ys, 0.2, label=label, color=color)
        ax.set_xticks(x, [r["case"].replace("_", " ") for r in cases], rotation=20, fontsize=8)
        ax.set(ylim=(0, 1.15), yticks=np.linspace(0, 1, 6), title=f"{cls} voxel F1")
    axes[0].set_ylabel("voxel F1")
    axes[0].legend(fontsize=7, loc="upper center", ncol=2)
    fig.tight_layout()
    write_png(fig, png)
