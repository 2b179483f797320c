"""Derived conditions of a real map: the real map turned into what users feed the model.

A real case (:class:`~cryosse.evaluate.zone.RealCase`) is one map as deposited. Users give the
model other things: one chain segmented out of the map (ChimeraX ``volume zone`` with
``minimalBounds``, often resampled to 1 Å voxels), a high-resolution map low-passed to 6-10 Å,
a sharpened or blurred map, a map thresholded at its contour, a β-rich domain boxed on its own.
:func:`derive` makes each of those from the case, with its own truth (the label rule on the
derived grid, for the atoms the derived map is about) and its own scored zone, so that every
condition is scored like the case itself: by the network, by the Cα-trace oracle (the best a
perfect trace allows under the label rule) and by the network on a clean simulation of the same
atoms on the same grid (what is left when realism is perfect).

Conditions (names as in the tables):

- ``deposited``: the case as it is scored (its own low-pass when it names one);
- ``lowpass_6``/``_8``/``_10``: the raw map low-passed to 6, 8, 10 Å (maps finer than 6 Å only);
- ``bfactor_+100``/``bfactor_-100``: the case's map blurred / sharpened by B = ±100 Å²
  (amplitudes times exp(-B s²/4), up to the case's resolution, then flat);
- ``contour``: every voxel below the molecular-volume contour set to zero (the level at which
  the map encloses the model's volume, 1.21 Å³/Da, as depositors often choose it; counted in
  the model's zone, so that unmodelled neighbours do not raise it);
- ``segment_<chain>`` and ``segment_<chain>_1A``: one chain's zone (voxels within
  :data:`ZONE_RADIUS_A` of its atoms; the rest zero) in the tight box around the zone, on the
  map's voxels and resampled to 1 Å (trilinear, which softens the zone's edge as ChimeraX's
  ``volume resample`` does);
- ``beta_<chain>``: the zone of the most β-rich run of :data:`BETA_WINDOW` residues of the map
  (the β test: the cNBD β-roll of EMD-0093, the β-rich subdomains of actin), when it holds at
  least :data:`BETA_MIN_STRAND` strand residues;
- ``segment_<chain>_cut`` and ``beta_<chain>_cut``: the same atoms segmented the way a mask made
  at a high contour does it, cutting into the molecule's own density: of the raw map's voxels in
  the zone, only the highest :data:`CUT_ZONE_SHARE` are kept (a quarter: the masked protomer of
  EMD-5168 keeps 25 % of its model's 3.5 Å zone, and the held-out segment the robustness issue
  describes zeroes 76 % of its box), then the masked map is low-passed to the case's resolution (when the
  raw map is finer) and boxed tightly. This is how a high-resolution segment is turned into a
  medium-resolution input: mask first, low-pass after.

A class is scored in a condition where its truth has more than :data:`MIN_CLASS_VOXELS` voxels in
the scored zone (and, for sheet, where the case scores sheet).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..io import Map
from ..io import protein_atoms

__all__ = ["Derived", "derive", "bfactor", "molecular_volume_contour", "zone_segment", "beta_window",
           "cut_segment", "ZONE_RADIUS_A", "BETA_WINDOW", "BETA_MIN_STRAND", "MIN_CLASS_VOXELS", "LOWPASS_A",
           "CUT_ZONE_SHARE"]

#: Zone radius (Å) of a chain segment (ChimeraX ``volume zone ... range``).
ZONE_RADIUS_A = 3.5
#: Residues in the β test's window, and the strand residues it needs.
BETA_WINDOW = 100
BETA_MIN_STRAND = 25
#: A class is scored where its truth has more voxels than this in the scored zone.
MIN_CLASS_VOXELS = 500
#: Low-pass resolutions (Å) derived from maps finer than the first of them.
LOWPASS_A = (6.0, 8.0, 10.0)
#: Share of the atoms' zone a cut segment keeps (its highest voxels; the rest is zeroed).
CUT_ZONE_SHARE = 0.25
#: Daltons per residue and Å³ per Dalton of the molecular-volume contour.
_DA_PER_RESIDUE, _A3_PER_DA = 110.0, 1.21


@dataclass
class Derived:
    """One derived condition: the map, the atoms it is about (a structure holding only them),
    the resolution a clean simulation uses, and how it was made."""

    name: str
    map: Map
    structure: object
    resolution_a: float
    kind: str
    detail: dict = field(default_factory=dict)


def bfactor(m: Map, b_a2: float, resolution_a: float) -> Map:
    """``m`` with its Fourier amplitudes multiplied by exp(-B s²/4) (B > 0 blurs, B < 0
    sharpens); beyond ``resolution_a`` the factor stays at its value there, so sharpening does
    not lift what the map does not hold."""
    data = m.data.astype(np.float32)
    f = np.fft.rfftn(data)
    freqs = [np.fft.fftfreq(n, d) for n, d in zip(data.shape[:2], m.voxel_size_a[::-1][:2])]
    freqs.append(np.fft.rfftfreq(data.shape[2], m.voxel_size_a[0]))
    kz, ky, kx = np.meshgrid(*freqs, indexing="ij", sparse=True)
    s2 = np.minimum(kz ** 2 + ky ** 2 + kx ** 2, 1.0 / resolution_a ** 2)
    f *= np.exp(-b_a2 * s2 / 4.0).astype(np.complex64)
    return m.with_data(np.fft.irfftn(f, data.shape, axes=(0, 1, 2)).astype(np.float32))


def molecular_volume_contour(m: Map, n_residues: int, inside: np.ndarray | None = None) -> float:
    """The density level at which the map (or the voxels ``inside``) encloses the volume of
    ``n_residues`` residues of protein."""
    values = m.data[inside] if inside is not None else m.data.ravel()
    return _level_of_top(values, n_residues * _DA_PER_RESIDUE * _A3_PER_DA / float(np.prod(m.voxel_size_a)))


def _level_of_top(values: np.ndarray, n: float) -> float:
    """The level that the highest ``n`` of ``values`` reach (n rounded, at least 1)."""
    n = min(max(int(round(n)), 1), values.size)
    return float(np.partition(values, values.size - n)[values.size - n])


def _zone(m: Map, xyz: np.ndarray, radius_a: float) -> np.ndarray:
    from ..prep.labels import within

    zone = within(m, xyz, radius_a)
    if not zone.any():
        raise ValueError("the atoms lie outside the map")
    return zone


def _tight_box(m: Map, keep: np.ndarray, pad_voxels: int) -> Map:
    """``m`` in the bounding box of ``keep`` plus ``pad_voxels`` (within the map)."""
    from ..prep.components import extract

    idx = np.argwhere(keep)  # z, y, x
    lo = np.maximum(idx.min(0) - pad_voxels, 0)[::-1]
    hi = np.minimum(idx.max(0) + pad_voxels, np.asarray(m.data.shape) - 1)[::-1]
    return extract(m, lo, hi - lo + 1, fill=0)


def zone_segment(m: Map, xyz: np.ndarray, radius_a: float = ZONE_RADIUS_A, pad_voxels: int = 1) -> Map:
    """ChimeraX ``volume zone nearAtoms ... range r minimalBounds true newMap true``: the voxels
    within ``radius_a`` of the atoms kept, the rest zero, in the tight box of the zone (plus
    ``pad_voxels``)."""
    keep = _zone(m, xyz, radius_a)
    return _tight_box(m.with_data(np.where(keep, m.data, 0).astype(np.float32)), keep, pad_voxels)


def cut_segment(raw: Map, xyz: np.ndarray, resolution_a: float, native_resolution_a: float,
                share: float = CUT_ZONE_SHARE, radius_a: float = ZONE_RADIUS_A, pad_voxels: int = 1) -> tuple[Map, float]:
    """(segment, level): the atoms' zone of ``raw`` kept only where it is among the highest
    ``share`` of the zone's voxels (already-zero voxels stay zero), the rest zero; low-passed to ``resolution_a`` after
    the mask when the raw map is finer; in the tight box of the mask (plus ``pad_voxels``)."""
    from .zone import lowpass

    zone = _zone(raw, xyz, radius_a)
    values = raw.data[zone]
    level = _level_of_top(values, share * values.size)
    keep = zone & (raw.data >= level) & (raw.data != 0)
    masked = raw.with_data(np.where(keep, raw.data, 0).astype(np.float32))
    if native_resolution_a < resolution_a:
        masked = lowpass(masked, resolution_a, native_resolution_a)
    return _tight_box(masked, keep, pad_voxels), level


def beta_window(structure, sse, window: int = BETA_WINDOW) -> tuple[str, int, int, int] | None:
    """(chain, first residue index, end index, strand residues) of the run of ``window``
    consecutive residues of one chain with the most strand residues (None without protein)."""
    from .. import SHEET
    from ..prep.labels import residue_classes

    atoms = protein_atoms(structure)
    cls = residue_classes(atoms, sse)
    best = None
    chains = [c for c, *_ in atoms.residues]
    start = 0
    while start < len(chains):
        end = start
        while end < len(chains) and chains[end] == chains[start]:
            end += 1
        strand = (cls[start:end] == SHEET).astype(int)
        w = min(window, end - start)
        sums = np.convolve(strand, np.ones(w, int), "valid")
        k = int(np.argmax(sums))
        if best is None or sums[k] > best[3]:
            best = (chains[start], start + k, start + k + w, int(sums[k]))
        start = end
    return best


def _subset(structure, keep) -> object:
    """A copy of ``structure``'s first model holding only the residues ``keep(chain, index)``
    accepts (index: the residue's position in model order, as in ``protein_atoms``)."""
    st = structure.clone()
    del st[1:]
    k = 0
    for ch in st[0]:
        drop = []
        for i, _ in enumerate(ch):
            if not keep(ch.name, k):
                drop.append(i)
            k += 1
        for i in reversed(drop):
            del ch[i]
    st.remove_empty_chains()
    return st


def derive(case, raw: Map, scored: Map, structure, sse, *, segment_chains: int = 1) -> list[Derived]:
    """The derived conditions of ``case`` (see the module doc): ``raw`` is the map as read,
    ``scored`` the case's map as scored (after its low-pass), ``structure`` its fitted model.
    ``segment_chains`` chains (the largest first) get segments."""
    res = case.lowpass_a or case.native_resolution_a
    out = [Derived("deposited", scored, structure, res, "deposited")]
    if case.native_resolution_a < LOWPASS_A[0]:
        from .zone import lowpass

        for r in LOWPASS_A:
            if case.lowpass_a and math.isclose(r, case.lowpass_a):
                continue  # the deposited condition is this one
            out.append(Derived(f"lowpass_{r:g}", lowpass(raw, r, case.native_resolution_a), structure, r,
                               "lowpass", {"resolution_a": r}))
    for b in (100.0, -100.0):
        out.append(Derived(f"bfactor_{b:+g}", bfactor(scored, b, res), structure, res, "bfactor", {"b_a2": b}))
    from ..prep.labels import within
    from .zone import SCORE_RADIUS_A

    atoms = protein_atoms(structure)
    # the model's volume inside its own zone: unmodelled neighbours must not raise the level
    level = molecular_volume_contour(scored, len(atoms.residues), within(scored, atoms.xyz, SCORE_RADIUS_A))
    out.append(Derived("contour", scored.with_data(np.where(scored.data >= level, scored.data, 0)
                                                   .astype(np.float32)), structure, res, "contour",
                       {"level": level}))
    sizes = {}
    for c, *_ in atoms.residues:
        sizes[c] = sizes.get(c, 0) + 1
    for chain in sorted(sizes, key=lambda c: (-sizes[c], c))[:segment_chains]:
        sub = _subset(structure, lambda c, k, chain=chain: c == chain)
        seg = zone_segment(scored, protein_atoms(sub).xyz)
        out.append(Derived(f"segment_{chain}", seg, sub, res, "segment", {"chain": chain,
                                                                          "zone_radius_a": ZONE_RADIUS_A}))
        out.append(Derived(f"segment_{chain}_1A", _to_1a(seg), sub, res, "segment",
                           {"chain": chain, "zone_radius_a": ZONE_RADIUS_A, "voxel_size_a": 1.0}))
        out.append(_cut(f"segment_{chain}_cut", raw, sub, res, case.native_resolution_a, {"chain": chain}))
    win = beta_window(structure, sse)
    if win is not None and win[3] >= BETA_MIN_STRAND:
        chain, i0, i1, n_strand = win
        sub = _subset(structure, lambda c, k: i0 <= k < i1)
        detail = {"chain": chain, "residues": [int(i0), int(i1)], "strand_residues": n_strand}
        out.append(Derived(f"beta_{chain}", zone_segment(scored, protein_atoms(sub).xyz), sub, res, "beta",
                           {**detail, "zone_radius_a": ZONE_RADIUS_A}))
        out.append(_cut(f"beta_{chain}_cut", raw, sub, res, case.native_resolution_a, detail))
    return out


def _cut(name: str, raw: Map, sub, res: float, native: float, detail: dict) -> Derived:
    seg, level = cut_segment(raw, protein_atoms(sub).xyz, res, native)
    return Derived(name, seg, sub, res, "cut", {**detail, "zone_radius_a": ZONE_RADIUS_A, "level": level,
                                                "zone_share": CUT_ZONE_SHARE})


def _to_1a(m: Map) -> Map:
    from ..prep.density import resample

    if all(math.isclose(v, 1.0, rel_tol=1e-3) for v in m.voxel_size_a):
        return m
    return resample(m, 1.0, order=1)
