"""Fetching from the EMDB/PDB archive layouts against a local server that injects faults: every
fault ends in a byte-identical file or a clear recorded failure, never a corrupt cache file."""
from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archive import STRUCTURES, ArchiveEntry, build_archive, header_xml, simulated_map
from conftest import SHARED_DATA
from cryosse.errors import InputError
from cryosse.fetch import (MIRRORS, ArchiveConfig, EmdbQuery, FetchConfig, FetchError, NotFound, emdb_header_url,
                           emdb_id, emdb_map_url, fetch_emdb, fetch_entry, fetch_pdb, parse_emdb_header, pdb_id,
                           pdb_model_url, query_emdb, read_query_table, write_query_table)
from cryosse.ids import pdb_archive_name, pdb_hash
from fetch_server import FaultServer

HEADERS = SHARED_DATA / "emdb_headers"

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
        entries.append(ArchiveEntry(f"EMD-{n}", pdb[:4], root / f"src/emd_{n}.mrc", model, 6.0, contour,
                                    decoy_contour=n == 9001))
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
    assert emdb_id("EMD-123456") == "EMD-123456" and emdb_id("emd_12345") == "EMD-12345"  # >= 4 digits
    assert pdb_id("3MFP") == "3mfp" and pdb_id("PDB_00003MFP") == "pdb_00003mfp"  # extended: kept
    assert pdb_archive_name("pdb_00003mfp") == "3mfp" and pdb_archive_name("pdb_10021abc") == "pdb_10021abc"
    assert pdb_hash("3mfp") == pdb_hash("pdb_00003mfp") == "mf" and pdb_hash("pdb_12345678") == "67"
    for bad in ("../1234", "EMD-12", "EMD-123", "EMD-1234/../x", "", "EMD-12a4"):
        with pytest.raises(InputError, match="invalid EMDB id"):
            emdb_id(bad)
    for bad in ("3mf", "3mfp/", "..//", "abcd", "pdb_1abc", "pdb_00001abc/..", "pdb-00001abc"):
        with pytest.raises(InputError, match="invalid PDB id"):
            pdb_id(bad)
    assert emdb_map_url("https://ftp.ebi.ac.uk/pub/databases/emdb/", "EMD-5168") == \
        "https://ftp.ebi.ac.uk/pub/databases/emdb/structures/EMD-5168/map/emd_5168.map.gz"
    assert emdb_header_url("http://x/emdb", "5168") == "http://x/emdb/structures/EMD-5168/header/emd-5168.xml"
    assert pdb_model_url("https://files.wwpdb.org/pub/pdb/data/structures/divided/mmCIF", "3MFP") == \
        "https://files.wwpdb.org/pub/pdb/data/structures/divided/mmCIF/mf/3mfp.cif.gz"
    with pytest.raises(InputError, match="unsupported base URL"):
        emdb_map_url("ftp://x", "1234")


#: each mirror's real layout, written out (wwPDB "PDB Archive Downloads"; EMDB under pub/emdb at
#: each wwPDB site; RCSB's download service is flat, the others divided by the middle two)
MIRROR_URLS = {
    "ebi": ("https://ftp.ebi.ac.uk/pub/databases/emdb/structures/EMD-10234/map/emd_10234.map.gz",
            "https://ftp.ebi.ac.uk/pub/databases/emdb/structures/EMD-10234/header/emd-10234.xml",
            "https://ftp.ebi.ac.uk/pub/databases/pdb/data/structures/divided/mmCIF/sk/6skm.cif.gz"),
    "wwpdb": ("https://files.wwpdb.org/pub/emdb/structures/EMD-10234/map/emd_10234.map.gz",
              "https://files.wwpdb.org/pub/emdb/structures/EMD-10234/header/emd-10234.xml",
              "https://files.wwpdb.org/pub/pdb/data/structures/divided/mmCIF/sk/6skm.cif.gz"),
    "rcsb": ("https://files.rcsb.org/pub/emdb/structures/EMD-10234/map/emd_10234.map.gz",
             "https://files.rcsb.org/pub/emdb/structures/EMD-10234/header/emd-10234.xml",
             "https://files.rcsb.org/download/6SKM.cif.gz"),
    "pdbj": ("https://files.pdbj.org/pub/emdb/structures/EMD-10234/map/emd_10234.map.gz",
             "https://files.pdbj.org/pub/emdb/structures/EMD-10234/header/emd-10234.xml",
             "https://files.pdbj.org/pub/pdb/data/structures/divided/mmCIF/sk/6skm.cif.gz"),
}


@pytest.mark.parametrize("name", sorted(MIRROR_URLS))
def test_mirror_presets_have_their_layouts(name):
    m = ArchiveConfig(mirror=name).resolve()
    for pid in ("6SKM", "pdb_00006skm"):  # the extended spelling of a four-character id: same file
        assert (emdb_map_url(m, "EMD-10234"), emdb_header_url(m, "10234"), pdb_model_url(m, pid)) == MIRROR_URLS[name]
    future = pdb_model_url(m, "pdb_10021abc")  # a genuinely extended id is named so in the archive
    assert future.endswith("/download/pdb_10021abc.cif.gz" if name == "rcsb" else "/ab/pdb_10021abc.cif.gz")
    with pytest.raises(ValueError, match="unknown mirror 'nope'"):
        ArchiveConfig(mirror="nope")


def test_flat_layout_fetched_from_a_rebased_preset(archive, tmp_path):
    """The RCSB preset's layout served by a local copy of it: the model at /download/1A8O.cif.gz."""
    rcsb = {"/download/1A8O.cif.gz": archive[MODEL],
            **{"/pub" + k: v for k, v in archive.items() if k.startswith("/emdb/")}}
    with FaultServer(rcsb) as srv:
        m = MIRRORS["rcsb"].rebased(srv.url)
        rec = fetch_entry("EMD-9001", tmp_path, emdb_url=m, pdb_url=m, cfg=FAST)
        assert rec["status"] == "ok", rec
        assert [p for p, _ in srv.log] == ["/pub" + HEADER, "/pub" + MAP, "/download/1A8O.cif.gz"]
    assert Path(rec["model"]).read_bytes() == archive[MODEL].read_bytes()


def test_header_is_parsed(archive):
    h = parse_emdb_header(archive[HEADER])
    assert h.emdb_id == "EMD-9001" and h.resolution_a == 6.0 and h.fitted_pdb_ids == ("1a8o",)
    assert h.contour_level is not None and h.contour_level > 0 and h.method == "singleParticle"
    xml = archive[HEADER].read_text(encoding="utf-8")
    assert xml.index('primary="false"') < xml.index('primary="true"')  # the decoy is listed first
    assert f"<level>{h.contour_level}</level>" in xml.split('primary="true"', 1)[1]
    assert h.map_kbytes == round((gzip.decompress(archive[MAP].read_bytes()).__len__() - 1024) / 1000)


@pytest.mark.parametrize("primary,decoy", [("true", "false"), ("1", "0"), (" 1 ", "0")])
def test_primary_contour_is_an_xs_boolean(archive, tmp_path, primary, decoy):
    xml = archive[HEADER].read_text(encoding="utf-8")
    xml = xml.replace('primary="false"', f'primary="{decoy}"').replace('primary="true"', f'primary="{primary}"')
    (tmp_path / "h.xml").write_text(xml, encoding="utf-8")
    h = parse_emdb_header(tmp_path / "h.xml")
    assert h.contour_level == parse_emdb_header(archive[HEADER]).contour_level  # not the decoy's level


def test_extended_pdb_ids_in_headers_are_kept(archive, tmp_path):
    xml = archive[HEADER].read_text(encoding="utf-8").replace("<pdb_id>1A8O</pdb_id>", "<pdb_id>pdb_00001a8o</pdb_id>")
    (tmp_path / "h.xml").write_text(xml, encoding="utf-8")
    assert parse_emdb_header(tmp_path / "h.xml").fitted_pdb_ids == ("pdb_00001a8o",)


def _schema():
    xmlschema = pytest.importorskip("xmlschema")
    xsd = HEADERS / "emdb_v3_0_11_3.xsd"
    if not xsd.is_file():
        pytest.skip(f"the EMDB v3 schema is not there ({xsd}; ../shared/data is absent in a user's clone)")
    return xmlschema.XMLSchema(str(xsd))


def test_every_header_the_tests_write_is_valid_v3(archive, tmp_path):
    """The archive builder's headers (every variant the tests use) against the real EMDB v3
    schema: they keep the real service's layout."""
    schema = _schema()
    e = ArchiveEntry("EMD-9001", "1a8o", tmp_path / "m.mrc", STRUCTURES / "1a8o.pdb.gz", 6.0, 0.5)
    (tmp_path / "m.mrc").write_bytes(gzip.decompress(archive[MAP].read_bytes()))
    variants = [e, ArchiveEntry(**{**e.__dict__, "primary": "1", "decoy_contour": True}),
                ArchiveEntry(**{**e.__dict__, "emdb": "EMD-123456", "header_pdb": "pdb_00001a8o", "status": "OBS"}),
                ArchiveEntry(**{**e.__dict__, "kbytes": 268436, "status": "WDRN"})]
    for v in variants:
        errors = [f"{err.path}: {err.reason}" for err in schema.iter_errors(header_xml(v))]
        assert errors == [], (v, errors[:3])
    for f in archive.values():
        if f.suffix == ".xml":
            assert schema.is_valid(str(f)), f


def test_real_v3_header_is_parsed():
    """EMD-0001's header from the wwPDB's translator test data (../shared/data)."""
    path = HEADERS / "emd-0001.xml"
    if not path.is_file():
        pytest.skip(f"real EMDB header not there ({path}; ../shared/data is absent in a user's clone)")
    h = parse_emdb_header(path)
    assert (h.emdb_id, h.resolution_a, h.contour_level, h.fitted_pdb_ids) == ("EMD-0001", 3.4, 0.018, ("6gh5",))
    assert (h.status, h.method, h.map_kbytes, h.map_bytes) == ("REL", "singleParticle", 67109, 67_109_000)
    assert h.title.startswith("Cryo-EM structure of bacterial RNA polymerase-sigma54 holoenzyme")
    assert abs(h.map_bytes - 256 ** 3 * 4) < 1000  # size_kbytes: the data size in kB of 1000 bytes


def test_clean_fetch_and_cache(server, archive, tmp_path):
    paths = fetch_emdb("EMD-9001", tmp_path, _emdb(server), FAST)
    assert paths["map"].read_bytes() == archive[MAP].read_bytes()
    assert paths["header"].read_bytes() == archive[HEADER].read_bytes()
    assert fetch_pdb("1A8O", tmp_path, _pdb(server), FAST).read_bytes() == archive[MODEL].read_bytes()
    n = len(server.log)
    fetch_emdb("EMD-9001", tmp_path, _emdb(server), FAST)  # cached: no request
    assert len(server.log) == n


@pytest.mark.parametrize("faults", [
    ["500"], ["503", "503"], ["hang"], ["truncate"], ["reset"], ["corrupt"], ["long_length"],
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
    if faults[0] in ("truncate", "reset"):  # the retry resumed where the connection dropped
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


INDEX = [  # the search index the test server answers from (fields as the EMDB names them)
    {"emdb_id": "EMD-9002", "resolution": "7.5", "fitted_pdbs": "2XDG", "title": "Second test map",
     "release_date": "2011-05-01T00:00:00Z", "current_status": "REL", "structure_determination_method": "singleParticle",
     "xref_links": "pdb,uniprot"},
    {"emdb_id": "EMD-9001", "resolution": "6.0", "fitted_pdbs": "1A8O,pdb_00002abc", "title": "First test map",
     "release_date": "2010-01-12T00:00:00Z", "current_status": "REL", "structure_determination_method": "singleParticle",
     "xref_links": "pdb"},
    {"emdb_id": "EMD-9003", "resolution": "4.2", "fitted_pdbs": "5ABC", "title": "Too fine",
     "release_date": "2012-01-01T00:00:00Z", "current_status": "REL", "structure_determination_method": "singleParticle",
     "xref_links": "pdb"},
    {"emdb_id": "EMD-9004", "resolution": "8.0", "fitted_pdbs": "", "title": "No model",
     "release_date": "2012-01-01T00:00:00Z", "current_status": "REL", "structure_determination_method": "singleParticle",
     "xref_links": "uniprot"},
    {"emdb_id": "EMD-9005", "resolution": "9.0", "fitted_pdbs": "6ABC", "title": "Obsolete",
     "release_date": "2012-01-01T00:00:00Z", "current_status": "OBS", "structure_determination_method": "singleParticle",
     "xref_links": "pdb"},
    {"emdb_id": "EMD-9006", "resolution": "6.5", "fitted_pdbs": "7ABC", "title": "Tomogram",
     "release_date": "2012-01-01T00:00:00Z", "current_status": "REL", "structure_determination_method": "subtomogramAveraging",
     "xref_links": "pdb"},
    {"emdb_id": "EMD-10007", "resolution": "5.5", "fitted_pdbs": "8ABC", "title": "Before the dates",
     "release_date": "2008-01-01T00:00:00Z", "current_status": "REL", "structure_determination_method": "singleParticle",
     "xref_links": "pdb"},
]


def test_query_is_answered_by_the_index_and_saved_as_versioned_table(tmp_path):
    q = EmdbQuery(resolution_a=(5.0, 10.0), released_after="2009-01-01", max_map_mb=1024)
    with FaultServer(search=INDEX) as srv:
        rows = query_emdb(q, srv.url + "/api", FAST)
        asked = srv.log[-1][0]
        assert len(srv.log) == 1
    assert "current_status%3A%22REL%22" in asked and "xref_links%3A%22pdb%22" in asked
    assert "map_size" not in asked
    assert [(r["emdb"], r["pdb"], r["resolution_a"]) for r in rows] == [("EMD-9001", "1a8o", "6"),
                                                                       ("EMD-9002", "2xdg", "7.5")]
    table = tmp_path / "entries.tsv"
    write_query_table(table, rows, q, "http://local/api")
    text = table.read_text()
    assert text.startswith("# cryosse EMDB query table, version 2\n# date: ")
    assert '# query: resolution:[5 TO 10] AND structure_determination_method:"singleParticle" AND ' \
           'current_status:"REL" AND xref_links:"pdb" AND release_date:[2009-01-01T00:00:00Z TO *]' in text
    assert [r["emdb"] for r in read_query_table(table)] == ["EMD-9001", "EMD-9002"]


@pytest.mark.parametrize("ignored", ["xref_links", "current_status", "resolution"])
def test_query_answer_is_checked_whatever_the_server_filters(tmp_path, ignored):
    """A server that ignores one filter (the has-a-model form it does not know, the status, the
    range): the client's own check of each row still gives the same entries. Obsolete rows need
    ``current_status`` in the answer, a model the ``fitted_pdbs`` column: both are asked."""
    with FaultServer(search=INDEX) as srv:
        srv.search_ignores = {ignored}
        rows = query_emdb(EmdbQuery(released_after="2009-01-01"), srv.url + "/api", FAST)
    assert [r["emdb"] for r in rows] == ["EMD-9001", "EMD-9002"]


def test_query_with_a_field_the_index_lacks_fails_clearly(tmp_path):
    """Solr answers 400 to an undefined field: a clear failure, not an empty table."""
    with FaultServer(search=INDEX) as srv:
        with pytest.raises(FetchError, match="EMDB search: HTTP 400 .* at http://127.0.0.1:[0-9]+/api/search/"):
            query_emdb(EmdbQuery(extra="map_size:[0 TO 512]"), srv.url + "/api", FAST)
        assert len(srv.log) == 1


def test_withdrawn_entry_is_a_clear_failure(server, archive, tmp_path):
    xml = archive[HEADER].read_text().replace("<code>REL</code>\n      <processing_site>",
                                              "<code>WDRN</code>\n      <processing_site>")
    withdrawn = tmp_path / "emd-9001.xml"
    withdrawn.write_text(xml)
    server.add(HEADER, withdrawn)
    with pytest.raises(NotFound, match="EMD-9001: entry is withdrawn"):
        fetch_emdb("EMD-9001", tmp_path / "cache", _emdb(server), FAST)
    assert server.requests(MAP) == []
