"""Experimental maps: bring an EMDB map onto the uniform grid, normalise it, and check that the
fitted model sits in it before its chains enter the data set.

:func:`prepare_map` reads any MRC/CCP4 header (via :func:`cryosse.io.read_map`: axis order,
``nstart`` vs ``origin``, anisotropic voxels, int8/int16/float16/float32), interpolates onto
cubic voxels with :func:`cryosse.prep.density.resample_to_grid` (explicit coordinates, trilinear) and
normalises (:func:`normalise_map`). :func:`chain_quality` measures, per chain:

- ``correlation``: Pearson correlation between the map and the chain's simulated density
  (same resolution) over the voxels within ``zone_radius_a`` of the chain's heavy atoms;
- ``atoms_in_contour``: fraction of heavy atoms where the map is at or above the recommended
  contour level (from the EMDB header);
- ``coverage``: fraction of heavy atoms inside the map's box;
- ``helix_fraction`` / ``sheet_fraction``: DSSP classes of the chain's residues.

:func:`prepare_entry` applies the filters of :class:`QualityConfig` and writes the prepared
entry (``map.mrc``, ``model.cif``, ``sse.tsv``, ``quality.json``) with every rejection and its
reason; nothing here raises for a bad map or model: the reason is recorded instead.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import CryosseError
from ..io import Map, atomic_path, protein_atoms, read_map, read_model, write_json, write_map
from .density import resample_to_grid, simulate_density, zscore
from .labels import within
from .sse import assign_sse, sse_class_of, write_sse

__all__ = ["QualityConfig", "normalise_map", "prepare_map", "chain_quality", "prepare_entry",
           "NORMALISE_MODES"]

NORMALISE_MODES = ("contour", "zscore", "none")


@dataclass(frozen=True)
class QualityConfig:
    """Config ``experimental`` (``zone_radius_a`` is ``components.zone_radius_a``): the grid an
    experimental map is resampled to, its normalisation, and the checks a chain must pass."""

    voxel_size_a: float = 1.0
    normalise: str = "contour"
    resolution_a: tuple[float, float] = (5.0, 10.0)
    min_correlation: float = 0.3
    min_atoms_in_contour: float = 0.5
    min_coverage: float = 0.9
    min_sse_fraction: float = 0.2
    zone_radius_a: float = 6.0


def normalise_map(m: Map, mode: str, contour_level: float | None = None) -> Map:
    """Normalised copy of ``m``.

    ``contour`` (DeepSSETracer, Emap2sec): density below the recommended contour level set to
    0, then divided by the 99.9th percentile of the density above it (robust to the outliers
    that set a map's maximum), so protein density is about 0–1. Without a contour level it
    falls back to ``zscore``. ``zscore``: (d − mean) / std over the map. ``none``: as is.
    """
    if mode not in NORMALISE_MODES:
        raise ValueError(f"normalise mode {mode!r} is not one of {NORMALISE_MODES}")
    d = m.data.astype(np.float32)
    if mode == "none":
        return m.with_data(d)
    if mode == "contour" and contour_level is not None:
        above = d[d >= contour_level]
        out = np.where(d >= contour_level, d, 0).astype(np.float32)
        scale = float(np.percentile(above, 99.9)) if above.size else 0.0
        return m.with_data(out / scale if scale > 0 else out)
    return m.with_data(zscore(d))


def prepare_map(m: Map, voxel_size_a: float = 1.0) -> Map:
    """``m`` on cubic voxels of ``voxel_size_a`` Å covering its extent (trilinear interpolation
    at explicit positions; the new grid starts at ``m``'s origin)."""
    extent = (np.asarray(m.shape_xyz) - 1) * np.asarray(m.voxel_size_a)
    shape = np.floor(extent / voxel_size_a + 1e-6).astype(int) + 1
    if np.allclose(m.voxel_size_a, voxel_size_a, rtol=1e-6):
        return m.with_data(m.data.astype(np.float32))
    return resample_to_grid(m, m.origin_a, voxel_size_a, shape, order=1)


def _values_at(m: Map, xyz: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    idx = m.xyz_to_index(xyz)
    return ndimage.map_coordinates(m.data.astype(np.float32), [idx[:, 2], idx[:, 1], idx[:, 0]],
                                   order=1, mode="constant", cval=np.nan)


def chain_quality(m: Map, structure, chain: str, resolution_a: float,
                  contour_level: float | None, sse=None, zone_radius_a: float = 6.0) -> dict:
    """Fit and content measures of one chain against the (resampled, not normalised) map."""
    atoms = protein_atoms(structure, [chain])
    xyz = atoms.xyz
    vals = _values_at(m, xyz)
    inside = np.isfinite(vals)
    q = {"n_atoms": int(len(xyz)), "n_residues": len(atoms.residues),
         "coverage": float(inside.mean()) if len(xyz) else 0.0}
    if contour_level is not None and inside.any():
        q["atoms_in_contour"] = float(np.mean(vals[inside] >= contour_level))
    else:
        q["atoms_in_contour"] = None
    q["correlation"] = None
    if inside.sum() >= 3:
        import gemmi

        st = gemmi.Structure()
        st.add_model(gemmi.Model(1))
        for ch in structure[0]:
            if ch.name == chain:
                st[0].add_chain(ch)
        vox = float(m.voxel_size_a[0])
        sim = simulate_density(st, resolution_a, vox, padding_a=zone_radius_a + 2 * vox)
        box = resample_to_grid(m, sim.origin_a, vox, sim.shape_xyz, order=1, cval=np.nan)
        zone = within(sim, xyz, zone_radius_a) & np.isfinite(box.data)
        if zone.sum() >= 10:
            a, b = box.data[zone].astype(float), sim.data[zone].astype(float)
            if a.std() > 0 and b.std() > 0:
                q["correlation"] = float(np.corrcoef(a, b)[0, 1])
    if sse is not None:
        codes = [sse_class_of(r.dssp) for r in sse if r.chain == chain]
        n = max(len(codes), 1)
        q["helix_fraction"] = codes.count(1) / n
        q["sheet_fraction"] = codes.count(2) / n
    return q


def _chain_reason(q: dict, cfg: QualityConfig) -> str:
    if q["coverage"] < cfg.min_coverage:
        return f"map covers only {q['coverage']:.0%} of the chain's atoms (minimum {cfg.min_coverage:.0%})"
    if q["correlation"] is None:
        return "map-model correlation could not be computed (flat density in the chain's zone)"
    if q["correlation"] < cfg.min_correlation:
        return f"map-model correlation {q['correlation']:.2f} in the chain's zone below {cfg.min_correlation:g}"
    if q["atoms_in_contour"] is not None and q["atoms_in_contour"] < cfg.min_atoms_in_contour:
        return (f"only {q['atoms_in_contour']:.0%} of atoms inside the recommended contour "
                f"(minimum {cfg.min_atoms_in_contour:.0%})")
    sse = q.get("helix_fraction", 0) + q.get("sheet_fraction", 0)
    if sse < cfg.min_sse_fraction:
        return f"secondary-structure content {sse:.0%} below {cfg.min_sse_fraction:.0%}"
    return ""


def prepare_entry(record: dict, out_dir: str | os.PathLike, cfg: QualityConfig = QualityConfig(),
                  chains: list[str] | None = None, refused: str | None = None) -> dict:
    """Prepare one fetched entry (a record of :func:`cryosse.fetch.fetch_entry`, or one giving
    ``map``, ``model``, ``resolution_a``, ``contour_level`` of local files) into ``out_dir``.

    Writes ``quality.json`` always (entry ``status`` ok/rejected with ``reason``, and per chain
    its measures, status and reason); when some chain is accepted also ``map.mrc`` (resampled,
    normalised), ``model.cif`` (the protein chains) and ``sse.tsv``. Returns the quality dict.
    ``refused``: a reason the caller found before any reading (a memory plan over its budget):
    the entry is rejected with it, and nothing is read.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("map.mrc", "model.cif", "sse.tsv"):
        (out / stale).unlink(missing_ok=True)
    entry = record.get("entry") or record.get("emdb", "")
    q = {"entry": entry, "emdb": record.get("emdb", ""), "pdb": record.get("pdb", "") or "-",
         "resolution_a": record.get("resolution_a"), "contour_level": record.get("contour_level"),
         "config": asdict(cfg), "status": "rejected", "reason": "", "chains": {}}
    wanted = list(chains) if chains else []
    try:
        if record.get("status", "ok") != "ok":
            raise CryosseError(f"download failed: {record.get('reason', '')}")
        if refused:
            raise CryosseError(refused)
        res = record.get("resolution_a")
        lo, hi = cfg.resolution_a
        if res is None:
            raise CryosseError("resolution unknown (not in the EMDB header)")
        if not lo <= float(res) <= hi:
            raise CryosseError(f"resolution {float(res):g} Å outside [{lo:g}, {hi:g}] Å")
        st = read_model(record["model"], wanted or None)
        wanted = wanted or [ch.name for ch in st[0]]
        raw = read_map(record["map"])
        q["source_grid"] = {"shape_xyz": list(raw.shape_xyz), "voxel_size_a": list(raw.voxel_size_a),
                            "origin_a": list(raw.origin_a), "dtype": str(raw.data.dtype)}
        grid = prepare_map(raw, cfg.voxel_size_a)
        sse = assign_sse(st)
        accepted = []
        for ch in wanted:
            cq = chain_quality(grid, st, ch, float(res), q["contour_level"], sse, cfg.zone_radius_a)
            reason = _chain_reason(cq, cfg)
            cq.update(status="rejected" if reason else "ok", reason=reason)
            q["chains"][ch] = cq
            if not reason:
                accepted.append(ch)
        if not accepted:
            raise CryosseError("no chain passed the quality checks")
        write_map(normalise_map(grid, cfg.normalise, q["contour_level"]), out / "map.mrc")
        st.setup_entities()
        with atomic_path(out / "model.cif") as tmp:
            st.make_mmcif_document().write_file(str(tmp))
        write_sse(sse, out / "sse.tsv")
        q.update(status="ok", reason="", normalise=cfg.normalise if (
            cfg.normalise != "contour" or q["contour_level"] is not None) else "zscore")
    except CryosseError as exc:  # InputError included: bad map/model, NaNs, ...
        q["reason"] = str(exc)
        for ch in wanted:
            q["chains"].setdefault(ch, {})
            if not q["chains"][ch].get("reason"):
                q["chains"][ch].update(status="rejected", reason=str(exc))
    write_json(out / "quality.json", _finite(q))
    return q


def _finite(obj):
    """JSON-safe: NaN/inf become None."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
