"""Atomic models (PDB/mmCIF, optionally gzipped): read the protein part the way every stage
needs it, count what was cleaned, and list protein heavy atoms."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .files import one_line as _one_line

__all__ = ["read_model", "model_report", "ProteinAtoms", "protein_atoms"]


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
