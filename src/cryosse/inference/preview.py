"""``preview.png``: a picture of a prediction without ChimeraX.

Three orthogonal slices (xy, xz, yz planes) through the centre of mass of the map's positive
density, the density in grey, helix voxels in red and sheet voxels in blue over it, a colour
key and the fractions of voxels, each panel zoomed to where the density stands out
(:func:`density_box`); with a truth (``cryosse evaluate``), a row of true labels
above the predicted ones. Axes are in Å (the map's origin and voxel size)."""
from __future__ import annotations

import os

import numpy as np

from .. import HELIX, SHEET
from ..errors import InputError
from ..io import Map, pyplot, write_png

__all__ = ["write_preview", "centre_of_mass", "density_box", "HELIX_COLOUR", "SHEET_COLOUR"]

HELIX_COLOUR = "#e41a1c"
SHEET_COLOUR = "#377eb8"


def centre_of_mass(m: Map) -> tuple[int, int, int]:
    """The ``[z, y, x]`` voxel nearest the centre of mass of the positive density (the
    box centre when there is none), computed one z-plane at a time."""
    nz, ny, nx = m.data.shape
    wz, wy, wx = np.zeros(nz), np.zeros(ny), np.zeros(nx)
    for k in range(nz):
        plane = np.clip(np.asarray(m.data[k], np.float64), 0, None)
        wz[k] = plane.sum()
        wy += plane.sum(axis=1)
        wx += plane.sum(axis=0)
    if wz.sum() <= 0:
        return nz // 2, ny // 2, nx // 2
    return tuple(int(round(float(np.dot(w, np.arange(len(w))) / w.sum()))) for w in (wz, wy, wx))


def density_box(m: Map) -> tuple[np.ndarray, np.ndarray]:
    """``[z, y, x]`` index bounds (inclusive lo, exclusive hi) of the voxels above mean + 1 SD,
    grown by a tenth of the map's side and 4 voxels, clipped to the map: what the preview zooms
    to (the whole map when nothing stands out)."""
    n = np.array(m.data.shape)
    total = squares = 0.0
    for k in range(n[0]):
        plane = np.asarray(m.data[k], np.float64)
        total += plane.sum()
        squares += np.square(plane).sum()
    mean = total / m.data.size
    thr = mean + np.sqrt(max(squares / m.data.size - mean * mean, 0.0))
    hit_z, hit_y, hit_x = np.zeros(n[0], bool), np.zeros(n[1], bool), np.zeros(n[2], bool)
    for k in range(n[0]):
        above = np.asarray(m.data[k]) > thr
        hit_z[k] = above.any()
        hit_y |= above.any(axis=1)
        hit_x |= above.any(axis=0)
    if not hit_z.any():
        return np.zeros(3, int), n
    lo = np.array([np.argmax(h) for h in (hit_z, hit_y, hit_x)])
    hi = np.array([len(h) - np.argmax(h[::-1]) for h in (hit_z, hit_y, hit_x)])
    grow = n // 10 + 4
    return np.maximum(lo - grow, 0), np.minimum(hi + grow, n)


def _overlay(lab: np.ndarray) -> np.ndarray:
    from matplotlib.colors import to_rgba

    rgba = np.zeros(lab.shape + (4,))
    rgba[lab == HELIX] = to_rgba(HELIX_COLOUR, 0.7)
    rgba[lab == SHEET] = to_rgba(SHEET_COLOUR, 0.7)
    return rgba


def _fractions(lab: Map) -> str:
    counts = np.zeros(4, np.int64)
    for k in range(lab.data.shape[0]):
        counts += np.bincount(np.asarray(lab.data[k]).ravel().astype(np.uint8), minlength=4)[:4]
    n = max(int(lab.data.size), 1)
    return f"helix {counts[HELIX] / n:.1%}, sheet {counts[SHEET] / n:.1%} of voxels"


def write_preview(png: str | os.PathLike, density: Map, labels: Map, *, truth: Map | None = None,
                  title: str = "") -> None:
    """Write the preview of ``labels`` (and ``truth``) over ``density`` (see the module doc)."""
    from matplotlib.patches import Patch

    for name, lab in (("labels", labels), ("truth", truth)):
        if lab is not None and lab.data.shape != density.data.shape:
            raise InputError(lab.meta.get("path", name), f"{name} shape {lab.shape_xyz} differs from the "
                             f"density's {density.shape_xyz} (x, y, z)")
    plt = pyplot()
    k, j, i = centre_of_mass(density)
    o, v = np.asarray(density.origin_a), np.asarray(density.voxel_size_a)
    n = np.asarray(density.shape_xyz)
    lo, hi = o - v / 2, o + (n - 0.5) * v  # voxel edges, Å
    box_lo, box_hi = density_box(density)
    zoom_lo, zoom_hi = o + box_lo[::-1] * v - v / 2, o + (box_hi[::-1] - 0.5) * v  # x, y, z
    # (plane name, horizontal axis, vertical axis, slicer of a [z, y, x] array, position)
    planes = [("xy", 0, 1, lambda a: a[k], f"z = {o[2] + k * v[2]:.1f} Å"),
              ("xz", 0, 2, lambda a: a[:, j, :], f"y = {o[1] + j * v[1]:.1f} Å"),
              ("yz", 1, 2, lambda a: a[:, :, i], f"x = {o[0] + i * v[0]:.1f} Å")]
    rows = ([("true", truth)] if truth is not None else []) + [("predicted" if truth is not None else "", labels)]
    fig, axes = plt.subplots(len(rows), 3, figsize=(11, 3.7 * len(rows) + 0.8), squeeze=False)
    names = "xyz"
    for r, (row_name, lab) in enumerate(rows):
        for c, (plane, h, w, cut, where) in enumerate(planes):
            ax = axes[r, c]
            d = np.asarray(cut(density.data), np.float32)
            # grey from the slice's median (empty space and noise dark) to its 99.5th percentile
            vmin, vmax = np.percentile(d, [50, 99.5]) if d.size else (0, 1)
            extent = (lo[h], hi[h], lo[w], hi[w])
            ax.imshow(d, cmap="gray", origin="lower", extent=extent, vmin=vmin, vmax=max(vmax, vmin + 1e-6),
                      interpolation="nearest")
            ax.imshow(_overlay(np.asarray(cut(lab.data))), origin="lower", extent=extent, interpolation="nearest")
            ax.set_xlim(zoom_lo[h], zoom_hi[h])
            ax.set_ylim(zoom_lo[w], zoom_hi[w])
            ax.set_xlabel(f"{names[h]} (Å)")
            ax.set_ylabel(f"{names[w]} (Å)")
            ax.set_title(f"{row_name + ': ' if row_name else ''}{plane} plane, {where}", fontsize=10)
    info = "; ".join(f"{name or 'predicted'}: {_fractions(lab)}" for name, lab in rows)
    fig.suptitle(f"{title + ' — ' if title else ''}slices through the density's centre of mass\n{info}",
                 fontsize=11)
    fig.legend(handles=[Patch(color=HELIX_COLOUR, label="helix"), Patch(color=SHEET_COLOUR, label="sheet"),
                        Patch(facecolor="#d0d0d0", edgecolor="k", label="density (white: high)")],
               loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.1 / len(rows), 1, 1))
    write_png(fig, png)
