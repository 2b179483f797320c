"""The identifier grammar, defined once.

Every id that becomes part of a path, a URL or a Snakemake wildcard is checked against these
patterns: the workflow's ``wildcard_constraints``, the config schema (a test holds its patterns
equal to these), the structures table, the fetch layer and the command line all use them.
Each pattern is a plain regular expression without anchors (so it can be embedded, as
Snakemake's wildcard constraints need); :func:`check` anchors it.
"""
from __future__ import annotations

import re

from .errors import InputError

__all__ = ["EMDB", "EMDB_INPUT", "PDB", "ENTRY", "CHAIN", "SAMPLE", "MAP", "check",
           "emdb_id", "pdb_id", "pdb_archive_name", "pdb_hash", "ENTRY_ID", "CHAIN_ID", "PDB_ID", "MAP_ID", "SAMPLE_ID"]

#: An EMDB entry as the workflow names it: ``EMD-`` and 4 or more digits (the v3 header
#: schema's ``emdb_id`` type is ``EMD-\d{4,}``; written without ``{4,}``, which Snakemake's
#: wildcard parser does not take).
EMDB = r"EMD-[0-9]{4}[0-9]*"
#: What a user may write for an EMDB entry in a config file: ``EMD-NNNN`` or ``NNNN``.
EMDB_CONFIG = r"(EMD-)?[0-9]{4}[0-9]*"
#: What :func:`emdb_id` accepts (any case): ``EMD-NNNN``, ``EMD_NNNN``, ``emdNNNN``, ``NNNN``.
EMDB_INPUT = r"(?:EMD[-_]?)?([0-9]{4}[0-9]*)"
#: A PDB id: four characters (``1abc``) or extended (``pdb_`` and eight alphanumerics,
#: ``pdb_00001abc``; wwPDB's PDB ID extension).
PDB = r"(?:[0-9][A-Za-z0-9]{3}|[Pp][Dd][Bb]_[0-9][A-Za-z0-9]{7})"
#: An entry of a structures table (also the EMDB id of an experimental entry).
ENTRY = r"[A-Za-z0-9][A-Za-z0-9-]{0,63}"
#: A chain name (auth_asym_id as gemmi reads it).
CHAIN = r"[A-Za-z0-9]{1,4}"
#: A sample: one chain of one entry, ``<entry>_<chain>``.
SAMPLE = rf"{ENTRY}_{CHAIN}"
#: A sample id given on the command line (``crop --id``): plain, at most 80 characters.
SAMPLE_ARG = r"[A-Za-z0-9][A-Za-z0-9_-]{0,79}"
#: The id of a configured map to segment (``predict.maps``).
MAP = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"

ENTRY_ID = re.compile(rf"^{ENTRY}$")
CHAIN_ID = re.compile(rf"^{CHAIN}$")
PDB_ID = re.compile(rf"^({PDB}|-)$")  # "-": no PDB entry (a structures-table row)
MAP_ID = re.compile(rf"^{MAP}$")
SAMPLE_ID = re.compile(rf"^{SAMPLE_ARG}$")
_EMDB_RE = re.compile(rf"^{EMDB_INPUT}$", re.IGNORECASE)
_PDB_RE = re.compile(rf"^{PDB}$")


def check(kind: str, value: str, pattern: re.Pattern = ENTRY_ID) -> str:
    """``value`` if it matches ``pattern``, else an :class:`InputError` naming ``kind``
    (a flag, a column, a config key): validated before it becomes part of a path."""
    if not pattern.match(value or ""):
        raise InputError(kind, f"invalid identifier {value!r}")
    return value


def emdb_id(value: str) -> str:
    """``EMD-NNNN`` from ``EMD-NNNN``, ``emd_NNNN`` or ``NNNN``; anything else is refused
    before it reaches a path or a URL."""
    m = _EMDB_RE.match(str(value).strip())
    if not m:
        raise InputError("emdb id", f"invalid EMDB id {value!r} (expected EMD-NNNN)")
    return f"EMD-{m.group(1)}"


def pdb_id(value: str) -> str:
    """A PDB id in lower case, validated: four characters (``3mfp``) or extended
    (``pdb_00003mfp``), kept as written."""
    v = str(value).strip()
    if not _PDB_RE.match(v):
        raise InputError("pdb id", f"invalid PDB id {value!r} (expected e.g. 3mfp or pdb_00003mfp)")
    return v.lower()


def pdb_archive_name(value: str) -> str:
    """The name of an entry's files in today's PDB archives: the four-character code for an
    extended id that only prefixes one (``pdb_00001abc`` -> ``1abc``), else the id itself
    (a genuinely extended id, ``pdb_10021abc``, is named so in the archive)."""
    v = pdb_id(value)
    return v[8:] if v.startswith("pdb_0000") else v


def pdb_hash(value: str) -> str:
    """The two-character folder of the PDB's divided layouts: the second and third characters
    from the end (``1abc`` -> ``ab``, ``pdb_10021abc`` -> ``ab``; wwPDB's rule for both)."""
    v = pdb_id(value)
    return v[-3:-1]
