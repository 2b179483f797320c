"""Commands of the preparation stage: simulate, sse, label, crop, crop-entry, prepare-map."""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import InputError
from ..prep.components import ComponentConfig
from ..prep.density import SimulateConfig
from ..prep.experimental import NORMALISE_MODES, QualityConfig
from ..prep.labels import LabelConfig
from ..prep.sse import ENGINES, SSEConfig
from .options import (add_command, alias, config_option, field_option, memory_budget, memory_option, output_option,
                      say, settings, strings)

_MAP_EXT = (".mrc", ".map", ".ccp4", ".mrcs", ".mrc.gz", ".map.gz", ".ccp4.gz")
_MODEL_EXT = (".pdb", ".cif", ".ent", ".mmcif", ".pdb.gz", ".cif.gz", ".ent.gz", ".mmcif.gz")


def cmd_simulate(a) -> None:
    from ..io import read_model, write_json, write_map
    from ..io.budget import box_voxels, check_budget, model_extent
    from ..prep.density import degrade_like_native, simulate_density

    cfg = settings(a, SimulateConfig)
    st = read_model(a.model)
    lo, hi = model_extent(st, a.model)
    pad = 3.0 * cfg.resolution_a if cfg.padding_a is None else cfg.padding_a
    n = box_voxels(lo, hi, cfg.voxel_size_a, pad)
    per_voxel = 16 if a.realism_seed is None else 72  # measured: 12, and 60 with the degradation's FFTs
    check_budget(a.model, per_voxel * n, memory_budget(a), f"a grid of {n:.3g} voxels for an extent of "
                 f"{' x '.join(f'{v:.0f}' for v in hi - lo)} Å")
    t = time.time()
    m = simulate_density(st, cfg.resolution_a, cfg.voxel_size_a, cfg.padding_a)
    extra = ""
    if a.realism_seed is not None:
        m, params = degrade_like_native(m, st, a.realism_seed)
        record = Path(str(a.output) + ".realism.json")
        write_json(record, {"seed": a.realism_seed, "resolution_a": cfg.resolution_a, "effects": params})
        extra = f", realism {', '.join(k for k in params if k not in ('scale', 'offset')) or 'none'} ({record.name})"
    write_map(m, a.output)
    say(f"{a.output}: {m.shape_xyz[0]}x{m.shape_xyz[1]}x{m.shape_xyz[2]} voxels of {cfg.voxel_size_a} Å, "
        f"origin {tuple(round(v, 2) for v in m.origin_a)}, {cfg.resolution_a} Å, {time.time() - t:.2f} s{extra}")


def cmd_sse(a) -> None:
    from ..io import read_model
    from ..prep.sse import assign_sse, sse_class_of, write_sse

    cfg = settings(a, SSEConfig)
    t = time.perf_counter()
    res = assign_sse(read_model(a.model), cfg)
    write_sse(res, a.output, cfg.class_map)
    classes = [sse_class_of(r.dssp, cfg.class_map) for r in res]
    say(f"{a.output}: {len(res)} residues ({cfg.engine}, {time.perf_counter() - t:.2f} s), "
        f"helix {classes.count(1)}, sheet {classes.count(2)}, "
        f"missing backbone atoms {sum(not r.complete for r in res)}, "
        f"chain breaks {sum(r.break_before for r in res)}")


def cmd_label(a) -> None:
    import numpy as np

    from ..io import protein_atoms, read_map, read_model, write_map
    from ..prep.crop import sse_of
    from ..prep.labels import atom_classes, label_voxels

    cfg = settings(a, LabelConfig)
    _map_budget(a, a.map, 76, "the map, its labels and the distances")  # ~62 measured
    st = read_model(a.model, list(a.chain) if a.chain else None)
    grid = read_map(a.map)
    atoms = protein_atoms(st)
    lab = label_voxels(grid, atoms, atom_classes(atoms, sse_of(a.sse, st)), cfg.radius_a)
    write_map(lab, a.output, labels=True)
    counts = np.bincount(lab.data.ravel(), minlength=4)
    say(f"{a.output}: background {counts[0]}, helix {counts[1]}, sheet {counts[2]}, other {counts[3]} voxels")


def _map_budget(a, map_path, per_voxel: int, what: str) -> None:
    """Refuse a map whose grid (from its header alone) needs more than the budget:
    ``per_voxel`` bytes of the command's arrays plus the file's own copy on reading."""
    from ..io.budget import check_budget, map_header

    h = map_header(map_path)
    check_budget(map_path, h.voxels * (per_voxel + h.bytes_per_voxel), memory_budget(a),
                 f"{'x'.join(map(str, h.shape_zyx[::-1]))} voxels: {what}")


def _component_settings(a) -> ComponentConfig:
    return settings(a, ComponentConfig, ignore=("radius_a",))


def _report(meta: dict) -> None:
    if meta["status"] != "ok":
        say(f"{meta['id']}: rejected: {meta['reason']}")
    else:
        say(f"{meta['id']}: {'x'.join(map(str, meta['shape_xyz']))} voxels, {meta['counts']}")


def _model_first(model: str, map_: str) -> tuple[str, str]:
    """``crop MODEL MAP``; the old order ``crop MAP MODEL`` is recognised by the file names."""
    low_a, low_b = model.lower(), map_.lower()
    if low_a.endswith(_MAP_EXT) and low_b.endswith(_MODEL_EXT):
        say("cryosse crop: reading MAP MODEL in the old order; the order is now MODEL MAP")
        return map_, model
    return model, map_


def cmd_crop(a) -> None:
    from ..prep.crop import crop_chains

    model, map_ = _model_first(a.model, a.map)
    if len(a.chain) != 1:
        raise InputError("--chain", "crop cuts one chain; use crop-entry for several")
    chain = a.chain[0]
    cfg = _component_settings(a)
    _map_budget(a, map_, 4 + 4, "the map and its copy")
    sid = a.id or f"{Path(model).name.split('.')[0]}_{chain}"
    meta, = crop_chains(map_, model, [chain], [a.output], cfg, sample_ids=[sid],
                        entry=a.entry or "", pdb_id=a.pdb_id or "", resolution_a=a.resolution, sse_path=a.sse)
    _report(meta)


def cmd_crop_entry(a) -> None:
    from ..ids import check
    from ..prep.crop import crop_chains, crop_prepared

    cfg = _component_settings(a)
    if a.prepared:
        if a.map or a.model:
            raise InputError(a.prepared, "give PREPARED or --map/--model, not both")
        if (Path(a.prepared) / "map.mrc").is_file():  # a rejected entry has none
            _map_budget(a, Path(a.prepared) / "map.mrc", 4 + 4, "the map and its copy")
        metas = crop_prepared(a.prepared, a.output, cfg)
    else:
        if not (a.map and a.model and a.chain and a.entry):
            raise InputError("crop-entry", "give PREPARED (from 'cryosse prepare-map'), or --map, --model, "
                                           "--chain and --entry")
        entry = check("--entry", a.entry)
        _map_budget(a, a.map, 4 + 4, "the map and its copy")
        out = Path(a.output)
        metas = crop_chains(a.map, a.model, list(a.chain), [out / f"{entry}_{c}" for c in a.chain], cfg,
                            sample_ids=[f"{entry}_{c}" for c in a.chain], entry=entry, pdb_id=a.pdb_id or "",
                            resolution_a=a.resolution, sse_path=a.sse)
    for meta in metas:
        _report(meta)


def cmd_prepare(a) -> None:
    from ..fetch import read_record
    from ..ids import CHAIN_ID, check
    from ..prep.experimental import prepare_entry

    if a.entry:
        check("--entry", a.entry)
    if a.record:
        rec = read_record(a.record)
    else:
        if not (a.map and a.model):
            raise InputError("prepare-map", "give --record, or --map and --model")
        rec = {"emdb": "", "map": a.map, "model": a.model, "resolution_a": a.resolution,
               "contour_level": a.contour, "status": "ok"}
    if a.entry:
        rec["entry"] = a.entry
    if a.pdb_id:
        rec["pdb"] = a.pdb_id
    if a.resolution is not None:
        rec["resolution_a"] = a.resolution
    if a.contour is not None:
        rec["contour_level"] = a.contour
    chains = [check("--chain", c, CHAIN_ID) for c in a.chain] if a.chain else None
    cfg = settings(a, QualityConfig)
    refused = None
    if rec.get("status", "ok") == "ok" and rec.get("map"):
        try:
            _resample_budget(a, rec["map"], cfg.voxel_size_a)
        except InputError as exc:
            if not a.record:  # one map the user named: an error
                raise
            # one entry of a harvest: rejected with the reason, and the harvest goes on
            refused = f"over the memory budget before reading: {exc}"
    q = prepare_entry(rec, a.output, cfg, chains, refused=refused)
    for ch, cq in q["chains"].items():
        corr = cq.get("correlation")
        say(f"{q['entry']} chain {ch}: {cq.get('status')}"
            + (f", correlation {corr:.2f}" if corr is not None else "")
            + (f": {cq['reason']}" if cq.get("reason") else ""))
    say(f"{a.output}/quality.json: {q['status']}{': ' + q['reason'] if q['reason'] else ''}")


def _resample_budget(a, map_path, voxel_size_a: float) -> None:
    """prepare-map's plan: the map as read (its copy and float32) and the resampled grid, its
    normalised copy and the chains' zones: 24 bytes a voxel of the resampled grid (17-18
    measured since the resampling runs in slabs; 55 before, when the coordinates of the whole
    grid were built at once)."""
    import numpy as np

    from ..io.budget import check_budget, map_header
    from ..prep.density import resampled_shape

    h = map_header(map_path)
    n_out = float(np.prod(resampled_shape(h.shape_zyx[::-1], h.voxel_size_a, voxel_size_a), dtype=np.float64))
    check_budget(map_path, h.voxels * (2 * h.bytes_per_voxel + 4) + 24 * n_out, memory_budget(a),
                 f"{'x'.join(map(str, h.shape_zyx[::-1]))} voxels resampled to {n_out:.3g} of {voxel_size_a:g} Å")


# ----------------------------------------------------------------------------- parser

def chain_option(p, help: str, required: bool = False):
    p.add_argument("--chain", type=strings, required=required, help=help)
    alias(p, "--chains", dest="chain", type=strings)


def sse_option(p):
    p.add_argument("--sse", help="per-residue table from 'cryosse sse' (default: run DSSP on the model)")


def label_radius_option(p, cls=LabelConfig, name="radius_a"):
    field_option(p, cls, name, "--label-radius", type=float,
                 help="a voxel takes the class of the nearest heavy atom within this many Å")
    alias(p, "--radius", dest=name, type=float)


def provenance_options(p, when: str = ""):
    """What meta.json records about the sample's origin."""
    p.add_argument("--entry", help=f"{when}entry id, recorded in meta.json (samples are <entry>_<chain>)")
    p.add_argument("--pdb-id", help=f"{when}PDB id, recorded in meta.json")
    p.add_argument("--resolution", type=float, help=f"{when}map resolution in Å, recorded in meta.json")


def component_options(p):
    field_option(p, ComponentConfig, "zone_radius_a", "--zone-radius", type=float,
                 help="density kept within this many Å of the chain's heavy atoms")
    field_option(p, ComponentConfig, "margin_a", "--margin", type=float,
                 help="box = the atoms' bounding box plus this many Å")
    field_option(p, ComponentConfig, "multiple", "--multiple", type=int,
                 help="box sides padded to a multiple of this many voxels")
    field_option(p, ComponentConfig, "max_side", "--max-side", type=int,
                 help="components with a longer side (voxels) are rejected")
    label_radius_option(p, ComponentConfig, "label_radius_a")
    memory_option(p)
    config_option(p)


def register(sub) -> None:
    s = add_command(sub, "simulate", "simulate a density map from an atomic model",
                    "Simulate density from MODEL (PDB/mmCIF, optionally gzipped) at a resolution: each atom "
                    "a Gaussian of sigma = 0.225 x resolution (ChimeraX molmap convention), electron form "
                    "factors (gemmi). The MRC header holds the voxel size and the origin.",
                    "simulate model.pdb --resolution 6 -o map.mrc", cmd_simulate)
    s.add_argument("model", metavar="MODEL", help="atomic model (PDB/mmCIF, optionally gzipped)")
    field_option(s, SimulateConfig, "resolution_a", "--resolution", type=float, help="resolution in Å")
    field_option(s, SimulateConfig, "voxel_size_a", "--voxel-size", type=float, help="voxel size in Å")
    field_option(s, SimulateConfig, "padding_a", "--padding", type=float,
                 help="Å of space around the model (none: 3 x resolution)")
    s.add_argument("--realism-seed", type=int, default=None,
                   help="degrade the map like a native one (cryosse.prep.realism: noise, blur, local resolution, "
                   "band-pass ripples, background, mask, threshold) with this seed; the effects and their "
                   "parameters are recorded in OUTPUT.realism.json")
    memory_option(s)
    config_option(s)
    output_option(s, "output MRC map")

    s = add_command(sub, "sse", "assign secondary structure (DSSP) per residue",
                    "Per-residue DSSP codes and classes (helix, sheet, other; configurable) of the protein "
                    "chains of MODEL, as a TSV table with the engine's code, the class, and flags for "
                    "residues missing backbone atoms and chain breaks.",
                    "sse model.pdb --engine mkdssp -o model_sse.tsv", cmd_sse)
    s.add_argument("model", metavar="MODEL", help="atomic model (PDB/mmCIF)")
    field_option(s, SSEConfig, "engine", "--engine", choices=ENGINES,
                 help="pydssp (H, E, - only) or mkdssp (Debian package dssp 4.x, eight states)")
    field_option(s, SSEConfig, "helix", "--helix", type=strings, help="DSSP codes of the helix class")
    field_option(s, SSEConfig, "sheet", "--sheet", type=strings, help="DSSP codes of the sheet class")
    config_option(s)
    output_option(s, "output TSV")

    s = add_command(sub, "label", "voxel labels of a model on a map's grid",
                    "Label every voxel of MAP's grid: the class of the nearest heavy atom of MODEL's protein "
                    "chains within --label-radius Å (0 background, 1 helix, 2 sheet, 3 other protein). "
                    "Writes an 8-bit MRC on exactly MAP's grid.",
                    "label model.pdb map.mrc --chain A -o labels.mrc", cmd_label)
    s.add_argument("model", metavar="MODEL", help="atomic model (PDB/mmCIF)")
    s.add_argument("map", metavar="MAP", help="map whose grid is labelled (MRC/CCP4)")
    chain_option(s, "chain(s), comma-separated (default: all protein chains)")
    sse_option(s)
    label_radius_option(s)
    memory_option(s)
    config_option(s)
    output_option(s, "output label MRC")

    s = add_command(sub, "crop", "box-crop one chain component with its labels",
                    "Cut the component of one chain out of MAP: density within --zone-radius Å of the chain "
                    "(other density masked out), boxed with --margin Å, sides padded to a multiple of "
                    "--multiple; writes density.mrc, labels.mrc and meta.json into OUTPUT (only meta.json, "
                    "with the reason, when rejected).",
                    "crop model.pdb map.mrc --chain A --sse model_sse.tsv -o components/model_A", cmd_crop)
    s.add_argument("model", metavar="MODEL", help="atomic model (PDB/mmCIF)")
    s.add_argument("map", metavar="MAP", help="density map (MRC/CCP4)")
    chain_option(s, "the chain to cut (required)", required=True)
    s.add_argument("--id", help="sample id (default <model>_<chain>)")
    provenance_options(s)
    component_options(s)
    sse_option(s)
    output_option(s, "output folder")

    s = add_command(sub, "crop-entry", "box-crop every chain of an entry",
                    "One component folder per chain under OUTPUT/<entry>_<chain>, the map and model read "
                    "once: every chain of a prepared experimental entry (PREPARED, from 'cryosse "
                    "prepare-map'; chains rejected by its quality checks get only meta.json with the "
                    "reason), or the --chain list of a simulated entry (--map, --model, --entry).",
                    "crop-entry results/entries/EMD-5168 -o results/components/EMD-5168\n"
                    "crop-entry --map map.mrc --model model.pdb --sse sse.tsv --chain A,B --entry 1abc -o comps",
                    cmd_crop_entry)
    s.add_argument("prepared", metavar="PREPARED", nargs="?", help="folder from 'cryosse prepare-map'")
    s.add_argument("--map", help="density map of a simulated entry (instead of PREPARED)")
    s.add_argument("--model", help="its atomic model")
    chain_option(s, "with --map: the chains, comma-separated")
    provenance_options(s, "with --map: ")
    sse_option(s)
    component_options(s)
    output_option(s, "output folder")

    s = add_command(sub, "prepare-map", "resample and normalise an experimental map, check the fit",
                    "Read an experimental map (any MRC/CCP4 header), resample it to cubic voxels (trilinear "
                    "at explicit positions), normalise it, and check each chain of its fitted model: "
                    "map-model correlation in the chain's zone, atoms inside the recommended contour, "
                    "coverage, resolution range, SSE content. Writes OUTPUT/quality.json (rejections with "
                    "reasons) and, when a chain passes, map.mrc, model.cif and sse.tsv.",
                    "prepare-map --record results/fetch/EMD-5168.json -o results/entries/EMD-5168\n"
                    "prepare-map --map emd_5168.map --model 3mfp.pdb --resolution 6.6 -o prepared", cmd_prepare)
    s.add_argument("--record", help="JSON record from 'cryosse fetch entry --record'")
    s.add_argument("--map", help="local map (instead of --record)")
    s.add_argument("--model", help="local model (instead of --record)")
    s.add_argument("--entry", help="entry id (default the EMDB id)")
    s.add_argument("--pdb-id", help="PDB id of the model")
    chain_option(s, "chains, comma-separated (default all protein chains)")
    s.add_argument("--resolution", type=float, help="map resolution in Å (default from the header)")
    s.add_argument("--contour", type=float, help="recommended contour level (default from the header)")
    field_option(s, QualityConfig, "voxel_size_a", "--voxel-size", type=float, help="voxel size in Å of the grid")
    field_option(s, QualityConfig, "normalise", "--normalise", choices=NORMALISE_MODES,
                 help="contour (the recommended level becomes 1), zscore or none")
    field_option(s, QualityConfig, "resolution_a", "--resolution-range", type=float, nargs=2, metavar=("LO", "HI"),
                 help="accepted resolutions in Å")
    field_option(s, QualityConfig, "min_correlation", "--min-correlation", type=float,
                 help="least map-model correlation in a chain's zone")
    field_option(s, QualityConfig, "min_atoms_in_contour", "--min-atoms-in-contour", type=float,
                 help="least fraction of a chain's atoms inside the recommended contour")
    field_option(s, QualityConfig, "min_coverage", "--min-coverage", type=float,
                 help="least fraction of a chain's atoms inside the map box")
    field_option(s, QualityConfig, "min_sse_fraction", "--min-sse-fraction", type=float,
                 help="least fraction of a chain's residues in helix or sheet")
    field_option(s, QualityConfig, "zone_radius_a", "--zone-radius", type=float,
                 help="zone around a chain's atoms in which the fit is measured, Å")
    memory_option(s)
    config_option(s)
    output_option(s, "output folder")
