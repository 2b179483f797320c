"""Hostile and broken archives (issue 19, bounded downloads; issue 20, real formats): a local
127.0.0.1 server serves real-format files and lies (decompression bombs, bodies without end,
lying Content-Length and headers, redirects off http, XML bombs, not-mmCIF content, obsolete
entries, 404). Each case ends in a one-line failure naming the entry and the file, recorded
for the entry while the run goes on, nothing half-written left in the cache, deterministic
failures asked once (requests counted), and memory bounded (a child under RLIMIT_AS)."""
from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from archive import STRUCTURES, ArchiveEntry, build_archive, header_xml, simulated_map
from cryosse.errors import InputError
from cryosse.fetch import (FetchConfig, FetchError, TooLarge, fetch_emdb, fetch_entry, fetch_many,
                           fetch_pdb)
from fetch_server import FaultServer

FAST = FetchConfig(timeout_s=2, retries=3, backoff_s=0.01, max_backoff_s=0.05)
MB = 1_000_000


def _map(n: int) -> str:
    return f"/emdb/structures/EMD-{n:04d}/map/emd_{n:04d}.map.gz"


def _header(n: int) -> str:
    return f"/emdb/structures/EMD-{n:04d}/header/emd-{n:04d}.xml"


def mrc_head(nx: int, ny: int, nz: int, mode: int = 2) -> bytes:
    """A 1024-byte MRC2014 header (axis order 1,2,3, 'MAP ' stamp, little-endian)."""
    w = np.zeros(256, dtype="<i4")
    w[0:4] = nx, ny, nz, mode
    w[7:10] = nx, ny, nz
    w[10:13] = np.array([nx, ny, nz], dtype="<f4").view("<i4")  # cell = 1 Å voxels
    w[13:16] = np.array([90, 90, 90], dtype="<f4").view("<i4")
    w[16:19] = 1, 2, 3
    head = bytearray(w.tobytes())
    head[208:212] = b"MAP "
    head[212:216] = b"\x44\x44\x00\x00"
    return bytes(head)


def gzip_bomb(path: Path, head: bytes, inflated: int) -> Path:
    """``head`` then zeros, ``inflated`` bytes in all, as a multi-member gzip (valid: CRC and
    length per member) a few hundred kB long."""
    block = 1 << 22
    member = gzip.compress(bytes(block), compresslevel=9)
    first = gzip.compress(head + bytes(block - len(head)), compresslevel=9)
    n, rest = divmod(inflated - block, block)
    path.write_bytes(first + member * n + gzip.compress(bytes(rest), compresslevel=9))
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """EMD-9101 (1a8o, primary contour spelled "1", an mmCIF that starts with the CIF magic
    comment) and EMD-9102 (2xdga) in the archive layouts, plus the entries' url paths."""
    root = tmp_path_factory.mktemp("site")
    entries = []
    for n, pdb, model, magic in ((9101, "1a8o", "1a8o", True), (9102, "2xdg", "2xdga", False)):
        contour = simulated_map(root / f"src/emd_{n}.mrc", STRUCTURES / f"{model}.pdb.gz", 6.0, seed=n)
        entries.append(ArchiveEntry(f"EMD-{n}", pdb, root / f"src/emd_{n}.mrc", STRUCTURES / f"{model}.pdb.gz",
                                    6.0, contour, primary="1", cif_magic=magic))
    files = build_archive(root / "www", entries)
    return {"root": root, "files": files, "entries": {e.emdb: e for e in entries}}


@pytest.fixture
def server(site):
    with FaultServer(site["files"]) as srv:
        yield srv


def _leftovers(cache: Path) -> list[str]:
    """Files in the cache other than lock files (a failed download leaves none)."""
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock")


def _entry_with_map(site, tmp_path, server, n: int, map_file: Path, kbytes: int) -> None:
    """Serve ``map_file`` as EMD-n's map, with a real-layout header announcing ``kbytes``."""
    e = site["entries"]["EMD-9101"]
    hdr = tmp_path / f"emd-{n}.xml"
    xml = header_xml(e).replace("EMD-9101", f"EMD-{n}").replace("emd_9101", f"emd_{n}")
    hdr.write_text(re.sub(r'size_kbytes="[0-9]+"', f'size_kbytes="{kbytes}"', xml), encoding="utf-8")
    server.add(_header(n), hdr)
    server.add(_map(n), map_file)


def test_map_over_the_limit_is_refused_from_its_header_before_download(site, server, tmp_path):
    bomb = gzip_bomb(tmp_path / "big.map.gz", mrc_head(512, 512, 256), 268_435_456)
    _entry_with_map(site, tmp_path, server, 9103, bomb, 268_436)
    cfg = FetchConfig(timeout_s=2, retries=3, backoff_s=0.01, max_map_mb=64)
    rec = fetch_entry("EMD-9103", tmp_path / "cache", emdb_url=server.url + "/emdb",
                      pdb_url=server.url + "/pdb/mmCIF", cfg=cfg)
    assert rec["status"] == "failed" and "\n" not in rec["reason"]
    assert rec["reason"] == ("EMD-9103 map: 268 MB uncompressed (header map/@size_kbytes 268436), "
                             "over max_map_mb 64; not downloaded")
    assert server.requests(_map(9103)) == []  # never asked for
    assert _leftovers(tmp_path / "cache") == ["emdb/EMD-9103/emd-9103.xml"]


@pytest.mark.parametrize("case,inflated,head,kbytes,message", [
    # the EMDB header says 1 MB, the map's MRC header 268 MB: stopped after its first kB
    ("emdb header lies", 268_435_456, (512, 512, 256), 1_000,
     "EMD-9104 map: MRC header announces 268436480 bytes, the EMDB header 1000000 .map/@size_kbytes."),
    # both headers say 64³ floats (1 MB); the stream inflates to 268 MB: stopped past 1 MB
    ("mrc header lies", 268_435_456, (64, 64, 64), 1_049,
     "EMD-9104 map: inflates past the 1049600 bytes its MRC header announces .decompression bomb.*stopped"),
])
def test_decompression_bomb_is_stopped_and_not_retried(site, server, tmp_path, case, inflated, head, kbytes,
                                                      message):
    bomb = gzip_bomb(tmp_path / "bomb.map.gz", mrc_head(*head), inflated)
    assert bomb.stat().st_size < 2 * MB
    _entry_with_map(site, tmp_path, server, 9104, bomb, kbytes)
    with pytest.raises(TooLarge, match=message) as err:
        fetch_emdb("EMD-9104", tmp_path / "cache", server.url + "/emdb", FAST)
    assert "\n" not in str(err.value)
    assert len(server.requests(_map(9104))) == 1  # content cannot change on retry
    assert _leftovers(tmp_path / "cache") == ["emdb/EMD-9104/emd-9104.xml"]


def _cli(args: list[str], limit_mb: int | None = None, tmp: Path | None = None):
    """``cryosse ARGS`` in a child (under RLIMIT_AS of ``limit_mb``); the result and the
    child's own peak RSS in MB (written by the child as it exits)."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"), OPENBLAS_NUM_THREADS="1")
    peak = (tmp or Path(os.devnull)) / "peak_rss_kb" if tmp else None
    code = ("import atexit, resource, runpy, sys\n"
            f"lim, peak = {limit_mb!r}, {str(peak) if peak else None!r}\n"
            "if lim: resource.setrlimit(resource.RLIMIT_AS, (lim * 10**6, lim * 10**6))\n"
            "def hwm():  # VmHWM: this process's own peak (ru_maxrss carries the parent's over exec)\n"
            "    line = [x for x in open('/proc/self/status') if x.startswith('VmHWM:')]\n"
            "    return line[0].split()[1] if line else str(resource.getrusage(0).ru_maxrss)\n"
            "if peak: atexit.register(lambda: open(peak, 'w').write(hwm()))\n"
            f"sys.argv = ['cryosse', *{args!r}]\n"
            "runpy.run_module('cryosse.cli', run_name='__main__')\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return r, (int(peak.read_text()) / 1024 if peak and peak.exists() else None)


def test_a_large_map_is_checked_streamed_in_bounded_memory(site, server, tmp_path):
    """A real-format 268 MB map (announced by both headers) passes its check in a process
    limited to 220 MB of address space: the check never holds the map. A bomb of the same
    size fails within the same limit."""
    big = gzip_bomb(tmp_path / "big.map.gz", mrc_head(512, 512, 256), 1024 + 268_435_456)
    _entry_with_map(site, tmp_path, server, 9105, big, 268_436)
    liar = gzip_bomb(tmp_path / "liar.map.gz", mrc_head(64, 64, 64), 268_435_456)
    _entry_with_map(site, tmp_path, server, 9106, liar, 1_049)
    cache = tmp_path / "cache"
    r, peak = _cli(["fetch", "emdb", "EMD-9105", "EMD-9106", "--cache", str(cache), "--emdb-url",
                    server.url + "/emdb", "--max-map-mb", "300", "--retries", "1", "--backoff", "0.01"],
                   limit_mb=220, tmp=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "EMD-9105: ok" in r.stderr
    failed = r.stderr.split("1 of 2 failed:\n", 1)[1].rstrip().splitlines()
    assert len(failed) == 2 and failed[0].startswith("  EMD-9106 map: inflates past the 1049600 bytes"), r.stderr
    assert (cache / "emdb/EMD-9105/emd_9105.map.gz").read_bytes() == big.read_bytes()
    assert _leftovers(cache) == ["emdb/EMD-9105/emd-9105.xml", "emdb/EMD-9105/emd_9105.map.gz",
                                 "emdb/EMD-9106/emd-9106.xml"]
    print(f"fetch + streamed check of a 268 MB map and a 268 MB bomb: peak RSS {peak:.0f} MB")
    assert peak is not None and peak < 150, peak


@pytest.mark.parametrize("fault,message", [
    ("endless", "EMD-9101 map: body goes on past [0-9]+ bytes .the bound for this file.; cut off"),
    ("huge_length", "EMD-9101 map: 1000000000000 bytes announced .Content-Length., over the bound of [0-9]+"),
])
def test_endless_or_oversized_bodies_are_cut_off(server, tmp_path, fault, message):
    server.fault(_map(9101), fault)
    with pytest.raises(TooLarge, match=message) as err:
        fetch_emdb("EMD-9101", tmp_path, server.url + "/emdb", FAST)
    assert "\n" not in str(err.value) and len(server.requests(_map(9101))) == 1
    assert _leftovers(tmp_path) == ["emdb/EMD-9101/emd-9101.xml"]


def test_hard_cap_bounds_any_file(server, site, tmp_path):
    server.fault("/pdb/mmCIF/a8/1a8o.cif.gz", "endless")
    cfg = FetchConfig(timeout_s=2, retries=3, backoff_s=0.01, max_file_mb=0.5)
    with pytest.raises(TooLarge, match="PDB 1a8o model: body goes on past 500000 bytes"):
        fetch_pdb("1a8o", tmp_path, server.url + "/pdb/mmCIF", cfg)
    assert _leftovers(tmp_path) == []


def test_body_without_length_is_fine(server, site, tmp_path):
    server.fault(_map(9101), "no_length")
    paths = fetch_emdb("EMD-9101", tmp_path, server.url + "/emdb", FAST)
    assert paths["map"].read_bytes() == site["files"][_map(9101)].read_bytes()


def _serve_gz(server, tmp_path, path: str, text: str) -> None:
    f = tmp_path / Path(path).name
    f.write_bytes(gzip.compress(text.encode()))
    server.add(path, f)


def test_mmcif_as_archives_serve_it(server, site, tmp_path):
    """Leading comments (the CIF magic line) before ``data_``: accepted, byte-identical."""
    served = site["files"]["/pdb/mmCIF/a8/1a8o.cif.gz"]
    assert gzip.decompress(served.read_bytes()).startswith(b"#\\#CIF_1.1\n#\ndata_")
    got = fetch_pdb("pdb_00001a8o", tmp_path, server.url + "/pdb/mmCIF", FAST)  # the extended id, too
    assert got == tmp_path / "pdb/1a8o.cif.gz" and got.read_bytes() == served.read_bytes()
    # data_ after blank and comment lines, any case of the keyword
    _serve_gz(server, tmp_path, "/pdb/mmCIF/xd/2xdg.cif.gz",
              "\n# made by hand\n   \nDATA_2XDG\n_atom_site.id 1\n")
    assert fetch_pdb("2xdg", tmp_path / "c2", server.url + "/pdb/mmCIF", FAST).is_file()


@pytest.mark.parametrize("text,message", [
    ("_entry.id 2XDG\ndata_2XDG\n_atom_site.id 1\n", "not an mmCIF file .a category before any data_ block."),
    ("<html>Service unavailable</html>\n", "not an mmCIF file .'<html>Service unavailable</html>' before any data_ block."),
    ("#\\#CIF_1.1\ndata_2XDG\n_entry.id 2XDG\n", "mmCIF without atoms .no _atom_site category."),
])
def test_bad_model_content_fails_once(server, tmp_path, text, message):
    _serve_gz(server, tmp_path, "/pdb/mmCIF/xd/2xdg.cif.gz", text)
    with pytest.raises(FetchError, match=f"PDB 2xdg model: {message} at http://") as err:
        fetch_pdb("2xdg", tmp_path / "cache", server.url + "/pdb/mmCIF", FAST)
    assert "\n" not in str(err.value)
    assert len(server.requests("/pdb/mmCIF/xd/2xdg.cif.gz")) == 1  # not retried
    assert _leftovers(tmp_path / "cache") == []


def test_mrc_size_mismatch_is_deterministic(site, server, tmp_path):
    """A complete gzip of a map whose data is shorter than its MRC header says."""
    raw = gzip.decompress(site["files"][_map(9101)].read_bytes())
    short = tmp_path / "short.map.gz"
    short.write_bytes(gzip.compress(raw[:-4096]))
    server.add(_map(9101), short)
    with pytest.raises(FetchError, match="EMD-9101 map: MRC data size [0-9]+ bytes, header announces [0-9]+"):
        fetch_emdb("EMD-9101", tmp_path / "cache", server.url + "/emdb", FAST)
    assert len(server.requests(_map(9101))) == 1


def test_404_is_asked_once_and_the_run_goes_on(server, tmp_path):
    server.fault("/pdb/mmCIF/xd/2xdg.cif.gz", "404")
    recs = fetch_many([("entry", "EMD-9102"), ("entry", "EMD-9101")], tmp_path, emdb_url=server.url + "/emdb",
                      pdb_url=server.url + "/pdb/mmCIF", cfg=FAST, workers=1)
    assert [r["status"] for r in recs] == ["failed", "ok"]
    assert recs[0]["reason"].startswith("PDB 2xdg model: not found at http://127.0.0.1:")
    assert len(server.requests("/pdb/mmCIF/xd/2xdg.cif.gz")) == 1
    assert not (tmp_path / "pdb/2xdg.cif.gz").exists() and not list(tmp_path.rglob("*.part"))


@pytest.mark.parametrize("status,word", [("OBS", "obsolete"), ("WDRN", "withdrawn"), ("HPUB", "not released")])
def test_entries_not_released_are_recorded_without_map_request(site, server, tmp_path, status, word):
    e = site["entries"]["EMD-9101"]
    hdr = tmp_path / "emd-9101.xml"
    hdr.write_text(header_xml(e).replace("<code>REL</code>", f"<code>{status}</code>"), encoding="utf-8")
    server.add(_header(9101), hdr)
    rec = fetch_entry("EMD-9101", tmp_path / "cache", emdb_url=server.url + "/emdb",
                      pdb_url=server.url + "/pdb/mmCIF", cfg=FAST)
    assert rec["status"] == "failed" and rec["reason"] == f"EMD-9101: entry is {word} (status {status})"
    assert server.requests(_map(9101)) == [] and len(server.requests(_header(9101))) == 1


@pytest.mark.parametrize("fault,scheme", [("redirect_file", "file"), ("redirect_ftp", "ftp")])
def test_redirects_off_http_are_refused(server, tmp_path, fault, scheme):
    server.fault(_header(9101), fault)
    with pytest.raises(FetchError, match=f"EMD-9101 header: redirect to {scheme}:// refused"):
        fetch_emdb("EMD-9101", tmp_path, server.url + "/emdb", FAST)
    assert len(server.requests(_header(9101))) == 1 and _leftovers(tmp_path) == []


def test_redirect_within_http_is_followed(server, site, tmp_path):
    server.fault(_header(9101), "redirect_http")
    paths = fetch_emdb("EMD-9101", tmp_path, server.url + "/emdb", FAST)
    assert paths["header"].read_bytes() == site["files"][_header(9101)].read_bytes()


@pytest.mark.parametrize("doctype,ref", [
    ('<!DOCTYPE emd [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
     '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>', "&c;"),  # entity expansion ("billion laughs")
    ('<!DOCTYPE emd [<!ENTITY x SYSTEM "file:///etc/passwd">]>', "&x;"),  # external entity
])
def test_xml_with_a_dtd_is_refused(site, server, tmp_path, doctype, ref):
    xml = header_xml(site["entries"]["EMD-9101"]).replace("<emd ", doctype + "\n<emd ", 1)
    bad = tmp_path / "emd-9101.xml"
    bad.write_text(xml.replace("<title>Test map", f"<title>{ref}Test map", 1), encoding="utf-8")
    server.add(_header(9101), bad)
    with pytest.raises(FetchError, match="EMD-9101 header: XML with a DTD refused"):
        fetch_emdb("EMD-9101", tmp_path / "cache", server.url + "/emdb", FAST)
    assert len(server.requests(_header(9101))) == 1 and _leftovers(tmp_path / "cache") == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/emdb;id", "http://127.0.0.1:1/$(id)", "http://127.0.0.1:1/a\tb",
                                 "http://127.0.0.1:1/a b", "http:///nohost", "ftp://127.0.0.1/emdb", "http://x/`id`",
                                 "http://x/a'b", "http://x/a?b"])
def test_base_urls_are_validated(url, tmp_path):
    with pytest.raises(InputError, match="(invalid|unsupported) base URL"):
        fetch_emdb("EMD-9101", tmp_path, url, FAST)
    assert not any(tmp_path.iterdir())


def test_cli_records_a_refusal_in_one_line(site, server, tmp_path):
    bomb = gzip_bomb(tmp_path / "big.map.gz", mrc_head(512, 512, 256), 268_435_456)
    _entry_with_map(site, tmp_path, server, 9107, bomb, 268_436)
    record = tmp_path / "EMD-9107.json"
    r, _ = _cli(["fetch", "entry", "EMD-9107", "--record", str(record), "--cache", str(tmp_path / "cache"),
                 "--emdb-url", server.url + "/emdb", "--max-map-mb", "100"])
    assert r.returncode == 0, r.stderr  # the workflow's mode: the record holds the failure
    rec = json.loads(record.read_text())
    assert rec["status"] == "failed" and rec["reason"].startswith("EMD-9107 map: 268 MB uncompressed")
    assert r.stderr.strip() == f"EMD-9107: failed: {rec['reason']}"
    r, _ = _cli(["fetch", "emdb", "EMD-9107", "--cache", str(tmp_path / "c"), "--emdb-url", "http://x/$(id)"])
    # refused by the shared value rules (cryosse.io.rules), naming the flag
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "--emdb-url" in r.stderr and "URL" in r.stderr
    assert "Traceback" not in r.stderr


def test_stale_part_over_the_bound_is_dropped(server, site, tmp_path):
    part = tmp_path / "pdb/1a8o.cif.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 600_000)  # from a run with a larger cap
    cfg = FetchConfig(timeout_s=2, retries=1, backoff_s=0.01, max_file_mb=0.5)
    got = fetch_pdb("1a8o", tmp_path, server.url + "/pdb/mmCIF", cfg)
    assert got.read_bytes() == site["files"]["/pdb/mmCIF/a8/1a8o.cif.gz"].read_bytes()
    assert server.requests("/pdb/mmCIF/a8/1a8o.cif.gz") == [""]  # asked from the start


def test_concurrent_fetches_of_one_id_download_once(server, site, tmp_path):
    """Two fetches of one entry at once (threads here; processes share the same file lock):
    one download of each file, both get the checked file."""
    from concurrent.futures import ThreadPoolExecutor

    server.throttle = 400_000  # slow enough for the two to overlap
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda _: fetch_emdb("EMD-9101", tmp_path, server.url + "/emdb", FAST), range(2)))
    assert got[0] == got[1] and got[0]["map"].read_bytes() == site["files"][_map(9101)].read_bytes()
    assert len(server.requests(_map(9101))) == 1 and len(server.requests(_header(9101))) == 1


def test_local_mirror_by_file_url(site, tmp_path):
    """``file://`` base URLs (a local copy in the archive layouts): the same checks, no server."""
    www = site["files"][_map(9101)].parents[4]
    rec = fetch_entry("EMD-9101", tmp_path, emdb_url=(www / "emdb").as_uri(), pdb_url=(www / "pdb/mmCIF").as_uri(),
                      cfg=FAST)
    assert rec["status"] == "ok", rec
    assert Path(rec["map"]).read_bytes() == site["files"][_map(9101)].read_bytes()
    rec = fetch_entry("EMD-9999", tmp_path, emdb_url=(www / "emdb").as_uri(), cfg=FAST)
    assert rec["status"] == "failed" and rec["reason"] == \
        f"EMD-9999 header: not found at {(www / 'emdb').as_uri()}/structures/EMD-9999/header/emd-9999.xml " \
        "(withdrawn or wrong id)"  # asked once, as a 404
    assert "\n" not in rec["reason"] and _leftovers(tmp_path / "emdb/EMD-9999") == []


def _shared(path: str) -> Path:
    from conftest import SHARED_DATA

    f = SHARED_DATA / path
    if not f.is_file():
        pytest.skip(f"real data not there ({f}; ../shared/data is absent in a user's clone)")
    return f


def test_real_header_and_real_map_bounds(site, server, tmp_path):
    """The real EMD-0001 header (size_kbytes 67109) with max_map_mb 50: refused before the map
    is asked for. The real gzipped EMD-0093 map (220³ float32) under a header announcing its
    size: fetched intact; under a header announcing half of it: refused after its MRC header."""
    server.add(_header(1), _shared("emdb_headers/emd-0001.xml"))
    cfg = FetchConfig(timeout_s=2, retries=3, backoff_s=0.01, max_map_mb=50)
    with pytest.raises(TooLarge, match=r"^EMD-0001 map: 67 MB uncompressed \(header map/@size_kbytes 67109\), "
                                       r"over max_map_mb 50; not downloaded$"):
        fetch_emdb("EMD-0001", tmp_path / "c1", server.url + "/emdb", cfg)
    assert server.requests(_map(1)) == []
    real = _shared("emd_0093/emd_0093_hidedust.mrc.gz")
    _entry_with_map(site, tmp_path, server, 9108, real, round(220 ** 3 * 4 / 1000))
    paths = fetch_emdb("EMD-9108", tmp_path / "c2", server.url + "/emdb", FAST)
    assert paths["map"].read_bytes() == real.read_bytes()
    _entry_with_map(site, tmp_path, server, 9109, real, 21_296)
    with pytest.raises(TooLarge, match="EMD-9109 map: MRC header announces 42593024 bytes, the EMDB header 21296000"):
        fetch_emdb("EMD-9109", tmp_path / "c3", server.url + "/emdb", FAST)
