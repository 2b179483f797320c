"""The split's MMseqs2 prefilter gives the clusters of the exhaustive method (every pair aligned)."""
from __future__ import annotations

import pytest

from cryosse.errors import CryosseError
from cryosse.io import read_model
from cryosse.prep.clustering import SHORT, mmseqs_available
from cryosse.prep.split import ChainRecord, chain_sequence, cluster_chains, sequence_identity
from cryosse.prep.structures import load_structures
from cryosse.research.families import mutate, synthetic_families

needs_mmseqs = pytest.mark.skipif(not mmseqs_available(), reason="mmseqs not found (Debian package mmseqs2; make setup)")


@pytest.fixture(scope="module")
def embedded(structures_dir):
    chains = []
    for e in load_structures(structures_dir / "structures.tsv"):
        st = read_model(e.path)
        chains += [ChainRecord(f"{e.entry}_{c}", e.entry, c, e.pdb_id, chain_sequence(st, c), 0.3, 0.2) for c in e.chains]
    return chains


@needs_mmseqs
def test_prefilter_equals_exhaustive_on_embedded(embedded):
    stats = {}
    fast = cluster_chains(embedded, 0.30, engine="mmseqs", stats=stats)
    slow = cluster_chains(embedded, 0.30, engine="exhaustive")
    assert fast == slow
    assert stats["engine"] == "mmseqs" and stats["aligned"] < len(embedded) ** 2 / 20
    assert len(set(slow)) < len(embedded) - 3  # some homologues are linked: not vacuous


@needs_mmseqs
def test_prefilter_equals_exhaustive_on_designed_families(rng):
    """Families at 25-90 % designed identity, several at the threshold, with indels and
    homo-oligomers; plus short chains (aligned exactly with everything) and one variant that
    is a fragment of its ancestor."""
    chains, relations = synthetic_families(5, (0.25, 0.29, 0.31, 0.35, 0.50, 0.90), seed=3, lengths=(70, 260),
                                           copies_every=4, max_copies=4)
    anc = chains[relations[0][0]].sequence
    extra = [anc[10:10 + SHORT - 15], mutate(anc[30:30 + SHORT - 5], 0.4, rng), mutate(anc, 0.33, rng)[5:]]
    chains += [ChainRecord(f"x{k}_A", f"x{k}", "A", "-", s, 0.2, 0.2) for k, s in enumerate(extra)]
    stats = {}
    fast = cluster_chains(chains, 0.30, engine="mmseqs", stats=stats)
    slow = cluster_chains(chains, 0.30, engine="exhaustive")
    assert fast == slow
    assert stats["short"] == 2
    # not vacuous: the designed 90 % pairs are linked, some designed pairs are not, and the
    # threshold cuts through the designed pairs at 29-31 %
    assert all(slow[i] == slow[j] for i, j, x in relations if x >= 0.9)
    near = [sequence_identity(chains[i].sequence, chains[j].sequence) for i, j, x in relations if x in (0.29, 0.31)]
    assert min(near) < 0.30 <= max(near)
    assert 5 < len(set(slow)) < len({c.entry for c in chains})


def test_engines_without_mmseqs(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no mmseqs
    a = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKALRPDEDRLSPLHSVYVDQWDWERVMGDGERQFSTLKSTVEAIWAGIKATEAAVSEEFGLAPFLPDQIHFVHSQELLSRYPDLDAKGRERAIAKDLGAVFLVGIGGKLSDGHRHDVRAPDYDDWAGELL"
    chains = [ChainRecord("e1_A", "e1", "A", "-", a, 0.3, 0.2), ChainRecord("e2_A", "e2", "A", "-", a[20:150], 0.3, 0.2),
              ChainRecord("e3_A", "e3", "A", "-", a[::-1], 0.3, 0.2), ChainRecord("e3_B", "e3", "B", "-", "", 0, 0)]
    stats = {}
    assert cluster_chains(chains, 0.30, stats=stats) == [0, 0, 1, 1]
    assert stats["engine"] == "exhaustive"
    with pytest.raises(CryosseError, match="split engine"):
        cluster_chains(chains, 0.30, engine="blast")
    with pytest.raises(CryosseError, match="mmseqs"):
        cluster_chains(chains, 0.30, engine="mmseqs")
