"""Leakage-free splits, checked with an independently configured aligner, and the manifest."""
from __future__ import annotations

import itertools
import json
import shutil

import pytest
from Bio import Align
from Bio.Align import substitution_matrices

from cryosse.prep.split import ChainRecord, assign_splits, chain_sequence, cluster_chains, sequence_identity
from cryosse.io import read_model, read_tsv
from cryosse.prep.structures import load_structures
from conftest import EXTRA_STRUCTURES


def independent_identity(a: str, b: str) -> float:
    """Reference: identical positions of biopython's best local alignment over the shorter length."""
    al = Align.PairwiseAligner(mode="local", substitution_matrix=substitution_matrices.load("BLOSUM62"),
                               open_gap_score=-11, extend_gap_score=-1)
    a, b = a.replace("X", ""), b.replace("X", "")
    return al.align(a, b)[0].counts().identities / min(len(a), len(b))


def test_identity_on_constructed_sequences(rng):
    aa = "ACDEFGHIKLMNPQRSTVWY"
    s = "".join(rng.choice(list(aa), 200))
    assert sequence_identity(s, s) == 1.0
    assert sequence_identity(s, s[40:140]) == 1.0  # a fragment of a chain is the same protein
    mutated = list(s)
    for i in rng.choice(200, 100, replace=False):
        mutated[i] = aa[(aa.index(mutated[i]) + 7) % 20]
    assert 0.4 < sequence_identity(s, "".join(mutated)) < 0.6
    unrelated = "".join(rng.choice(list(aa), 200))
    assert sequence_identity(s, unrelated) < 0.15


@pytest.fixture(scope="module")
def embedded_chains(structures_dir):
    chains = []
    for e in load_structures(structures_dir / "structures.tsv"):
        st = read_model(e.path)
        for c in e.chains:
            chains.append(ChainRecord(f"{e.entry}_{c}", e.entry, c, e.pdb_id, chain_sequence(st, c), 0.3, 0.2))
    return chains


def test_embedded_data_contract(structures_dir, embedded_chains):
    rows = read_tsv(structures_dir / "structures.tsv")
    assert len(embedded_chains) >= 40
    assert all(r["source_package"] and r["source_path"] for r in rows)
    size = sum(p.stat().st_size for p in structures_dir.glob("*.pdb.gz"))
    assert size < 15e6
    assert all(len(c.sequence) >= 50 for c in embedded_chains)


def test_split_has_no_leakage(embedded_chains):
    clusters = cluster_chains(embedded_chains, 0.30)
    splits = assign_splits(embedded_chains, clusters, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=0)
    assert set(splits) == {"train", "val", "test"}
    assert splits == assign_splits(embedded_chains, clusters, {"train": 0.7, "val": 0.15, "test": 0.15}, 0)
    by_id = dict(zip((c.id for c in embedded_chains), splits))
    # known homologues found by the reference aligner end up together
    assert by_id["1hvr_A"] == by_id["4e43_A"]  # HIV-1 protease, 95% identical
    worst = 0.0
    for (a, sa), (b, sb) in itertools.combinations(zip(embedded_chains, splits), 2):
        if sa == sb:
            continue
        assert a.entry != b.entry and (a.pdb_id == "-" or a.pdb_id != b.pdb_id)
        ident = independent_identity(a.sequence, b.sequence)
        worst = max(worst, ident)
        assert ident < 0.30, (a.id, b.id, ident)
    assert worst > 0.15  # the check is not vacuous: some cross-split pairs are similar-ish


def test_stratified_split():
    def rec(i, h, e):
        return ChainRecord(f"e{i}_A", f"e{i}", "A", "-", "ACDEFGHIKL" * (5 + i % 7), h, e)
    chains = [rec(i, 0.6, 0.0) for i in range(20)] + [rec(20 + i, 0.1, 0.4) for i in range(20)]
    splits = assign_splits(chains, list(range(40)), {"train": 0.6, "val": 0.2, "test": 0.2}, seed=3)
    for lo, hi in ((0, 20), (20, 40)):  # helix-rich and sheet-rich chains in every split
        assert set(splits[lo:hi]) == {"train", "val", "test"}


def test_training_set_splits(structures_dir, tmp_path):
    """Whole-entry training maps: train and val entries only by default (test with
    --train-splits train,test), every resolution, labels on the density's grid by the contract's rule."""
    import json

    from cryosse.cli import main
    from cryosse.io import read_map

    table = tmp_path / "structures.tsv"
    rows = [("1a8o", "A", "train"), ("1ahsa", "A", "val"), ("2cvia", "A", "test")]
    import shutil

    for e, _, _ in rows:
        shutil.copy(structures_dir / f"{e}.pdb.gz", tmp_path)
    table.write_text("entry\tfile\tchains\tpdb_id\n" + "".join(
        f"{e}\t{e}.pdb.gz\t{c}\t{e[:4].upper()}\n" for e, c, _ in rows))
    splits = tmp_path / "splits.tsv"
    splits.write_text("id\tentry\tchain\tsplit\n" + "".join(f"{e}_{c}\t{e}\t{c}\t{s}\n" for e, c, s in rows))
    out = tmp_path / "ts"
    assert main(["training-set", "--structures", str(table), "--splits", str(splits),
                 "--resolutions", "5,8.5", "-o", str(out)]) == 0
    dl = json.loads((out / "datalist.json").read_text())
    assert [i["id"] for i in dl["training"]] == ["1a8o_r5", "1a8o_r8p5"]
    assert [i["id"] for i in dl["validation"]] == ["1ahsa_r5", "1ahsa_r8p5"]
    d, lab = read_map(out / "1a8o_r5" / "density.mrc"), read_map(out / "1a8o_r5" / "labels.mrc")
    assert d.voxel_size_a == (2.0, 2.0, 2.0) and d.data.shape == lab.data.shape
    assert d.origin_a == lab.origin_a
    # helix voxels (1A8O is all-alpha) are denser than the background
    assert d.data[lab.data == 1].mean() > 3 * d.data[lab.data == 0].mean()
    # the bundled model's recipe trains on train + test; val stays validation, and never trains
    out2 = tmp_path / "ts2"
    assert main(["training-set", "--structures", str(table), "--splits", str(splits),
                 "--resolutions", "5", "--train-splits", "train,test", "-o", str(out2)]) == 0
    dl2 = json.loads((out2 / "datalist.json").read_text())
    assert [i["id"] for i in dl2["training"]] == ["1a8o_r5", "2cvia_r5"]
    assert [i["id"] for i in dl2["validation"]] == ["1ahsa_r5"]
    assert main(["training-set", "--structures", str(table), "--splits", str(splits),
                 "--train-splits", "train,val", "-o", str(tmp_path / "ts3")]) == 2
    assert not (tmp_path / "ts3").exists()


def test_training_set_extra_structures(structures_dir, tmp_path):
    """Extra structures train only, and an extra entry homologous (by the independent aligner) to
    a chain of a split that is not trained on is left out and reported."""
    import json
    import shutil

    from cryosse.cli import main

    rows = [("1a8o", "A", "train"), ("1ahsa", "A", "val"), ("2cvia", "A", "test")]
    for e, _, _ in rows:
        shutil.copy(structures_dir / f"{e}.pdb.gz", tmp_path)
    head = "entry\tfile\tchains\tpdb_id\n"
    (tmp_path / "structures.tsv").write_text(head + "".join(f"{e}\t{e}.pdb.gz\t{c}\t{e[:4].upper()}\n"
                                                            for e, c, _ in rows))
    splits = tmp_path / "splits.tsv"
    splits.write_text("id\tentry\tchain\tsplit\n" + "".join(f"{e}_{c}\t{e}\t{c}\t{s}\n" for e, c, s in rows))
    extra_dir = tmp_path / "extra"
    extra_dir.mkdir()
    extra_root = EXTRA_STRUCTURES
    # a real extra entry (Ran-NTF2), a copy of the val entry and a copy of the test entry
    shutil.copy(extra_root / "1a2k.pdb.gz", extra_dir)
    shutil.copy(structures_dir / "1ahsa.pdb.gz", extra_dir / "xval.pdb.gz")
    shutil.copy(structures_dir / "2cvia.pdb.gz", extra_dir / "xtest.pdb.gz")
    extra = extra_dir / "structures.tsv"
    extra.write_text(head + "1a2k\t1a2k.pdb.gz\tA,B\t1A2K\nxval\txval.pdb.gz\tA\t-\nxtest\txtest.pdb.gz\tA\t-\n")
    for seq_a, seq_b in ((chain_sequence(read_model(extra_root / "1a2k.pdb.gz"), c),
                          chain_sequence(read_model(structures_dir / f"{e}.pdb.gz"), "A"))
                         for c in ("A", "B") for e in ("1ahsa", "2cvia")):
        assert independent_identity(seq_a, seq_b) < 0.30  # 1A2K is no homologue of the held-out entries

    def build(out, *more):
        assert main(["training-set", "--structures", str(tmp_path / "structures.tsv"), "--splits", str(splits),
                     "--resolutions", "8", "--extra-structures", str(extra), "-o", str(out), *more]) == 0
        return json.loads((out / "datalist.json").read_text())

    dl = build(tmp_path / "ts")
    assert [i["id"] for i in dl["training"]] == ["1a8o_r8", "1a2k_r8"]
    assert [i["id"] for i in dl["validation"]] == ["1ahsa_r8"]
    assert {(x["entry"], x["held_out"]) for x in dl["extra_excluded"]} == {("xval", "1ahsa_A"), ("xtest", "2cvia_A")}
    assert all(x["identity"] >= 0.99 for x in dl["extra_excluded"])
    # training on the test entries too: only the val copy is a homologue of a held-out chain
    dl2 = build(tmp_path / "ts2", "--train-splits", "train,test")
    assert [i["id"] for i in dl2["training"]] == ["1a8o_r8", "2cvia_r8", "1a2k_r8", "xtest_r8"]
    assert [x["entry"] for x in dl2["extra_excluded"]] == ["xval"]
    # an extra entry id that is already an embedded entry is refused, and nothing is written
    extra.write_text(head + "1a8o\t1a2k.pdb.gz\tA\t-\n")
    assert main(["training-set", "--structures", str(tmp_path / "structures.tsv"), "--splits", str(splits),
                 "--extra-structures", str(extra), "-o", str(tmp_path / "ts3")]) == 2
    assert not (tmp_path / "ts3").exists()


def test_extra_structures_table(structures_dir):
    """The extra training structures: provenance on every row, ids disjoint from the embedded
    default, chains and residue counts as recorded, and a bounded size."""
    from cryosse.prep.trainingset import protein_chains

    root = EXTRA_STRUCTURES
    rows = read_tsv(root / "structures.tsv")
    assert len(rows) >= 60 and all(r["source_package"] and r["source_path"] for r in rows)
    extra = load_structures(root / "structures.tsv")
    embedded = load_structures(structures_dir / "structures.tsv")
    assert not {e.entry for e in extra} & {e.entry for e in embedded}
    assert not {e.pdb_id for e in extra} & {e.pdb_id for e in embedded}
    for r, e in zip(rows[:10], extra[:10]):
        st = read_model(e.path)
        counts = {c: sum(1 for res in st[0][c] if res.find_atom("CA", "*")) for c, _ in protein_chains(st)}
        assert list(counts) == r["chains"].split(",")
        assert [str(v) for v in counts.values()] == r["residues"].split(",")
    assert sum(p.stat().st_size for p in root.glob("*.pdb.gz")) < 8e6


def test_extra_structures_are_no_homologues_of_the_real_maps(extra_structures_dir, shared_data, real_cases):
    """The extra training structures share no protein (>= 30 % identity, independent aligner) with
    the fitted models of the real maps that judge the bundled model (among them actin, which the
    PRODIGY set holds as 1ATN and which was therefore not vendored)."""
    from cryosse.prep.trainingset import protein_chains

    judged = []
    for m in sorted({c.model for c in real_cases}):
        judged += [(m, q) for _, q in protein_chains(read_model(shared_data / m))]
    assert len(judged) >= 3
    extra = load_structures(extra_structures_dir / "structures.tsv")
    assert len(extra) >= 60
    worst = max((independent_identity(q, r), e.entry, m) for e in extra
                for _, q in protein_chains(read_model(e.path)) for m, r in judged)
    assert worst[0] < 0.30, worst


def test_kfold_has_no_leakage(embedded_chains):
    """Folds of the train+val chains: whole clusters, deterministic, stratified, and no pair of
    chains in different folds is >= 30 % identical by the independent aligner."""
    from cryosse.prep.split import assign_folds

    clusters = cluster_chains(embedded_chains, 0.30)
    splits = assign_splits(embedded_chains, clusters, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=0)
    folds = assign_folds(embedded_chains, clusters, 5, seed=0, splits=splits)
    assert folds == assign_folds(embedded_chains, clusters, 5, seed=0, splits=splits)
    assert all((f == -1) == (s == "test") for f, s in zip(folds, splits))
    assert set(folds) - {-1} == set(range(5))
    sizes = [sum(len(c.sequence) for c, f in zip(embedded_chains, folds) if f == k) for k in range(5)]
    assert max(sizes) < 2.0 * min(sizes), sizes  # balanced in residues
    fold_of_cluster = {}
    for cl, f in zip(clusters, folds):
        assert fold_of_cluster.setdefault(cl, f) == f  # a cluster is never divided
    pool = [(c, f) for c, f in zip(embedded_chains, folds) if f >= 0]
    for (a, fa), (b, fb) in itertools.combinations(pool, 2):
        if fa != fb:
            assert a.entry != b.entry
            assert independent_identity(a.sequence, b.sequence) < 0.30, (a.id, b.id)


def _crop(tmp_path, structures_dir, chain, sse_text=None):
    from cryosse.cli import main

    model = structures_dir / "1a8o.pdb.gz"
    assert main(["simulate", str(model), "--resolution", "8", "--voxel-size", "2",
                 "-o", str(tmp_path / "m.mrc")]) == 0
    args = ["crop", str(model), str(tmp_path / "m.mrc"), "--chain", chain, "-o", str(tmp_path / chain)]
    if sse_text is not None:
        (tmp_path / "sse.tsv").write_text(sse_text)
        args += ["--sse", str(tmp_path / "sse.tsv")]
    assert main(args) == 0
    import json
    return json.loads((tmp_path / chain / "meta.json").read_text())


def test_empty_and_all_coil_chains_are_recorded_rejections(tmp_path, structures_dir):
    meta = _crop(tmp_path, structures_dir, "Z")
    assert meta["status"] == "rejected" and "no protein residues in chain Z" in meta["reason"]
    from cryosse.io import read_model
    from cryosse.prep.sse import assign_sse
    res = assign_sse(read_model(structures_dir / "1a8o.pdb.gz"))
    coil = "chain\tseqnum\ticode\tresname\tdssp\tsse\n" + "".join(
        f"{r.chain}\t{r.seqnum}\t{r.icode}\t{r.resname}\t-\tother\n" for r in res)
    meta = _crop(tmp_path, structures_dir, "A", coil)
    assert meta["status"] == "rejected" and "all-coil" in meta["reason"]
    assert not (tmp_path / "A" / "density.mrc").exists()
    assert meta["n_residues"] == len(res) and meta["n_modified"] > 0  # 1A8O's MSE residues


def test_dataset_report(tiny_dataset, tmp_path):
    from cryosse.cli import main

    rows = read_tsv(tiny_dataset / "manifest.tsv")
    # one rejected component in the manifest, as the workflow records it
    manifest = tmp_path / "manifest.tsv"
    text = (tiny_dataset / "manifest.tsv").read_text().splitlines()
    header = text[0].split("\t")
    bad = dict.fromkeys(header, "")
    bad.update(id="9xyz_B", entry="9xyz", chain="B", status="rejected", reason="all-coil chain: no helix or sheet residue")
    lines = text + ["\t".join(bad[h] for h in header)]
    for i, r in enumerate(rows, start=1):  # paths relative to the copied manifest
        lines[i] = "\t".join(str((tiny_dataset / r[h]).resolve()) if h in ("density", "labels") else r[h]
                             for h in header)
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "report"
    assert main(["dataset-report", "--manifest", str(manifest), "--splits", str(tiny_dataset / "splits.tsv"),
                 "-o", str(out)]) == 0
    md = (out / "dataset_report.md").read_text()
    assert "5 accepted, 1 rejected" in md and "all-coil chain" in md and "| helix |" in md
    for png in ("class_balance.png", "resolution.png", "thumbnails.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_crop_entry_and_the_old_crop_order_give_the_same_components(tmp_path, structures_dir, capsys):
    """crop-entry (one job per entry, map and model read once) writes, per chain, exactly what
    crop writes for that chain; crop's old order MAP MODEL is still understood, with a note."""
    import json

    import numpy as np

    from cryosse.cli import main
    from cryosse.io import read_map

    model = structures_dir / "2xhe.pdb.gz"  # two chains
    m = tmp_path / "m.mrc"
    assert main(["simulate", str(model), "--resolution", "8", "--voxel-size", "2", "-o", str(m)]) == 0
    assert main(["crop-entry", "--map", str(m), "--model", str(model), "--chain", "A,B", "--entry", "2xhe",
                 "-o", str(tmp_path / "entry")]) == 0
    for chain, order in (("A", [str(model), str(m)]), ("B", [str(m), str(model)])):
        out = tmp_path / f"one_{chain}"
        assert main(["crop", *order, "--chain", chain, "--id", f"2xhe_{chain}", "--entry", "2xhe",
                     "-o", str(out)]) == 0
        many = tmp_path / "entry" / f"2xhe_{chain}"
        for f in ("density.mrc", "labels.mrc"):
            a, b = read_map(out / f), read_map(many / f)
            assert np.array_equal(a.data, b.data) and a.origin_a == b.origin_a, (chain, f)
        assert json.loads((out / "meta.json").read_text())["counts"] == \
            json.loads((many / "meta.json").read_text())["counts"]
    assert "old order" in capsys.readouterr().err


def test_component_datasets_record_a_label_radius_that_is_not_the_default(tmp_path, structures_dir):
    """Components labelled with another radius carry it in meta.json; the data set's datalist
    records it (realism's zones need it; the default datalist is unchanged), and components of
    two radii in one data set are refused, naming one of them."""
    from cryosse.cli import main
    from cryosse.errors import InputError
    from cryosse.prep.dataset import write_manifest

    model = structures_dir / "1a8o.pdb.gz"
    assert main(["simulate", str(model), "--resolution", "6", "-o", str(tmp_path / "m.mrc")]) == 0
    comps = {}
    for radius in (3.0, 2.0):
        out = tmp_path / f"r{radius:g}" / "1a8o_A"
        assert main(["crop", str(model), str(tmp_path / "m.mrc"), "--chain", "A", "--id", "1a8o_A", "--entry", "1a8o",
                     "--resolution", "6", "--label-radius", str(radius), "-o", str(out)]) == 0
        assert json.loads((out / "meta.json").read_text())["label_radius_a"] == radius
        comps[radius] = out
    (tmp_path / "splits.tsv").write_text("id\tsplit\n1a8o_A\ttrain\n")
    for radius, out in comps.items():
        write_manifest([out], tmp_path / "splits.tsv", tmp_path / f"m{radius:g}.tsv", tmp_path / f"d{radius:g}.json")
        dl = json.loads((tmp_path / f"d{radius:g}.json").read_text())
        assert dl.get("label_radius_a") == (None if radius == 3.0 else radius)
    other = tmp_path / "r3b" / "1a8o_B"
    shutil.copytree(comps[3.0], other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps(dict(meta, id="1a8o_B")))
    (tmp_path / "splits.tsv").write_text("id\tsplit\n1a8o_A\ttrain\n1a8o_B\tval\n")
    with pytest.raises(InputError, match="labels made within 3 Å, but .* within 2 Å: one data set, one label radius"):
        write_manifest([comps[2.0], other], tmp_path / "splits.tsv", tmp_path / "mx.tsv", tmp_path / "dx.json")
