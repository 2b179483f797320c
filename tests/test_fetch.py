"""Fetching from the EMDB/PDB archive layouts against a local server that injects faults: every
fault ends in a byte-identical file or a clear recorded failure, never a corrupt cache file."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archive import STRUCTURES, ArchiveEntry, build_archive, simulated_map
from cryosse.errors import InputError
from cryosse.fetch import (EmdbQuery, FetchConfig, FetchError, NotFound, emdb_header_url, emdb_id,
                           emdb_map_url, fetch_emdb, fetch_entry, fetch_pdb, parse_emdb_header,
                           pdb_id, pdb_model_url, query_emdb, read_query_table, write_query_table)
from fetch_server import FaultServer

FAST = FetchConfig(timeout_s=0.5, retries=3, backoff_s=0.01, max_backoff_s=0.05)
MAP = "/emdb/structures/EMD-9001/map/emd_9001.map.gz"
HEADER = "/emdb/structures/EMD-9001/header/emd-9001.xml"
MODEL = "/pdb/mmCIF/a8/1a8o.cif.gz"


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> dict[str, Path]:
    """EMD-9001 (1a8o simulated at 6 Å, anisotropic voxels, columns along y) and EMD-9002
    (2xdga), with their models, in the archive layouts."""
    root = tmp_path_factory.mktemp("archive")
    entries = []
    for n, pdb in ((9001, "1a8o"), (9002, "2xdga")):
        model = STRUCTURES / f"{pdb}.pdb.gz"
        contour = simulated_map(root / f"src/emd_{n}.mrc", model, 6.0, seed=n)
        entries.append(ArchiveEntry(f"EMD-{n}", pdb[:4], root / f"src/emd_{n}.mrc", model, 6.0, contour))
    return build_archive(root / "www", entries)


@pytest.fixture
def server(archive):
    with FaultServer(archive) as srv:
        yield srv


def _emdb(srv):
    return srv.url + "/emdb"


def _pdb(srv):
    return srv.url + "/pdb/mmCIF"


def test_ids_are_validated_before_urls():
    assert emdb_id("emd_1234") == emdb_id("1234") == emdb_id("EMD-1234") == "EMD-1234"
    assert pdb_id("3MFP") == "3mfp"
    for bad in ("../1234", "EMD-12", "EMD-1234/../x", "", "EMD-123456"):
        with pytest.raises(InputError, match="invalid EMDB id"):
            emdb_id(bad)
    for bad in ("3mf", "3mfp/", "..//", "abcd"):
        with pytest.raises(InputError, match="invalid PDB id"):
            pdb_id(bad)
    assert emdb_map_url("https://ftp.ebi.ac.uk/pub/databases/emdb/", "EMD-5168") == \
        "https://ftp.ebi.ac.uk/pub/databases/emdb/structures/EMD-5168/map/emd_5168.map.gz"
    assert emdb_header_url("http://x/emdb", "5168") == "http://x/emdb/structures/EMD-5168/header/emd-5168.xml"
    assert pdb_model_url("https://files.wwpdb.org/pub/pdb/data/structures/divided/mmCIF", "3MFP") == \
        "https://files.wwpdb.org/pub/pdb/data/structures/divided/mmCIF/mf/3mfp.cif.gz"
    with pytest.raises(InputError, match="unsupported base URL"):
        emdb_map_url("ftp://x", "1234")


def test_header_is_parsed(archive):
    h = parse_emdb_header(archive[HEADER])
    assert h.emdb_id == "EMD-9001" and h.resolution_a == 6.0 and h.fitted_pdb_ids == ("1a8o",)
    assert h.contour_level is not None and h.contour_level > 0 and h.method == "singleParticle"


def test_clean_fetch_and_cache(server, archive, tmp_path):
    paths = fetch_emdb("EMD-9001", tmp_path, _emdb(server), FAST)
    assert paths["map"].read_bytes() == archive[MAP].read_bytes()
    assert paths["header"].read_bytes() == archive[HEADER].read_bytes()
    assert fetch_pdb("1A8O", tmp_path, _pdb(server), FAST).read_bytes() == archive[MODEL].read_bytes()
    n = len(server.log)
    fetch_emdb("EMD-9001", tmp_path, _emdb(server), FAST)  # cached: no request
    assert len(server.log) == n


@pytest.mark.parametrize("faults", [
    ["500"], ["503", "503"], ["hang"], ["truncate"], ["corrupt"], ["long_length"],
    ["long_length"] * 4,  # each short body resumes; the server's 416 then ends it
    ["short_length"], ["truncate", "ignore_range"], ["truncate", "truncate", "500"],
])
def test_transient_faults_end_in_the_right_file(server, archive, tmp_path, faults):
    server.hang_s = 1.0
    server.fault(MAP, *faults)
    paths = fetch_emdb("EMD-9001", tmp_path, _emdb(server), FAST)
    assert paths["map"].read_bytes() == archive[MAP].read_bytes()
    assert not list(tmp_path.rglob("*.part"))
    ranges = server.requests(MAP)
    if faults != ["long_length"] * 4:
        assert len(ranges) == len([f for f in faults if f != "ignore_range"]) + 1
    if faults[0] == "truncate":  # the retry resumed where the connection dropped
        assert ranges[1].startswith("bytes=") and int(ranges[1][6:-1]) > 0


@pytest.mark.parametrize("faults,message", [
    (["404"], "EMD-9001 map: not found at http://.*emd_9001.map.gz \\(withdrawn or wrong id\\)"),
    (["503"] * 4, "EMD-9001 map: giving up after 4 attempts at .*HTTP 503"),
    (["corrupt"] * 4, "giving up after 4 attempts.*corrupt or incomplete gzip"),
    (["short_length"] * 4, "giving up after 4 attempts.*corrupt or incomplete gzip"),
    (["hang"] * 4, "timed out after 0.5 s"),
])
def test_persistent_faults_fail_clearly_and_leave_no_file(server, tmp_path, faults, message):
    server.hang_s = 1.0
    server.fault(MAP, *faults)
    with pytest.raises(FetchError, match=message) as err:
        fetch_emdb("EMD-9001", tmp_path, _emdb(server), FAST)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "emdb/EMD-9001/emd_9001.map.gz").exists()
    if faults[0] == "404":
        assert isinstance(err.value, NotFound) and len(server.requests(MAP)) == 1  # no retry


def test_entry_record_and_withdrawn_model(server, tmp_path):
    rec = fetch_entry("EMD-9001", tmp_path, emdb_url=_emdb(server), pdb_url=_pdb(server), cfg=FAST)
    assert rec["status"] == "ok" and rec["pdb"] == "1a8o" and rec["resolution_a"] == 6.0
    assert Path(rec["model"]).is_file() and Path(rec["map"]).is_file()
    server.fault("/pdb/mmCIF/xd/2xdg.cif.gz", "404")
    rec = fetch_entry("EMD-9002", tmp_path, emdb_url=_emdb(server), pdb_url=_pdb(server), cfg=FAST)
    assert rec["status"] == "failed"
    assert rec["reason"].startswith("PDB 2xdg model: not found at http")


def _cli(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    return subprocess.Popen([sys.executable, "-m", "cryosse.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_cli_goes_on_after_failures_and_lists_them(server, tmp_path):
    server.fault("/emdb/structures/EMD-9002/header/emd-9002.xml", "404")
    p = _cli("fetch", "emdb", "EMD-9001", "EMD-9002", "--cache", str(tmp_path),
             "--emdb-url", _emdb(server), "--retries", "1", "--backoff", "0.01")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2, err
    assert "EMD-9001: ok" in err
    assert "1 of 2 failed:\n  EMD-9002 header: not found at" in err
    assert (tmp_path / "emdb/EMD-9001/emd_9001.map.gz").is_file()
    assert [p.name for p in (tmp_path / "emdb/EMD-9002").iterdir()] == ["emd-9002.xml.lock"]  # no file
    p = _cli("fetch", "emdb", "../../etc", "--cache", str(tmp_path), "--emdb-url", _emdb(server))
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "invalid EMDB id '../../etc'" in err


def test_per_host_concurrency_limit(server, tmp_path):
    from cryosse.fetch import fetch_many

    server.throttle = 2_000_000  # slow enough for the downloads to overlap
    cfg = FetchConfig(timeout_s=5, retries=0, per_host=2)
    recs = fetch_many([("emdb", "EMD-9001"), ("emdb", "EMD-9002"), ("pdb", "1a8o"), ("pdb", "2xdg")],
                      tmp_path, emdb_url=_emdb(server), pdb_url=_pdb(server), cfg=cfg, workers=4)
    assert [r["status"] for r in recs] == ["ok"] * 4
    assert server.max_active == 2


def test_killed_download_resumes(server, archive, tmp_path):
    """SIGKILL mid-download, then the same command again: it resumes with a Range request and
    the cached file is byte-identical."""
    size = archive[MAP].stat().st_size
    server.throttle = size / 3.0  # about 3 s for the map
    server.fault(HEADER)  # no faults
    part = tmp_path / "emdb/EMD-9001/emd_9001.map.gz.part"
    p = _cli("fetch", "emdb", "EMD-9001", "--cache", str(tmp_path), "--emdb-url", _emdb(server))
    deadline = time.time() + 30
    while time.time() < deadline and not (part.exists() and part.stat().st_size > size // 4):
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    have = part.stat().st_size
    assert 0 < have < size
    server.throttle = 0
    p = _cli("fetch", "emdb", "EMD-9001", "--cache", str(tmp_path), "--emdb-url", _emdb(server))
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert server.requests(MAP)[-1] == f"bytes={have}-"
    assert (tmp_path / "emdb/EMD-9001/emd_9001.map.gz").read_bytes() == archive[MAP].read_bytes()
    assert not part.exists()


CANNED_CSV = """emdb_id,resolution,fitted_pdbs,title,release_date,map_size
EMD-9002,7.5,2XDG,"Second test map",2011-05-01T00:00:00Z,12.5
EMD-9001,6.0,1A8O,"First test map",2010-01-12T00:00:00Z,3.1
EMD-9003,4.2,5ABC,"Too fine",2012-01-01T00:00:00Z,10
EMD-9004,8.0,,"No model",2012-01-01T00:00:00Z,10
EMD-9005,9.0,6ABC,"Too big",2012-01-01T00:00:00Z,4096
"""


def test_query_saved_as_versioned_table(tmp_path):
    csv = tmp_path / "search.csv"
    csv.write_text(CANNED_CSV)
    with FaultServer({"/api/search/*": csv}) as srv:
        srv.fault("/api/search/x")  # no-op; faults are per exact path
        q = EmdbQuery(resolution_a=(5.0, 10.0), released_after="2009-01-01", max_map_mb=1024)
        rows = query_emdb(q, srv.url + "/api", FAST)
        asked = srv.log[-1][0]
    assert "resolution%3A%5B5%20TO%2010%5D" in asked and "fitted_pdbs" in asked
    assert [(r["emdb"], r["pdb"], r["resolution_a"]) for r in rows] == [("EMD-9001", "1a8o", "6"),
                                                                       ("EMD-9002", "2xdg", "7.5")]
    table = tmp_path / "entries.tsv"
    write_query_table(table, rows, q, "http://local/api")
    text = table.read_text()
    assert text.startswith("# cryosse EMDB query table, version 1\n# date: ")
    assert "# query: resolution:[5 TO 10] AND" in text
    assert [r["emdb"] for r in read_query_table(table)] == ["EMD-9001", "EMD-9002"]


def test_withdrawn_entry_is_a_clear_failure(server, archive, tmp_path):
    xml = archive[HEADER].read_text().replace("<code>REL</code>\n      <processing_site>",
                                              "<code>WDRN</code>\n      <processing_site>")
    withdrawn = tmp_path / "emd-9001.xml"
    withdrawn.write_text(xml)
    server.add(HEADER, withdrawn)
    with pytest.raises(NotFound, match="EMD-9001: entry is withdrawn"):
        fetch_emdb("EMD-9001", tmp_path / "cache", _emdb(server), FAST)
    assert server.requests(MAP) == []
