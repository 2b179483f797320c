"""Secondary structure assignment (DSSP) per residue, and its mapping to label classes.

Two engines (``SSEConfig.engine``):

- ``pydssp`` (default, no binary needed): pydssp's NumPy re-implementation of DSSP's
  hydrogen-bond rule, computed here in blocks of rows so that memory grows as O(L) instead of
  O(L²) (identical assignments to pydssp's own dense code, tested). As DSSP does, a residue that
  cannot donate a backbone N-H (proline, the first residue of a chain, the first residue after
  a chain break) is masked as donor, and all chains are assigned in one call so that sheets
  between chains are found. pydssp gives three states only: ``H``, ``E`` and ``-``.
- ``mkdssp`` (Debian package ``dssp``, version 4.x): the reference program, eight states
  (``H G I P E B T S`` or ``-``). mkdssp 4.x silently assigns nothing to a PDB file without a
  HEADER line or an mmCIF file without ``_pdbx_poly_seq_scheme``; we write it a PDB file with a
  HEADER line (chains renamed to one character, mapped back), parse its classic ``.dssp``
  output, map residues back by chain, number and insertion code, and raise an error when it
  assigns no residue.

Residues missing a backbone atom (N, CA, C, O) are not assigned (code ``-``) and break the
chain. Codes kept per residue are the engine's; the three-class mapping (default, as
DeepSSETracer and Emap2sec+; ``sse.classes`` in the config): helix = H, G, I; sheet = E, B;
other = everything else.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import HELIX, OTHER, SHEET
from ..errors import CryosseError
from ..io import read_tsv, write_tsv

__all__ = ["ResidueSSE", "SSEConfig", "assign_sse", "assign_pydssp", "assign_mkdssp",
           "hbond_pairs", "write_sse", "read_sse", "DEFAULT_CLASS_MAP", "sse_class_of",
           "ENGINES", "MkdsspError", "residue_class", "parse_dssp"]

DEFAULT_CLASS_MAP = {"H": HELIX, "G": HELIX, "I": HELIX, "E": SHEET, "B": SHEET}
ENGINES = ("pydssp", "mkdssp")
_BACKBONE = ("N", "CA", "C", "O")
#: Longest peptide bond (Å) between consecutive residues that still counts as connected.
MAX_PEPTIDE_BOND_A = 2.0
#: Matrix elements per block of the blocked H-bond energy (about 16 MB per float64 array).
BLOCK_ELEMENTS = 2_000_000


class MkdsspError(CryosseError):
    """mkdssp is missing, failed, or assigned nothing."""


@dataclass(frozen=True)
class SSEConfig:
    """Engine and three-class mapping (``sse`` in the config)."""

    engine: str = "pydssp"
    helix: tuple[str, ...] = ("H", "G", "I")
    sheet: tuple[str, ...] = ("E", "B")
    mkdssp: str = "mkdssp"

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"unknown DSSP engine {self.engine!r} (choose {', '.join(ENGINES)})")
        if set(self.helix) & set(self.sheet):
            raise ValueError("a DSSP code cannot be both helix and sheet")

    @property
    def class_map(self) -> dict[str, int]:
        return {**{c: HELIX for c in self.helix}, **{c: SHEET for c in self.sheet}}


@dataclass(frozen=True)
class ResidueSSE:
    chain: str
    seqnum: int
    icode: str
    resname: str
    dssp: str
    complete: bool = field(default=True, compare=False)   # has N, CA, C and O
    break_before: bool = field(default=False, compare=False)  # no peptide bond to the previous residue
    klass: int | None = field(default=None, compare=False)  # class read from a table (its mapping)

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.chain, self.seqnum, self.icode)


def sse_class_of(code: str, class_map: dict[str, int] | None = None) -> int:
    """Label class (1 helix, 2 sheet, 3 other) of a DSSP code."""
    return (class_map or DEFAULT_CLASS_MAP).get(code, OTHER)


def residue_class(r: ResidueSSE, class_map: dict[str, int] | None = None) -> int:
    """Class of a residue: the one its table recorded (the mapping configured when it was
    written), unless ``class_map`` is given, else the default mapping of its code."""
    if class_map is None and r.klass is not None:
        return r.klass
    return sse_class_of(r.dssp, class_map)


def _backbone(structure):
    """Rows of (N, CA, C, O) coordinates, donor mask, residue records, complete-backbone mask."""
    coords, donor, records, has_bb = [], [], [], []
    for ch in structure[0]:
        prev_c, prev_complete = None, False
        for k, res in enumerate(ch):
            atoms = {}
            for name in _BACKBONE:
                a = res.find_atom(name, "*")
                if a is not None:
                    atoms[name] = np.array(a.pos.tolist())
            complete = len(atoms) == 4
            bonded = prev_c is not None and "N" in atoms and \
                np.linalg.norm(atoms["N"] - prev_c) <= MAX_PEPTIDE_BOND_A
            records.append(ResidueSSE(ch.name, int(res.seqid.num), res.seqid.icode.strip(), res.name,
                                      "-", complete, k > 0 and not bonded))
            has_bb.append(complete)
            if complete:
                coords.append([atoms[n] for n in _BACKBONE])
                # no N-H donor without the previous residue's backbone (pydssp places H from it)
                donor.append(bonded and prev_complete and res.name != "PRO")
            prev_c, prev_complete = atoms.get("C"), complete
    return (np.asarray(coords, float).reshape(-1, 4, 3), np.asarray(donor, bool), records,
            np.asarray(has_bb, bool))


def _hydrogens(coord: np.ndarray) -> np.ndarray:
    """pydssp's amide H positions for residues 1..L-1 (from the previous residue's C)."""
    vec_cn = coord[1:, 0] - coord[:-1, 2]
    vec_cn /= np.linalg.norm(vec_cn, axis=-1, keepdims=True)
    vec_can = coord[1:, 0] - coord[1:, 1]
    vec_can /= np.linalg.norm(vec_can, axis=-1, keepdims=True)
    vec_nh = vec_cn + vec_can
    vec_nh /= np.linalg.norm(vec_nh, axis=-1, keepdims=True)
    return coord[1:, 0] + 1.01 * vec_nh


def hbond_pairs(coord: np.ndarray, donor_mask: np.ndarray,
                block_elements: int = BLOCK_ELEMENTS) -> np.ndarray:
    """(acceptor C=O residue, donor N-H residue) pairs with an H-bond, shape (n, 2).

    pydssp's rule (electrostatic energy below -0.5 kcal/mol, DSSP's constants, pydssp's H
    placement; no pair (i, i), (i, i+1), (i, i+2); masked donors never bond), evaluated in
    blocks of donor rows so that no L x L matrix is ever held.
    """
    from pydssp.pydssp_numpy import CONST_F, CONST_Q1Q2, DEFAULT_CUTOFF

    L = len(coord)
    if L < 2:
        return np.zeros((0, 2), np.int64)
    n, h = coord[1:, 0], _hydrogens(coord)            # donors 1..L-1
    c, o = coord[:-1, 2], coord[:-1, 3]               # acceptors 0..L-2
    rows = max(1, block_elements // L)
    out = []
    for start in range(0, L - 1, rows):
        sl = slice(start, min(start + rows, L - 1))
        nn, hh = n[sl, None, :], h[sl, None, :]
        d_on = np.linalg.norm(o[None] - nn, axis=-1)
        d_ch = np.linalg.norm(c[None] - hh, axis=-1)
        d_oh = np.linalg.norm(o[None] - hh, axis=-1)
        d_cn = np.linalg.norm(c[None] - nn, axis=-1)
        with np.errstate(divide="ignore"):
            e = CONST_Q1Q2 * (1. / d_on + 1. / d_ch - 1. / d_oh - 1. / d_cn) * CONST_F
        d_idx, a_idx = np.nonzero(e < DEFAULT_CUTOFF)
        donor = d_idx + sl.start + 1
        keep = ((donor - a_idx) > 2) | ((donor - a_idx) < 0)
        keep &= donor_mask[donor]
        out.append(np.stack([a_idx[keep], donor[keep]], 1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros((0, 2), np.int64)


def _assign_blocked(coord: np.ndarray, donor_mask: np.ndarray,
                    block_elements: int = BLOCK_ELEMENTS) -> np.ndarray:
    """pydssp's assignment (0 loop, 1 helix, 2 strand per residue) from sparse H-bonds."""
    L = len(coord)
    pairs = hbond_pairs(coord, donor_mask, block_elements)
    a, d = pairs[:, 0], pairs[:, 1]
    code = a * L + d

    def has(acc: np.ndarray, don: np.ndarray) -> np.ndarray:
        ok = (acc >= 0) & (acc < L) & (don >= 0) & (don < L)
        keys = np.where(ok, acc * L + don, -1)
        return ok & np.isin(keys, code)

    # helices: turn n at i = H-bond C=O(i) -> N-H(i+n), as pydssp (including its np.roll wraps)
    def turn(n: int) -> np.ndarray:
        t = np.zeros(max(L - n, 0), bool)
        sel = (d - a) == n
        t[a[sel]] = True
        return t

    def h_of(n: int) -> np.ndarray:
        t = turn(n)
        core = t[:-1] & t[1:] if len(t) > 1 else np.zeros(0, bool)
        return np.pad(core, (1, n))[:L] if L > n else np.zeros(L, bool)

    h3, h4, h5 = h_of(3), h_of(4), h_of(5)
    helix4 = h4 | np.roll(h4, 1) | np.roll(h4, 2) | np.roll(h4, 3)
    h3 = h3 & ~np.roll(helix4, -1) & ~helix4
    h5 = h5 & ~np.roll(helix4, -1) & ~helix4
    helix3 = h3 | np.roll(h3, 1) | np.roll(h3, 2)
    helix5 = h5 | np.roll(h5, 1) | np.roll(h5, 2) | np.roll(h5, 3) | np.roll(h5, 4)
    helix = helix3 | helix4 | helix5
    # bridges (pydssp's definition; residues 1..L-2 only)
    ladder = np.zeros(L, bool)

    def mark(i: np.ndarray, j: np.ndarray) -> None:
        ok = (i >= 1) & (i <= L - 2) & (j >= 1) & (j <= L - 2)
        ladder[i[ok]] = True
        ladder[j[ok]] = True

    par = has(d, a + 2)            # hb(I-1, J) & hb(J, I+1) with I = a+1, J = d
    mark(a[par] + 1, d[par])
    anti1 = has(d, a)              # hb(I, J) & hb(J, I)
    mark(a[anti1], d[anti1])
    anti2 = has(d - 2, a + 2)      # hb(I-1, J+1) & hb(J-1, I+1) with I = a+1, J = d-1
    mark(a[anti2] + 1, d[anti2] - 1)
    # pydssp takes the argmax of (loop, helix, strand): helix wins over strand
    return np.where(helix, 1, np.where(ladder, 2, 0)).astype(np.int8)


def assign_pydssp(structure, block_elements: int = BLOCK_ELEMENTS) -> list[ResidueSSE]:
    """pydssp codes (``H``, ``E``, ``-``) of every residue of the first model, all chains at once."""
    coords, donor, records, has_bb = _backbone(structure)
    codes = np.full(len(records), "-", dtype="<U1")
    if len(coords) >= 3:
        idx = _assign_blocked(coords, donor, block_elements)
        codes[np.flatnonzero(has_bb)] = np.array(["-", "H", "E"])[idx]
    return [ResidueSSE(r.chain, r.seqnum, r.icode, r.resname, str(c), r.complete, r.break_before)
            for r, c in zip(records, codes)]


_ONE_CHAR = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _mkdssp_input(structure) -> tuple[str, dict[str, str]]:
    """PDB text (HEADER line first, chains renamed to one character) and the renaming."""
    import gemmi

    st = gemmi.Structure()
    st.cell = gemmi.UnitCell()  # no CRYST1 symmetry for mkdssp to apply
    model = gemmi.Model(1)
    names = {}
    if len(structure[0]) > len(_ONE_CHAR):
        raise MkdsspError(f"mkdssp input: more than {len(_ONE_CHAR)} chains")
    for k, ch in enumerate(structure[0]):
        new = _ONE_CHAR[k]
        names[new] = ch.name
        copy = ch.clone()
        copy.name = new
        model.add_chain(copy)
    st.add_model(model)
    st.setup_entities()
    body = st.make_pdb_string(gemmi.PdbWriteOptions(minimal=True))
    return "HEADER    CRYOSSE INPUT FOR MKDSSP                 01-JAN-00   XXXX              \n" + body, names


def parse_dssp(text: str) -> dict[tuple[str, int, str], str]:
    """Residue (chain, number, insertion code) -> code, from classic ``.dssp`` output."""
    out = {}
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith("  #  RESIDUE"):
            break
    for line in lines:
        if len(line) < 17 or line[13] == "!":  # chain break marker
            continue
        num, icode, chain, code = line[5:10].strip(), line[10].strip(), line[11], line[16]
        out[(chain, int(num), icode)] = code if code != " " else "-"
    return out


def assign_mkdssp(structure, executable: str = "mkdssp") -> list[ResidueSSE]:
    """mkdssp's eight-state codes of every residue of the first model (see module doc)."""
    exe = shutil.which(executable)
    if exe is None:
        raise MkdsspError(f"{executable}: not found (install Debian package 'dssp', or use engine pydssp)")
    _, _, records, _ = _backbone(structure)
    text, names = _mkdssp_input(structure)
    back = {v: k for k, v in names.items()}
    with tempfile.TemporaryDirectory(prefix="cryosse-mkdssp-") as tmp:
        src, dst = Path(tmp) / "in.pdb", Path(tmp) / "out.dssp"
        src.write_text(text)
        r = subprocess.run([exe, "--output-format", "dssp", str(src), str(dst)],
                           capture_output=True, text=True)
        if r.returncode != 0 or not dst.is_file():
            msg = " ".join((r.stderr or r.stdout).split())[:300]
            raise MkdsspError(f"{executable} failed (exit {r.returncode}): {msg}")
        got = parse_dssp(dst.read_text())
    if not got:
        raise MkdsspError(f"{executable} assigned no residue (of {len(records)}): check its input "
                          "(mkdssp 4.x needs a HEADER line in PDB files)")
    out = []
    for rec in records:
        code = got.get((back[rec.chain], rec.seqnum, rec.icode), "-")
        out.append(ResidueSSE(rec.chain, rec.seqnum, rec.icode, rec.resname, code, rec.complete,
                              rec.break_before))
    return out


def assign_sse(structure, cfg: SSEConfig | str = SSEConfig()) -> list[ResidueSSE]:
    """DSSP code of every residue of the protein chains of ``structure`` (first model)."""
    if isinstance(cfg, str):
        cfg = SSEConfig(engine=cfg)
    if cfg.engine == "mkdssp":
        return assign_mkdssp(structure, cfg.mkdssp)
    return assign_pydssp(structure)


SSE_COLUMNS = ["chain", "seqnum", "icode", "resname", "dssp", "sse", "complete", "break_before"]


def write_sse(residues: list[ResidueSSE], path: str | os.PathLike,
              class_map: dict[str, int] | None = None) -> None:
    """Per-residue table: chain, seqnum, icode, resname, dssp (the engine's code, eight states
    with mkdssp), sse (class name), complete (1 if N, CA, C, O are present), break_before (1 if
    not bonded to the previous residue of its chain)."""
    from .. import LABEL_NAMES

    rows = [{"chain": r.chain, "seqnum": r.seqnum, "icode": r.icode, "resname": r.resname,
             "dssp": r.dssp, "sse": LABEL_NAMES[sse_class_of(r.dssp, class_map)],
             "complete": int(r.complete), "break_before": int(r.break_before)}
            for r in residues]
    write_tsv(path, rows, SSE_COLUMNS)


def read_sse(path: str | os.PathLike) -> list[ResidueSSE]:
    """Read a table written by :func:`write_sse` (its ``sse`` column gives each class)."""
    from .. import LABEL_NAMES

    code_of = {v: k for k, v in LABEL_NAMES.items()}
    return [ResidueSSE(r["chain"], int(r["seqnum"]), r["icode"] or "", r["resname"], r["dssp"] or "-",
                       r.get("complete", "1") != "0", r.get("break_before", "0") == "1",
                       code_of.get(r.get("sse") or ""))
            for r in read_tsv(path)]
