"""Online mode: the workflow selects EMDB entries (explicit list and a search query), fetches
them from a local server in the archive layouts while it injects faults, and builds the same
tensors as the command line gives for the same files read locally; a withdrawn entry is a
recorded rejection and the run goes on."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from archive import STRUCTURES, ArchiveEntry, build_archive, search_rows, simulated_map
from cryosse.cli import main
from cryosse.io import read_map, read_tsv
from fetch_server import FaultServer
from test_workflow import snakemake

#: search index rows for entries outside the archive: one too fine, one obsolete
OTHER_ROWS = [
    {"emdb_id": "EMD-9009", "resolution": "3.0", "fitted_pdbs": "5ABC", "title": "Too fine",
     "release_date": "2012-01-01T00:00:00Z", "current_status": "REL",
     "structure_determination_method": "singleParticle", "xref_links": "pdb"},
    {"emdb_id": "EMD-9010", "resolution": "6.0", "fitted_pdbs": "6ABC", "title": "Obsolete",
     "release_date": "2012-01-01T00:00:00Z", "current_status": "OBS",
     "structure_determination_method": "singleParticle", "xref_links": "pdb"},
]


@pytest.mark.slow
def test_online_workflow_equals_local_files(tmp_path):
    src = tmp_path / "src"
    entries = []
    for n, pdb, model, res in ((9001, "1a8o", "1a8o", 6.0), (9002, "2xdg", "2xdga", 6.5),
                               (9003, "1ahs", "1ahsa", 7.0), (9004, "3a4r", "3a4ra", 5.5)):
        contour = simulated_map(src / f"emd_{n}.mrc", STRUCTURES / f"{model}.pdb.gz", res, seed=n)
        entries.append(ArchiveEntry(f"EMD-{n}", pdb, src / f"emd_{n}.mrc", STRUCTURES / f"{model}.pdb.gz",
                                    res, contour, primary="1" if n == 9002 else "true", decoy_contour=n == 9002,
                                    cif_magic=n in (9001, 9002)))
    files = build_archive(tmp_path / "www", entries)
    index = [r for r in search_rows(entries, OTHER_ROWS) if r["emdb_id"] in ("EMD-9001", "EMD-9002", "EMD-9009",
                                                                              "EMD-9010")]
    run = tmp_path / "run"
    run.mkdir()
    with FaultServer(files, search=index) as srv:
        srv.fault("/emdb/structures/EMD-9001/map/emd_9001.map.gz", "503", "truncate")
        srv.fault("/pdb/mmCIF/xd/2xdg.cif.gz", "corrupt")
        srv.fault("/emdb/structures/EMD-9003/map/emd_9003.map.gz", "404")  # withdrawn map
        cfg = {"structures": "",
               "emdb": {"entries": [{"emdb": "EMD-9001", "pdb": "1a8o", "chains": ["A"]}, {"emdb": "9003"},
                                    {"emdb": "EMD-9004"}],
                        "query": {"enabled": True, "resolution_a": [5.0, 10.0]},
                        "emdb_url": srv.url + "/emdb", "pdb_url": srv.url + "/pdb/mmCIF",
                        "api_url": srv.url + "/api", "timeout_s": 5, "retries": 3},
               "train": {"steps": 4, "val_every": 2, "batch": 2}}
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
        r = snakemake("--cores", "2", cwd=run)  # everything: data set, training, test report
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        r2 = snakemake("--cores", "2", "-n", cwd=run)
        assert "Nothing to be done" in r2.stdout + r2.stderr
    # the query was saved as a versioned table; the fault-free result is in the cache
    table = (run / "resources/emdb_query.tsv").read_text()
    assert table.startswith("# cryosse EMDB query table, version 2") and "EMD-9009" not in table
    assert "EMD-9010" not in table and 'current_status:"REL"' in table
    for path, f in files.items():
        if path.startswith(("/emdb/structures/EMD-9003/map", "/pdb/mmCIF/ah")):  # 9003: no map, no model
            continue
        cached = (run / "resources/emdb" / path.split("/")[3] / f.name if path.startswith("/emdb")
                  else run / "resources/pdb" / f.name)
        assert cached.read_bytes() == f.read_bytes(), path
    assert not list((run / "resources").rglob("*.part"))
    rows = {m["id"]: m for m in read_tsv(run / "results/dataset/manifest.tsv")}
    assert set(rows) == {"EMD-9001_A", "EMD-9002_A", "EMD-9003", "EMD-9004_A"}
    assert rows["EMD-9003"]["status"] == "rejected"
    assert "download failed: EMD-9003 map: not found at http" in rows["EMD-9003"]["reason"]
    for sid in ("EMD-9001_A", "EMD-9002_A", "EMD-9004_A"):
        assert rows[sid]["status"] == "ok" and float(rows[sid]["correlation"]) > 0.8, rows[sid]
    assert rows["EMD-9002_A"]["pdb_id"] == "2xdg"  # the header's fitted model
    # the same files given locally, through the command line, give the same tensors
    for n, model, res, contour in ((9001, "1a8o", 6.0, entries[0].contour),
                                   (9002, "2xdga", 6.5, entries[1].contour)):
        local = tmp_path / f"local{n}"
        assert main(["prepare-map", "--map", str(src / f"emd_{n}.mrc"), "--model",
                     str(STRUCTURES / f"{model}.pdb.gz"), "--entry", f"EMD-{n}", "--resolution", str(res),
                     "--contour", str(contour), "-o", str(local / "prep")]) == 0
        assert main(["crop-entry", str(local / "prep"), "-o", str(local / "comp")]) == 0
        for name in ("density.mrc", "labels.mrc"):
            a = read_map(local / f"comp/EMD-{n}_A" / name)
            b = read_map(run / f"results/components/EMD-{n}/EMD-{n}_A" / name)
            assert np.array_equal(a.data, b.data) and a.origin_a == b.origin_a, (n, name)
    datalist = json.loads((run / "results/dataset/datalist.json").read_text())
    ids = [d["id"] for k in ("training", "validation", "test") for d in datalist[k]]
    assert sorted(ids) == ["EMD-9001_A", "EMD-9002_A", "EMD-9004_A"]
    # the held-out experimental sample was predicted and evaluated on its own grid
    (test_id,) = [d["id"] for d in datalist["test"]]
    ev = json.loads((run / f"results/predict/test/{test_id}/scores.json").read_text())
    assert ev["residues"]["n_residues"] > 40
    assert "| helix |" in (run / "results/report/report.md").read_text()
