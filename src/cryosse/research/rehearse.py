"""A rehearsal archive: a local EMDB/PDB-layout copy with the properties of a real 5-10 Å harvest.

:func:`plan_entries` draws the entries (seeded): maps of 200-512 voxels a side at 0.8-2.5 Å
(sides drawn per axis: non-cubic boxes), a few with anisotropic voxels, both placement
conventions (the MRC ``origin`` field, or ``nxstart/nystart/nzstart`` with origin 0),
assemblies of 1-60 chains (often many copies of one chain), resolutions 5-10 Å, and the
archive's faults: obsolete and withdrawn entries (status ``OBS``/``WDRN`` in the header), entries
whose files are missing (404), a few oversized maps (``size_kbytes`` over a harvest's limit),
and mmCIF models that begin with a comment line.

:func:`write_entry` simulates each entry's map from structures arranged into its assembly
(copies placed side by side in the box), and writes
``emdb/structures/EMD-N/map/emd_N.map.gz``, ``emdb/structures/EMD-N/header/emd-N.xml`` and
``pdb/mmCIF/<middle two>/<id>.cif.gz``. Headers are a real v3 header (``template``: e.g. the
EMDB's own EMD-0001 header) with this entry's values put in: the real layout, with
``map/@size_kbytes``. ``scale`` < 1 shrinks every box (and so the work) for a short rehearsal.
"""
from __future__ import annotations

import gzip
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

__all__ = ["EntrySpec", "plan_entries", "write_entry", "write_archive"]


@dataclass(frozen=True)
class EntrySpec:
    emdb: str                  # EMD-NNNNN
    pdb: str                   # 4-character PDB id of the fitted model
    status: str                # REL, OBS, WDRN
    missing: bool              # files absent from the archive (404)
    shape_xyz: tuple           # voxels
    voxel_a: tuple             # x, y, z
    placement: str             # "origin" or "nstart"
    structure: int             # index into the structures list
    copies: int                # chains in the assembly (copies of the structure's first chain)
    resolution_a: float
    oversized: bool            # header size_kbytes over the harvest's limit
    cif_comment: bool          # the mmCIF begins with a comment line


def _pdb_id(k: int) -> str:
    d = "0123456789abcdefghijklmnopqrstuvwxyz"
    return f"{k % 9 + 1}{d[k // 1296 % 36]}{d[k // 36 % 36]}{d[k % 36]}"


def plan_entries(n: int, n_structures: int, seed: int = 0, scale: float = 1.0, first: int = 90001) -> list[EntrySpec]:
    """``n`` entries with the proportions of module doc (seeded); with ``n >= 8`` the last four
    are an obsolete, a withdrawn, a missing and an oversized entry, whatever the draw."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        side = rng.integers(200, 513)
        shape = tuple(int(max(16, round(side * scale * f))) for f in rng.uniform(0.85, 1.15, 3))
        v = float(rng.choice([0.8, 1.0, 1.06, 1.2, 1.34, 1.5, 1.73, 2.0, 2.5]))
        f = (1.04, 1.08) if v < 2.3 else (0.96, 0.92)
        voxel = (v, v, v) if rng.random() > 0.04 else (v, round(v * f[0], 3), round(v * f[1], 3))
        r = rng.random()
        copies = 1 if r < 0.35 else int(rng.integers(2, 7)) if r < 0.8 else int(rng.integers(7, 61))
        fault = rng.random()
        out.append(EntrySpec(
            emdb=f"EMD-{first + k}", pdb=_pdb_id(k),
            status="OBS" if fault < 0.03 else "WDRN" if fault < 0.05 else "REL", missing=0.05 <= fault < 0.08,
            shape_xyz=shape, voxel_a=voxel, placement="origin" if rng.random() < 0.5 else "nstart",
            structure=int(rng.integers(n_structures)), copies=copies,
            resolution_a=round(float(rng.uniform(5.0, 10.0)), 1), oversized=0.08 <= fault < 0.10,
            cif_comment=bool(rng.random() < 0.2)))
    if n >= 8:  # every fault at least once, however short the rehearsal
        out[-4:] = [replace(out[-4], status="OBS"), replace(out[-3], status="WDRN"),
                    replace(out[-2], missing=True), replace(out[-1], oversized=True)]
    return out


def _assembly(structure, copies: int, box_a: np.ndarray, origin_a: np.ndarray):
    """The structure's first protein chain ``copies`` times (fewer when the box holds fewer),
    on a grid inside the box (chain names A, B, ..., then AA, AB, ...), centred in the box that
    starts at ``origin_a``; returns the structure and the copies placed."""
    import gemmi

    st = gemmi.Structure()
    st.cell = gemmi.UnitCell(*box_a, 90, 90, 90)
    model = gemmi.Model("1")
    src = structure[0][0]
    xyz = np.array([a.pos.tolist() for r in src for a in r])
    centre, extent = xyz.mean(0), np.ptp(xyz, 0) + 4.0
    per = np.maximum(np.floor(box_a / extent).astype(int), 1)
    names = [chr(65 + i) for i in range(26)] + [chr(65 + i) + chr(65 + j) for i in range(26) for j in range(26)]
    cells = [(i, j, k) for i in range(per[0]) for j in range(per[1]) for k in range(per[2])]
    used = cells[:copies]
    span = (np.max(used, 0) + 1) * extent
    for c, cell in enumerate(used):
        ch = gemmi.Chain(names[c])
        shift = origin_a + box_a / 2 - span / 2 + (np.array(cell) + 0.5) * extent - centre
        for r in src:
            ch.add_residue(r)
        for r in ch:
            for a in r:
                a.pos = gemmi.Position(*(np.array(a.pos.tolist()) + shift))
        model.add_chain(ch)
    st.add_model(model)
    st.setup_entities()
    return st, len(used)


def _header(template: Path, e: EntrySpec, data: np.ndarray, origin_index: tuple, contour: float) -> str:
    tree = ET.parse(template)
    root = tree.getroot()
    n = e.emdb[4:]
    root.set("emdb_id", e.emdb)
    root.find("admin/current_status/code").text = e.status
    root.find("admin/title").text = f"Rehearsal entry {e.emdb}: {e.copies} chains"
    pdbs = root.find("crossreferences/pdb_list")
    for ref in list(pdbs)[1:]:
        pdbs.remove(ref)
    pdbs.find("pdb_reference/pdb_id").text = e.pdb.upper()
    res = root.find(".//final_reconstruction/resolution")
    res.text = f"{e.resolution_a}"
    m = root.find("map")
    nx, ny, nz = e.shape_xyz
    kbytes = data.nbytes // 1000 if not e.oversized else 4_000_000 + data.nbytes // 1000
    m.set("size_kbytes", str(kbytes))
    m.find("file").text = f"emd_{n}.map.gz"
    for tag, vals in (("dimensions", (nx, ny, nz)), ("origin", origin_index), ("spacing", (nx, ny, nz))):
        el = m.find(tag)
        for child, v in zip(el, vals):
            child.text = str(int(v))
    for child, v in zip(m.find("cell"), [nx * e.voxel_a[0], ny * e.voxel_a[1], nz * e.voxel_a[2]]):
        child.text = f"{v:.3f}"
    for child, v in zip(m.find("pixel_spacing"), e.voxel_a):
        child.text = f"{v:.4f}"
    stats = m.find("statistics")
    for tag, v in (("minimum", data.min()), ("maximum", data.max()), ("average", data.mean()), ("std", data.std())):
        stats.find(tag).text = f"{float(v):.5f}"
    contours = m.find("contour_list")
    for c in list(contours)[1:]:
        contours.remove(c)
    c = contours.find("contour")
    c.set("primary", "true")
    c.find("level").text = f"{contour:.5f}"
    ET.indent(tree)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_entry(root: Path, e: EntrySpec, structures: list, template: Path, seed: int = 0) -> dict:
    """Write one entry's map, header and model under ``root``; returns its record."""
    import mrcfile

    from ..prep.density import resample_to_grid, simulate_density

    n = e.emdb[4:]
    rng = np.random.default_rng(seed + int(n))
    box_a = np.array(e.shape_xyz) * np.array(e.voxel_a)
    # the box centred on 0 (as many maps are), or starting at 0
    origin_index = tuple(-(v // 2) for v in e.shape_xyz) if rng.random() < 0.5 else (0, 0, 0)
    origin_a = np.array(origin_index) * np.array(e.voxel_a)
    st, placed = _assembly(structures[e.structure], e.copies, box_a, origin_a)
    sim = simulate_density(st, e.resolution_a, 1.0)
    m = resample_to_grid(sim, origin_a, np.array(e.voxel_a), np.array(e.shape_xyz), order=1)
    d = m.data + rng.normal(0, 0.1 * float(sim.data.std()), m.data.shape).astype(np.float32)
    contour = float(d.mean() + 1.5 * d.std())
    rec = dict(asdict(e), chains=placed, atoms=int(sum(1 for ch in st[0] for r in ch for _ in r)))
    if e.missing:
        return rec
    mdir = root / f"emdb/structures/EMD-{n}/map"
    mdir.mkdir(parents=True, exist_ok=True)
    tmp = mdir / f"emd_{n}.map"
    with mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(d.astype(np.float32))
        mrc.voxel_size = tuple(e.voxel_a)
        h = mrc.header
        if e.placement == "origin":
            h.origin = tuple(float(v) for v in origin_a)
            h.nxstart = h.nystart = h.nzstart = 0
        else:
            h.origin = (0.0, 0.0, 0.0)
            h.nxstart, h.nystart, h.nzstart = origin_index
        mrc.update_header_stats()
    with open(tmp, "rb") as fi, gzip.open(mdir / f"emd_{n}.map.gz", "wb", compresslevel=1) as fo:
        fo.write(fi.read())
    tmp.unlink()
    hdir = root / f"emdb/structures/EMD-{n}/header"
    hdir.mkdir(parents=True, exist_ok=True)
    (hdir / f"emd-{n}.xml").write_text(_header(template, e, d, origin_index, contour))
    cdir = root / f"pdb/mmCIF/{e.pdb[1:3]}"
    cdir.mkdir(parents=True, exist_ok=True)
    text = st.make_mmcif_document().as_string()
    if e.cif_comment:
        text = "#\\#CIF_1.1\n# written by cryosse rehearse\n" + text
    with gzip.open(cdir / f"{e.pdb}.cif.gz", "wt") as fh:
        fh.write(text)
    rec["disk_bytes"] = sum(f.stat().st_size for f in (mdir / f"emd_{n}.map.gz", hdir / f"emd-{n}.xml",
                                                       cdir / f"{e.pdb}.cif.gz"))
    return rec


def write_archive(root: str | os.PathLike, n: int, structure_paths: list, template: str | os.PathLike,
                  seed: int = 0, scale: float = 1.0) -> list[dict]:
    """Plan ``n`` entries and write them (module doc); ``root/entries.json`` lists them."""
    from ..io import read_model

    root = Path(root)
    structures = [read_model(p) for p in structure_paths]
    recs = [write_entry(root, e, structures, Path(template), seed) for e in plan_entries(n, len(structures), seed, scale)]
    (root / "entries.json").write_text(json.dumps(recs, indent=1) + "\n")
    return recs
