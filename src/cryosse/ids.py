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
           "emdb_id", "pdb_id", "ENTRY_ID", "CHAIN_ID", "PDB_ID", "MAP_ID", "SAMPLE_ID"]

#: An EMDB entry as the workflow names it: ``EMD-`` and 4 or 5 digits.
EMDB = r"EMD-[0-9]{4,5}"
#: What a user may write for an EMDB entry in a config file: ``EMD-NNNN`` or ``NNNN``.
EMDB_CONFIG = r"(EMD-)?[0-9]{4,5}"
#: What :func:`emdb_id` accepts (any case): ``EMD-NNNN``, ``EMD_NNNN``, ``emdNNNN``, ``NNNN``.
EMDB_INPUT = r"(?:EMD[-_]?)?([0-9]{4,5})"
#: A four-character PDB id.
PDB = r"[0-9][A-Za-z0-9]{3}"
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
    """A four-character PDB id in lower case, validated."""
    v = str(value).strip()
    if not _PDB_RE.match(v):
        raise InputError("pdb id", f"invalid PDB id {value!r} (expected e.g. 3mfp)")
    return v.lower()
