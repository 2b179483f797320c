"""Secondary structure assignment (DSSP) per residue, and its mapping to label classes.

Engine: ``pydssp`` (a NumPy re-implementation of DSSP's hydrogen-bond rule). As DSSP does, a
residue that cannot donate a backbone N-H (proline, the first residue of a chain, the first
residue after a chain break) is masked as donor, and all chains are assigned in one call so
that sheets between chains are found. Residues missing a backbone atom (N, CA, C, O) are
not assigned (code ``-``) and break the chain.

Codes kept per residue are DSSP's (``H``, ``G``, ``I``, ``E``, ``B``, ... or ``-``; pydssp
itself only distinguishes ``H``, ``E`` and ``-``). Three-class mapping (default, as
DeepSSETracer and Emap2sec+): helix = H, G, I; sheet = E, B; other = everything else.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from . import HELIX, OTHER, SHEET
from .io import read_tsv, write_tsv

__all__ = ["ResidueSSE", "assign_sse", "write_sse", "read_sse", "DEFAULT_CLASS_MAP",
           "sse_class_of"]

DEFAULT_CLASS_MAP = {"H": HELIX, "G": HELIX, "I": HELIX, "E": SHEET, "B": SHEET}
_BACKBONE = ("N", "CA", "C", "O")
#: Longest peptide bond (Å) between consecutive residues that still counts as connected.
MAX_PEPTIDE_BOND_A = 2.0


@dataclass(frozen=True)
class ResidueSSE:
    chain: str
    seqnum: int
    icode: str
    resname: str
    dssp: str

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.chain, self.seqnum, self.icode)


def sse_class_of(code: str, class_map: dict[str, int] | None = None) -> int:
    """Label class (1 helix, 2 sheet, 3 other) of a DSSP code."""
    return (class_map or DEFAULT_CLASS_MAP).get(code, OTHER)


def _backbone(structure):
    """Rows of (N, CA, C, O) coordinates, donor mask, and residue records, in model order."""
    coords, donor, records, has_bb = [], [], [], []
    for ch in structure[0]:
        prev_c = None
        for k, res in enumerate(ch):
            atoms = {}
            for name in _BACKBONE:
                a = res.find_atom(name, "*")
                if a is not None:
                    atoms[name] = np.array(a.pos.tolist())
            rec = ResidueSSE(ch.name, int(res.seqid.num), res.seqid.icode.strip(), res.name, "-")
            records.append(rec)
            if len(atoms) < 4:
                has_bb.append(False)
                prev_c = None
                continue
            has_bb.append(True)
            connected = prev_c is not None and \
                np.linalg.norm(atoms["N"] - prev_c) <= MAX_PEPTIDE_BOND_A
            coords.append([atoms[n] for n in _BACKBONE])
            donor.append(connected and res.name != "PRO")
            prev_c = atoms["C"]
    return (np.asarray(coords, float).reshape(-1, 4, 3), np.asarray(donor, bool), records,
            np.asarray(has_bb, bool))


def assign_sse(structure) -> list[ResidueSSE]:
    """DSSP code of every residue of the protein chains of ``structure`` (first model)."""
    from pydssp import pydssp_numpy

    coords, donor, records, has_bb = _backbone(structure)
    codes = np.full(len(records), "-", dtype="<U1")
    if len(coords) >= 3:
        onehot = pydssp_numpy.assign(coords, donor_mask=donor)
        idx = np.argmax(onehot, axis=-1)  # 0 loop, 1 helix, 2 strand
        codes[np.flatnonzero(has_bb)] = np.array(["-", "H", "E"])[idx]
    return [ResidueSSE(r.chain, r.seqnum, r.icode, r.resname, str(c))
            for r, c in zip(records, codes)]


def write_sse(residues: list[ResidueSSE], path: str | os.PathLike,
              class_map: dict[str, int] | None = None) -> None:
    """Per-residue table: chain, seqnum, icode, resname, dssp (code), sse (class name)."""
    from . import LABEL_NAMES

    rows = [{"chain": r.chain, "seqnum": r.seqnum, "icode": r.icode, "resname": r.resname,
             "dssp": r.dssp, "sse": LABEL_NAMES[sse_class_of(r.dssp, class_map)]}
            for r in residues]
    write_tsv(path, rows, ["chain", "seqnum", "icode", "resname", "dssp", "sse"])


def read_sse(path: str | os.PathLike) -> list[ResidueSSE]:
    """Read a table written by :func:`write_sse`."""
    return [ResidueSSE(r["chain"], int(r["seqnum"]), r["icode"] or "", r["resname"], r["dssp"] or "-")
            for r in read_tsv(path)]
