"""Reading and writing maps (MRC/CCP4) and atomic models (PDB/mmCIF), safely.

The one currency between stages is :class:`Map`: a 3D array indexed ``[z, y, x]`` (C order,
x fastest, as MRC files with ``mapc, mapr, maps = 1, 2, 3`` store it), the voxel size in Å
along x, y, z, and the position in Å of the centre of voxel ``[0, 0, 0]``.

Every writer here writes to a temporary file in the destination folder and renames it into
place, so a crash never leaves a half-written output and a reader never sees one.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import InputError

__all__ = [
    "Map", "read_map", "write_map", "write_map_mmap", "read_model", "model_report", "ProteinAtoms", "protein_atoms",
    "atomic_path", "write_text", "write_json", "write_tsv", "read_tsv", "pyplot", "write_png",
]


@dataclass(frozen=True)
class Map:
    """A density or label map on a regular orthogonal grid.

    Attributes
    ----------
    data : ndarray, shape (nz, ny, nx)
        Values; ``data[k, j, i]`` is at ``origin_a + (i, j, k) * voxel_size_a``.
    voxel_size_a : (float, float, float)
        Voxel size in Å along x, y, z.
    origin_a : (float, float, float)
        Position in Å of the centre of voxel ``[0, 0, 0]`` (x, y, z).
    """

    data: np.ndarray
    voxel_size_a: tuple[float, float, float]
    origin_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def shape_xyz(self) -> tuple[int, int, int]:
        nz, ny, nx = self.data.shape
        return nx, ny, nz

    def with_data(self, data: np.ndarray) -> "Map":
        """The same grid holding other values."""
        if data.shape != self.data.shape:
            raise ValueError(f"shape {data.shape} differs from the map's {self.data.shape}")
        return replace(self, data=data)

    def axis_coords(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Å coordinates of voxel centres along x, y, z."""
        return tuple(self.origin_a[a] + self.voxel_size_a[a] * np.arange(self.shape_xyz[a])
                     for a in range(3))

    def xyz_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Fractional (x, y, z) voxel indices of Å positions, shape (N, 3)."""
        return (np.asarray(xyz, float) - np.asarray(self.origin_a)) / np.asarray(self.voxel_size_a)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def read_map(path: str | os.PathLike, *, allow_nan: bool = False) -> Map:
    """Read an MRC/CCP4 map (optionally gzipped) into a :class:`Map` in x, y, z order.

    Any axis order (``mapc/mapr/maps``) is brought to ``[z, y, x]``; the voxel size is
    ``cella / (mx, my, mz)``; the origin is the header's ``origin`` field when non-zero,
    otherwise ``nstart * voxel_size`` (both conventions occur in real maps). Modes int8,
    int16, uint16, float16 and float32 are read; integers stay integers, floats become float32.
    """
    import mrcfile

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such map file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(p, mode="r", permissive=False) as mrc:
                h = mrc.header
                raw = np.asarray(mrc.data)
                if raw is None or raw.ndim != 3:
                    raise ValueError("not a 3D map")
                mapcrs = [int(h.mapc), int(h.mapr), int(h.maps)]
                nstart_crs = [int(h.nxstart), int(h.nystart), int(h.nzstart)]
                cell = np.array([float(h.cella.x), float(h.cella.y), float(h.cella.z)])
                sampling = np.array([int(h.mx), int(h.my), int(h.mz)])
                origin_hdr = np.array([float(h.origin.x), float(h.origin.y), float(h.origin.z)])
                raw = raw.copy()
    except InputError:
        raise
    except Exception as exc:  # mrcfile raises ValueError/OSError/EOFError for broken files
        raise InputError(p, f"not a readable MRC/CCP4 map ({_one_line(exc)})") from None
    if sorted(mapcrs) != [1, 2, 3]:
        raise InputError(p, f"invalid axis order mapc/mapr/maps = {mapcrs}")
    # data dims are (sections, rows, columns) -> physical axes (maps, mapr, mapc)
    data_axes = [mapcrs[2], mapcrs[1], mapcrs[0]]
    order = [data_axes.index(a) for a in (3, 2, 1)]
    data = np.ascontiguousarray(raw.transpose(order))
    n_xyz = np.array(data.shape[::-1])
    if np.any(sampling <= 0):
        sampling = n_xyz
    if np.any(cell <= 0):
        raise InputError(p, f"invalid cell dimensions {cell.tolist()}")
    voxel = cell / sampling
    nstart_xyz = np.zeros(3)
    for crs_index, axis in enumerate(mapcrs):
        nstart_xyz[axis - 1] = nstart_crs[crs_index]
    origin = origin_hdr if np.any(origin_hdr != 0) else nstart_xyz * voxel
    if data.dtype.kind == "f":
        data = data.astype(np.float32, copy=False)
        if not allow_nan and not np.all(np.isfinite(data)):
            bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
            raise InputError(p, f"map contains {bad} NaN or infinite values")
    return Map(data, tuple(float(v) for v in voxel), tuple(float(v) for v in origin),
               meta={"path": str(p), "mapcrs": mapcrs})


_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file is removed when the block raises, so ``path`` is either the old file,
    or the complete new one, never a partial write.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def pyplot():
    """matplotlib's pyplot with the non-interactive Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_png(fig, path: str | os.PathLike, dpi: int = 100) -> None:
    """Save a matplotlib figure as PNG atomically, then close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)


def write_json(path: str | os.PathLike, obj) -> None:
    """Write JSON atomically (sorted keys, indented, trailing newline)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")


def write_tsv(path: str | os.PathLike, rows: list[dict], columns: list[str] | None = None) -> None:
    """Write rows as a tab-separated table with a header, atomically."""
    columns = columns or (list(rows[0]) if rows else [])
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, delimiter="\t", lineterminator="\n",
                           extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow(row)


def read_tsv(path: str | os.PathLike) -> list[dict]:
    """Read a tab-separated table with a header into a list of dicts (all values strings)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such table")
    with open(p, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def write_map(m: Map, path: str | os.PathLike, *, labels: bool = False) -> None:
    """Write ``m`` as an MRC file (gzipped if the name ends in ``.gz``), atomically.

    Density is stored as float32 (mode 2); labels (``labels=True``) as 8-bit integers (mode 0,
    values 0-3 read the same signed or unsigned). The placement is written so that gemmi
    (which reads ``nstart``) and ChimeraX/mrcfile (``origin``) agree: when the origin is a
    whole number of voxels it goes into ``nxstart/nystart/nzstart`` with ``origin = 0``,
    otherwise into ``origin`` with ``nstart = 0``.
    """
    import mrcfile

    dest = Path(path)
    data = np.ascontiguousarray(m.data.astype(np.int8 if labels else np.float32))
    with atomic_path(dest) as tmp:
        compression = "gzip" if dest.name.endswith(".gz") else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.new(tmp, overwrite=True, compression=compression) as mrc:
                mrc.set_data(data)
                _place(mrc, m.voxel_size_a, m.origin_a)
                mrc.update_header_stats()


def _place(mrc, voxel_size_a, origin_a) -> None:
    """Voxel size, axis order 1,2,3 and placement (see :func:`write_map`) of an open MRC."""
    voxel = np.asarray(voxel_size_a, float)
    origin = np.asarray(origin_a, float)
    steps = origin / voxel
    mrc.voxel_size = tuple(voxel)
    h = mrc.header
    h.mapc, h.mapr, h.maps = 1, 2, 3
    if np.allclose(steps, np.round(steps), atol=1e-4):
        s = np.round(steps).astype(int)
        h.nxstart, h.nystart, h.nzstart = int(s[0]), int(s[1]), int(s[2])
        h.origin = (0.0, 0.0, 0.0)
    else:
        h.nxstart = h.nystart = h.nzstart = 0
        h.origin = tuple(origin)


@contextlib.contextmanager
def write_map_mmap(like: Map, path: str | os.PathLike, *, labels: bool = False) -> Iterator[np.ndarray]:
    """Yield a writable memory-mapped ``[z, y, x]`` array for a new MRC file on ``like``'s grid.

    For outputs larger than memory: write every z-plane of the array, piece by piece; when the
    block ends the header gets the placement of :func:`write_map` and statistics computed piece
    by piece (no full-size temporary), and the file is renamed onto ``path`` (atomically; on an
    error nothing is left). Density is float32 (mode 2), labels int8 (mode 0).
    """
    import mrcfile

    dest = Path(path)
    with atomic_path(dest) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.new_mmap(tmp, like.data.shape, mrc_mode=0 if labels else 2,
                                  overwrite=True) as mrc:
                yield mrc.data
                _place(mrc, like.voxel_size_a, like.origin_a)
                lo, hi, total, squares = np.inf, -np.inf, 0.0, 0.0
                for plane in mrc.data:  # one z-plane at a time
                    lo, hi = min(lo, float(plane.min())), max(hi, float(plane.max()))
                    total += float(plane.sum(dtype=np.float64))
                    squares += float(np.square(plane, dtype=np.float64).sum())
                n = max(mrc.data.size, 1)
                mean = total / n
                h = mrc.header
                h.dmin, h.dmax, h.dmean = lo, hi, mean
                h.rms = float(np.sqrt(max(squares / n - mean * mean, 0.0)))
                mrc.flush()


# --------------------------------------------------------------------------- models


#: Standard amino acids by one-letter code (the parent of a modified residue, e.g. MSE -> MET).
_PARENT = {"A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU",
           "G": "GLY", "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE",
           "P": "PRO", "S": "SER", "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL"}


def _keep_best_altloc(model) -> int:
    """In each residue with alternative conformations keep the one with the highest summed
    occupancy (ties: the first listed), plus the atoms without altloc. Returns residues changed."""
    changed = 0
    for ch in model:
        for res in ch:
            occ: dict[str, float] = {}
            for a in res:
                if a.altloc != "\0":
                    occ[a.altloc] = occ.get(a.altloc, 0.0) + a.occ
            if not occ:
                continue
            best = max(occ, key=lambda k: (occ[k], -list(occ).index(k)))
            for i in reversed(range(len(res))):
                if res[i].altloc not in ("\0", best):
                    del res[i]
            for a in res:
                a.altloc = "\0"
            res.flag = "a"
            changed += 1
    return changed


def _standardise_modified(model) -> int:
    """Rename modified amino acids to their standard parent (MSE -> MET, ...), as protein."""
    import gemmi

    n = 0
    for ch in model:
        for res in ch:
            info = gemmi.find_tabulated_residue(res.name)
            if info is None or not info.is_amino_acid() or info.is_standard():
                continue
            parent = _PARENT.get(info.one_letter_code.upper())
            if parent is None:
                continue  # unknown parent (UNK, ...): kept as is, still protein
            res.name = parent
            res.het_flag = "A"
            res.flag = "m"
            for a in res:
                if a.name == "SE" and parent == "MET":
                    a.name, a.element = "SD", gemmi.Element("S")
            n += 1
    return n


def read_model(path: str | os.PathLike, chains: list[str] | None = None):
    """Read a PDB/mmCIF model (optionally gzipped) and keep what is protein.

    Returns a :class:`gemmi.Structure` with one model (the first of a multi-model file) and
    only protein chains. What is done, in order: hydrogens removed; in each residue with
    alternative conformations the highest-occupancy one is kept (ties: the first); modified
    amino acids renamed to their standard parent (MSE -> MET with SE -> SD, and every residue
    gemmi tabulates as a modified amino acid) and kept as protein; waters, ligands (including
    ions and sugars) removed; nucleic-acid chains removed; residues missing backbone atoms,
    chain breaks and insertion codes kept as they are. Residues whose altloc was chosen get
    ``flag = 'a'``, renamed modified residues ``flag = 'm'``; :func:`model_report` counts
    them, the breaks and the incomplete residues. ``chains`` keeps only those chains
    (names as in the file). Raises :class:`InputError` naming the file when it cannot be parsed
    or holds no protein.
    """
    import gemmi

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such model file")
    try:
        st = gemmi.read_structure(str(p), merge_chain_parts=True)
    except Exception as exc:
        raise InputError(p, f"not a readable PDB/mmCIF model ({_one_line(exc)})") from None
    if len(st) == 0:
        raise InputError(p, "model file holds no atoms")
    del st[1:]
    st.remove_hydrogens()
    _keep_best_altloc(st[0])
    _standardise_modified(st[0])
    st.setup_entities()
    st.remove_ligands_and_waters()
    st.remove_alternative_conformations()  # microheterogeneity: the first residue name
    model = st[0]
    keep = []
    for ch in model:
        pol = ch.get_polymer()
        if len(pol) and pol.check_polymer_type() in (gemmi.PolymerType.PeptideL,
                                                      gemmi.PolymerType.PeptideD):
            keep.append(ch.name)
    if chains is not None:
        missing = sorted(set(chains) - set(keep))
        if missing:
            raise InputError(p, f"no protein chain named {', '.join(missing)}")
        keep = [c for c in keep if c in chains]
    for name in [ch.name for ch in model]:  # names first: removal invalidates chain references
        if name not in keep:
            model.remove_chain(name)
    if not keep:
        raise InputError(p, "model has no protein chain")
    return st


def model_report(structure, chain: str | None = None) -> dict[str, int]:
    """Counts for the protein chains of ``structure`` (or one ``chain``): residues, residues
    missing a backbone atom (N, CA, C or O), chain breaks (consecutive residues whose C-N
    distance exceeds 2.0 Å, or where either atom is missing), residues with an insertion code,
    residues whose altloc was chosen, and modified residues renamed to their parent."""
    n = missing = breaks = icode = altloc = modified = 0
    for ch in structure[0]:
        if chain is not None and ch.name != chain:
            continue
        prev_c = None
        for k, res in enumerate(ch):
            n += 1
            names = {a.name for a in res}
            missing += not {"N", "CA", "C", "O"} <= names
            icode += res.seqid.icode not in (" ", "")
            altloc += res.flag == "a"
            modified += res.flag == "m"
            nat = res.find_atom("N", "*")
            if k > 0 and (prev_c is None or nat is None or prev_c.dist(nat.pos) > 2.0):
                breaks += 1
            c = res.find_atom("C", "*")
            prev_c = c.pos if c is not None else None
    return {"n_residues": n, "n_missing_backbone": missing, "n_chain_breaks": breaks,
            "n_insertion_codes": icode, "n_altloc_chosen": altloc, "n_modified": modified}


@dataclass(frozen=True)
class ProteinAtoms:
    """Heavy atoms of protein residues, in model order.

    ``xyz`` (N, 3) Å; ``residue`` (N,) index into the residue table ``residues`` (a list of
    ``(chain, seqnum, icode, resname)``), which is in model order, so a lower index is
    earlier in the chain (and chains are in file order).
    """

    xyz: np.ndarray
    residue: np.ndarray
    chain: np.ndarray
    residues: list[tuple[str, int, str, str]]


def protein_atoms(structure, chains: list[str] | None = None) -> ProteinAtoms:
    """Heavy atoms and residue table of the protein chains of ``structure``'s first model."""
    xyz, res_idx, chain_of = [], [], []
    residues = []
    for ch in structure[0]:
        if chains is not None and ch.name not in chains:
            continue
        for res in ch:
            index = len(residues)
            residues.append((ch.name, int(res.seqid.num), res.seqid.icode.strip(), res.name))
            for atom in res:
                if atom.is_hydrogen():
                    continue
                xyz.append((atom.pos.x, atom.pos.y, atom.pos.z))
                res_idx.append(index)
                chain_of.append(ch.name)
    return ProteinAtoms(np.asarray(xyz, float).reshape(-1, 3), np.asarray(res_idx, np.int64),
                        np.asarray(chain_of, dtype=object), residues)
