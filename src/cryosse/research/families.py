"""Synthetic protein families with designed identities, for the split's tests and benchmark.

Each family has a random ancestor (natural amino-acid frequencies, length drawn from
``lengths``) and variants made from it by substituting a fraction of positions (each
substituted residue differs from the ancestor's) and by short insertions/deletions, so that a
variant's identity to the ancestor is close to the designed value. Entries hold one chain, or
several copies of one chain (homo-oligomers), as archive entries do.
"""
from __future__ import annotations

import numpy as np

from ..prep.split import ChainRecord

__all__ = ["AMINO_ACIDS", "mutate", "synthetic_families"]

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
# UniProt amino-acid frequencies (%), in AMINO_ACIDS order
_FREQ = np.array([8.25, 1.37, 5.45, 6.75, 3.86, 7.07, 2.27, 5.96, 5.84, 9.66,
                  2.42, 4.06, 4.70, 3.93, 5.53, 6.56, 5.34, 6.87, 1.08, 2.92])
_FREQ = _FREQ / _FREQ.sum()


def _random_sequence(rng: np.random.Generator, n: int) -> str:
    return "".join(np.array(list(AMINO_ACIDS))[rng.choice(20, n, p=_FREQ)])


def mutate(seq: str, identity: float, rng: np.random.Generator, indel_rate: float = 0.01) -> str:
    """``seq`` with a fraction ``1 - identity`` of its positions substituted (never by the same
    residue) and ``indel_rate`` insertions or deletions of 1-4 residues per position."""
    s = np.array(list(seq))
    idx = rng.choice(len(s), int(round((1 - identity) * len(s))), replace=False)
    for i in idx:
        p = _FREQ.copy()
        p[AMINO_ACIDS.index(s[i])] = 0
        s[i] = AMINO_ACIDS[rng.choice(20, p=p / p.sum())]
    out, i = [], 0
    while i < len(s):
        r = rng.random()
        if r < indel_rate / 2:  # deletion
            i += int(rng.integers(1, 5))
            continue
        if r < indel_rate:  # insertion
            out.append(_random_sequence(rng, int(rng.integers(1, 5))))
        out.append(s[i])
        i += 1
    return "".join(out)


def synthetic_families(n_families: int, identities=(0.25, 0.35, 0.50, 0.90), seed: int = 0,
                       lengths=(80, 450), copies_every: int = 7, max_copies: int = 12,
                       indel_rate: float = 0.01, prefix: str = "s") -> tuple[list[ChainRecord], list[tuple]]:
    """Chains of ``n_families`` families (ancestor + one variant per designed identity) and
    the designed relations ``(i, j, identity)`` between an ancestor ``i`` and a variant ``j``.

    Every ``copies_every``-th entry is a homo-oligomer with 2..``max_copies`` copies of its
    chain (same sequence, one entry)."""
    rng = np.random.default_rng(seed)
    chains: list[ChainRecord] = []
    relations: list[tuple] = []
    names = [chr(c) for c in range(ord("A"), ord("Z") + 1)] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    entry_no = 0

    def add(seq: str) -> int:
        nonlocal entry_no
        entry = f"{prefix}{entry_no:05d}"
        copies = int(rng.integers(2, max_copies + 1)) if copies_every and entry_no % copies_every == copies_every - 1 else 1
        entry_no += 1
        first = len(chains)
        h = float(rng.uniform(0, 0.6))
        for k in range(copies):
            chains.append(ChainRecord(f"{entry}_{names[k]}", entry, names[k], "-", seq, h, float(rng.uniform(0, 1 - h))))
        return first

    for _ in range(n_families):
        ancestor = _random_sequence(rng, int(rng.integers(lengths[0], lengths[1] + 1)))
        a = add(ancestor)
        for ident in identities:
            v = add(mutate(ancestor, ident, rng, indel_rate))
            relations.append((a, v, ident))
    return chains, relations
