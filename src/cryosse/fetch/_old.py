"""Fetch: EMDB maps and headers, PDB models, and EMDB search results over HTTP(S).

Files are laid out as the official archives lay them out, under a base URL that any mirror
(EBI, RCSB, PDBj, a local copy) can provide:

- EMDB map:    ``{emdb_url}/structures/EMD-1234/map/emd_1234.map.gz``
- EMDB header: ``{emdb_url}/structures/EMD-1234/header/emd-1234.xml``
- PDB model:   ``{pdb_url}/mf/1mfp.cif.gz`` (``divided/mmCIF`` layout: middle two characters)

Downloads go into a cache keyed by id (``{cache}/emdb/EMD-1234/…``, ``{cache}/pdb/1mfp.cif.gz``).
A download is written to ``<name>.part``, resumed with an HTTP ``Range`` request after a
dropped connection or a killed process, checked (gzip stream complete, MRC header consistent
with the data size, size as announced, XML well formed) and only then renamed into place, so
the cache never holds a corrupt file. Timeouts, 5xx answers, dropped connections and failed
checks are retried with exponential backoff and jitter; 404/410 are not retried and end in a
clear message. A per-host semaphore limits concurrent connections to one host.
"""
from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import gzip
import http.client
import json
import os
import random
import re
import socket
import struct
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from . import __version__
from .errors import CryosseError, InputError
from .io import write_json, write_text

__all__ = ["FetchConfig", "FetchError", "NotFound", "EmdbHeader", "emdb_id", "pdb_id",
           "emdb_map_url", "emdb_header_url", "pdb_model_url", "download", "fetch_emdb",
           "fetch_pdb", "fetch_entry", "fetch_many", "parse_emdb_header", "query_emdb",
           "read_query_table", "DEFAULT_EMDB_URL", "DEFAULT_PDB_URL", "DEFAULT_EMDB_API"]

DEFAULT_EMDB_URL = "https://ftp.ebi.ac.uk/pub/databases/emdb"
DEFAULT_PDB_URL = "https://files.wwpdb.org/pub/pdb/data/structures/divided/mmCIF"
DEFAULT_EMDB_API = "https://www.ebi.ac.uk/emdb/api"

_EMDB_RE = re.compile(r"^(?:EMD[-_]?)?([0-9]{4,5})$", re.IGNORECASE)
_PDB_RE = re.compile(r"^[0-9][A-Za-z0-9]{3}$")


@dataclass(frozen=True)
class FetchConfig:
    """How hard to try. ``per_host`` concurrent connections to one host, at most."""

    timeout_s: float = 30.0
    retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    per_host: int = 2
    chunk_bytes: int = 1 << 16
    user_agent: str = f"cryosse/{__version__}"


class FetchError(CryosseError):
    """A download that failed for good (after retries); one line naming the id and URL."""


class NotFound(FetchError):
    """The server says the file does not exist (404/410): withdrawn entry or wrong id."""


class _Retryable(Exception):
    """A transient failure: retry (resuming the partial file when ``keep_part``)."""

    def __init__(self, msg: str, keep_part: bool = True):
        super().__init__(msg)
        self.keep_part = keep_part


# ----------------------------------------------------------------------------- ids and URLs

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


def _base(url: str) -> str:
    u = urllib.parse.urlparse(url)
    if u.scheme not in ("http", "https", "file"):
        raise InputError("url", f"unsupported base URL {url!r} (http, https or file)")
    return url.rstrip("/")


def emdb_map_url(base: str, eid: str) -> str:
    n = emdb_id(eid)[4:]
    return f"{_base(base)}/structures/EMD-{n}/map/emd_{n}.map.gz"


def emdb_header_url(base: str, eid: str) -> str:
    n = emdb_id(eid)[4:]
    return f"{_base(base)}/structures/EMD-{n}/header/emd-{n}.xml"


def pdb_model_url(base: str, pid: str) -> str:
    p = pdb_id(pid)
    return f"{_base(base)}/{p[1:3]}/{p}.cif.gz"


# ----------------------------------------------------------------------------- checks

def check_gzip(path: Path) -> int:
    """Decompress ``path`` to the end (CRC and length checked); the uncompressed size."""
    n = 0
    try:
        with gzip.open(path, "rb") as fh:
            while True:
                b = fh.read(1 << 20)
                if not b:
                    break
                n += len(b)
    except (OSError, EOFError, zlib.error) as exc:
        raise _Retryable(f"corrupt or incomplete gzip stream ({' '.join(str(exc).split())})",
                         keep_part=False) from None
    return n


_MODE_BYTES = {0: 1, 1: 2, 2: 4, 6: 2, 12: 2}


def check_mrc_gz(path: Path) -> dict:
    """Check a gzipped MRC map: complete gzip stream, sane header, data size = nx*ny*nz*mode."""
    with gzip.open(path, "rb") as fh:
        try:
            head = fh.read(1024)
        except (OSError, EOFError, zlib.error):
            head = b""
    total = check_gzip(path)
    if len(head) < 1024:
        raise _Retryable("MRC header shorter than 1024 bytes", keep_part=False)
    for endian in "<>":
        nx, ny, nz, mode = struct.unpack(endian + "4i", head[:16])
        if mode in _MODE_BYTES and 0 < nx < 100000 and 0 < ny < 100000 and 0 < nz < 100000:
            break
    else:
        raise _Retryable("not an MRC map (bad dimensions or mode in the header)", keep_part=False)
    nsymbt = struct.unpack(endian + "i", head[92:96])[0]
    expected = 1024 + nsymbt + nx * ny * nz * _MODE_BYTES[mode]
    if total != expected:
        raise _Retryable(f"MRC data size {total} bytes, header announces {expected}", keep_part=False)
    return {"nx": nx, "ny": ny, "nz": nz, "mode": mode}


def check_cif_gz(path: Path) -> None:
    check_gzip(path)
    with gzip.open(path, "rt", errors="replace") as fh:
        first = fh.readline()
    if not first.startswith("data_"):
        raise _Retryable("not an mmCIF file (no data_ block)", keep_part=False)


def check_xml(path: Path) -> None:
    try:
        ElementTree.parse(path)
    except ElementTree.ParseError as exc:
        raise _Retryable(f"malformed XML ({exc})", keep_part=False) from None


# ----------------------------------------------------------------------------- transport

_HOST_SLOTS: dict[str, threading.BoundedSemaphore] = {}
_HOST_LOCK = threading.Lock()


@contextlib.contextmanager
def host_slot(url: str, per_host: int):
    """Hold one of ``per_host`` connection slots of ``url``'s host (process-wide)."""
    host = urllib.parse.urlparse(url).netloc
    with _HOST_LOCK:
        sem = _HOST_SLOTS.setdefault(f"{host}/{per_host}", threading.BoundedSemaphore(per_host))
    with sem:
        yield


def _get_into(url: str, part: Path, cfg: FetchConfig) -> None:
    """GET ``url`` into ``part``, resuming from its current size with a Range request."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": cfg.user_agent})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=cfg.timeout_s)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in (404, 410):
            raise NotFound(f"HTTP {exc.code}") from None
        if exc.code == 416 and have:  # nothing after what we have: the checks decide
            return
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Retryable(f"HTTP {exc.code} {exc.reason}") from None
        raise FetchError(f"HTTP {exc.code} {exc.reason}") from None
    with resp:
        status = getattr(resp, "status", 200)
        if status == 206:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                raise _Retryable("server answered a different range than asked", keep_part=False)
            mode, start = "ab", have
        else:  # 200: the whole file (the server ignored or did not get a Range)
            mode, start = "wb", 0
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        got = 0
        with open(part, mode) as fh:
            while True:
                b = resp.read(cfg.chunk_bytes)
                if not b:
                    break
                fh.write(b)
                got += len(b)
            fh.flush()
            os.fsync(fh.fileno())
        if expected is not None and got != expected:
            raise _Retryable(f"connection closed after {start + got} bytes, "
                             f"{start + expected} announced")


def download(url: str, dest: str | os.PathLike, *, what: str, check=None,
             cfg: FetchConfig = FetchConfig()) -> Path:
    """Download ``url`` to ``dest`` (a cache file) unless it is there already.

    ``what`` names the item in messages (``EMD-1234 map``); ``check(path)`` verifies the
    downloaded file before it is renamed into place. Raises :class:`NotFound` (404/410) or
    :class:`FetchError` (after ``cfg.retries`` retries), leaving at most a ``.part`` file.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest):  # one writer per cache file, also across processes
        if dest.is_file():
            return dest
        return _download(url, dest, what, check, cfg)


@contextlib.contextmanager
def _exclusive(dest: Path):
    import fcntl

    with open(dest.with_name(dest.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _download(url: str, dest: Path, what: str, check, cfg: FetchConfig) -> Path:
    part = dest.with_name(dest.name + ".part")
    last = ""
    for attempt in range(cfg.retries + 1):
        if attempt:
            delay = min(cfg.max_backoff_s, cfg.backoff_s * 2 ** (attempt - 1))
            time.sleep(delay * (0.5 + random.random() / 2))
        try:
            with host_slot(url, cfg.per_host):
                _get_into(url, part, cfg)
            if check is not None:
                check(part)
            os.replace(part, dest)
            return dest
        except NotFound:
            part.unlink(missing_ok=True)
            raise NotFound(f"{what}: not found at {url} (withdrawn or wrong id)") from None
        except FetchError as exc:
            part.unlink(missing_ok=True)
            raise FetchError(f"{what}: {exc} at {url}") from None
        except _Retryable as exc:
            last = str(exc)
            if not exc.keep_part:
                part.unlink(missing_ok=True)
        except (TimeoutError, socket.timeout):
            last = f"timed out after {cfg.timeout_s:g} s"
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            last = f"connection failed ({' '.join(str(reason).split()) or type(exc).__name__})"
    raise FetchError(f"{what}: giving up after {cfg.retries + 1} attempts at {url}: {last}")


# ----------------------------------------------------------------------------- EMDB header

@dataclass(frozen=True)
class EmdbHeader:
    emdb_id: str
    resolution_a: float | None
    contour_level: float | None
    fitted_pdb_ids: tuple[str, ...]
    method: str = ""
    status: str = ""
    title: str = ""


def _first_text(root, paths: list[str]) -> str | None:
    for p in paths:
        el = root.find(p)
        if el is not None and el.text and el.text.strip():
            return el.text.strip()
    return None


def parse_emdb_header(path: str | os.PathLike) -> EmdbHeader:
    """Resolution, recommended (primary) contour level and fitted PDB ids of an EMDB header
    (XML, schema v3: ``emd/structure_determination_list/…/final_reconstruction/resolution``,
    ``emd/map/contour_list/contour[@primary='true']/level``,
    ``emd/crossreferences/pdb_list/pdb_reference/pdb_id``)."""
    p = Path(path)
    try:
        root = ElementTree.parse(p).getroot()
    except (ElementTree.ParseError, OSError) as exc:
        raise InputError(p, f"not a readable EMDB header ({exc})") from None
    for el in root.iter():  # drop namespaces if any
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    eid = root.get("emdb_id") or ""
    res = _first_text(root, [".//final_reconstruction/resolution", ".//resolution_by_author",
                             ".//resolution"])
    level = None
    for c in root.findall("map/contour_list/contour"):
        if c.get("primary", "").lower() == "true" or level is None:
            t = c.findtext("level")
            if t and t.strip():
                level = float(t)
                if c.get("primary", "").lower() == "true":
                    break
    pdbs = tuple(dict.fromkeys(e.text.strip().lower() for e in
                               root.findall("crossreferences/pdb_list/pdb_reference/pdb_id")
                               if e.text and _PDB_RE.match(e.text.strip())))
    method = _first_text(root, [".//structure_determination/method"]) or ""
    status = _first_text(root, ["admin/current_status/code"]) or ""
    title = _first_text(root, ["admin/title"]) or ""
    return EmdbHeader(emdb_id(eid) if _EMDB_RE.match(eid) else "",
                      float(res) if res else None, level, pdbs, method, status, title)


# ----------------------------------------------------------------------------- items

def emdb_paths(cache: str | os.PathLike, eid: str) -> dict[str, Path]:
    eid = emdb_id(eid)
    n = eid[4:]
    d = Path(cache) / "emdb" / eid
    return {"map": d / f"emd_{n}.map.gz", "header": d / f"emd-{n}.xml"}


def pdb_path(cache: str | os.PathLike, pid: str) -> Path:
    return Path(cache) / "pdb" / f"{pdb_id(pid)}.cif.gz"


def fetch_emdb(eid: str, cache: str | os.PathLike, emdb_url: str = DEFAULT_EMDB_URL,
               cfg: FetchConfig = FetchConfig()) -> dict[str, Path]:
    """Header XML and map of an EMDB entry into the cache; paths by kind."""
    eid = emdb_id(eid)
    paths = emdb_paths(cache, eid)
    download(emdb_header_url(emdb_url, eid), paths["header"], what=f"{eid} header",
             check=check_xml, cfg=cfg)
    hdr = parse_emdb_header(paths["header"])
    if hdr.status.upper() in ("OBS", "WDRN"):
        raise NotFound(f"{eid}: entry is {'obsolete' if hdr.status.upper() == 'OBS' else 'withdrawn'}"
                       f" (status {hdr.status})")
    download(emdb_map_url(emdb_url, eid), paths["map"], what=f"{eid} map", check=check_mrc_gz,
             cfg=cfg)
    return paths


def fetch_pdb(pid: str, cache: str | os.PathLike, pdb_url: str = DEFAULT_PDB_URL,
              cfg: FetchConfig = FetchConfig()) -> Path:
    """The mmCIF model of a PDB entry into the cache."""
    pid = pdb_id(pid)
    return download(pdb_model_url(pdb_url, pid), pdb_path(cache, pid), what=f"PDB {pid} model",
                    check=check_cif_gz, cfg=cfg)


def fetch_entry(eid: str, cache: str | os.PathLike, *, pdb: str | None = None,
                emdb_url: str = DEFAULT_EMDB_URL, pdb_url: str = DEFAULT_PDB_URL,
                cfg: FetchConfig = FetchConfig()) -> dict:
    """Map, header and fitted model of one EMDB entry; a record (``status`` ok or failed,
    ``reason``, file paths, header facts) that never raises for download failures."""
    eid = emdb_id(eid)
    rec = {"emdb": eid, "pdb": pdb_id(pdb) if pdb else "", "status": "failed", "reason": ""}
    try:
        paths = fetch_emdb(eid, cache, emdb_url, cfg)
        hdr = parse_emdb_header(paths["header"])
        rec.update(map=str(paths["map"]), header=str(paths["header"]),
                   resolution_a=hdr.resolution_a, contour_level=hdr.contour_level,
                   fitted_pdb_ids=list(hdr.fitted_pdb_ids))
        if not rec["pdb"]:
            if not hdr.fitted_pdb_ids:
                raise FetchError(f"{eid}: header lists no fitted PDB model")
            rec["pdb"] = hdr.fitted_pdb_ids[0]
        rec["model"] = str(fetch_pdb(rec["pdb"], cache, pdb_url, cfg))
        rec.update(status="ok")
    except (FetchError, InputError) as exc:
        rec["reason"] = str(exc)
    return rec


def fetch_many(items: list[tuple[str, str]], cache: str | os.PathLike, *,
               emdb_url: str = DEFAULT_EMDB_URL, pdb_url: str = DEFAULT_PDB_URL,
               cfg: FetchConfig = FetchConfig(), workers: int = 4) -> list[dict]:
    """Fetch ``(kind, id)`` items (kind ``emdb``, ``pdb`` or ``entry``) concurrently (at most
    ``cfg.per_host`` connections per host). One record per item, failures included; the run
    goes on past failures."""

    def one(item):
        kind, ident = item
        try:
            if kind == "emdb":
                paths = fetch_emdb(ident, cache, emdb_url, cfg)
                return {"kind": kind, "id": emdb_id(ident), "status": "ok",
                        "files": [str(p) for p in paths.values()]}
            if kind == "pdb":
                return {"kind": kind, "id": pdb_id(ident), "status": "ok",
                        "files": [str(fetch_pdb(ident, cache, pdb_url, cfg))]}
            rec = fetch_entry(ident, cache, emdb_url=emdb_url, pdb_url=pdb_url, cfg=cfg)
            return {"kind": kind, "id": rec["emdb"], **rec}
        except CryosseError as exc:
            return {"kind": kind, "id": ident, "status": "failed", "reason": str(exc)}

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, items))


# ----------------------------------------------------------------------------- search

QUERY_COLUMNS = ["emdb", "pdb", "resolution_a", "title", "release_date", "map_size_mb"]


@dataclass(frozen=True)
class EmdbQuery:
    """Selection of EMDB entries (single-particle, fitted model, resolution range, …)."""

    resolution_a: tuple[float, float] = (5.0, 10.0)
    method: str = "singleParticle"
    released_after: str = ""
    released_before: str = ""
    max_map_mb: float = 512.0
    limit: int = 1000
    extra: str = ""

    def solr(self) -> str:
        lo, hi = self.resolution_a
        q = [f"resolution:[{lo:g} TO {hi:g}]", f'structure_determination_method:"{self.method}"',
             "fitted_pdbs:[* TO *]"]
        if self.released_after or self.released_before:
            a = f"{self.released_after}T00:00:00Z" if self.released_after else "*"
            b = f"{self.released_before}T23:59:59Z" if self.released_before else "*"
            q.append(f"release_date:[{a} TO {b}]")
        if self.extra:
            q.append(f"({self.extra})")
        return " AND ".join(q)


def query_emdb(query: EmdbQuery, api_url: str = DEFAULT_EMDB_API,
               cfg: FetchConfig = FetchConfig()) -> list[dict]:
    """Entries matching ``query`` from the EMDB search API (``{api}/search/<solr query>`` with
    CSV output), filtered again here (resolution, fitted model, map size), sorted by id."""
    fields = "emdb_id,resolution,fitted_pdbs,title,release_date,map_size"
    url = (f"{_base(api_url)}/search/{urllib.parse.quote(query.solr(), safe='')}"
           f"?rows={int(query.limit)}&fl={fields}&wt=csv&download=true")
    with tempfile.TemporaryDirectory() as d:
        path = download(url, Path(d) / "search.csv", what="EMDB search", cfg=cfg)
        text = path.read_text(encoding="utf-8", errors="replace")
    rows = []
    lo, hi = query.resolution_a
    for r in csv.DictReader(text.splitlines()):
        r = {k.strip().lower(): (v or "").strip() for k, v in r.items() if k}
        try:
            eid = emdb_id(r.get("emdb_id", ""))
            res = float(r.get("resolution") or "nan")
        except (InputError, ValueError):
            continue
        pdbs = [p.lower() for p in re.split(r"[\s,;|]+", r.get("fitted_pdbs", "")) if _PDB_RE.match(p)]
        size_mb = _float(r.get("map_size"))
        if not (lo <= res <= hi) or not pdbs:
            continue
        if size_mb is not None and query.max_map_mb and size_mb > query.max_map_mb:
            continue
        rows.append({"emdb": eid, "pdb": pdbs[0], "resolution_a": f"{res:g}",
                     "title": " ".join(r.get("title", "").split()),
                     "release_date": r.get("release_date", "")[:10],
                     "map_size_mb": "" if size_mb is None else f"{size_mb:g}"})
    rows.sort(key=lambda r: int(r["emdb"][4:]))
    return rows


def _float(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def write_query_table(path: str | os.PathLike, rows: list[dict], query: EmdbQuery, api_url: str) -> None:
    """The query result as a TSV with a header of ``#`` lines: table version, date, query."""
    lines = ["# cryosse EMDB query table, version 1",
             f"# date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}",
             f"# api: {api_url}", f"# query: {query.solr()}",
             f"# max_map_mb: {query.max_map_mb:g}", f"# entries: {len(rows)}",
             "\t".join(QUERY_COLUMNS)]
    lines += ["\t".join(str(r.get(c, "")).replace("\t", " ") for c in QUERY_COLUMNS) for r in rows]
    write_text(path, "\n".join(lines) + "\n")


def read_query_table(path: str | os.PathLike) -> list[dict]:
    """Rows (emdb, pdb, …) of a table from :func:`write_query_table`, ids validated."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such query table")
    lines = [ln for ln in p.read_text().splitlines() if ln and not ln.startswith("#")]
    rows = list(csv.DictReader(lines, delimiter="\t"))
    for k, r in enumerate(rows, start=1):
        try:
            r["emdb"] = emdb_id(r.get("emdb", ""))
            r["pdb"] = pdb_id(r["pdb"]) if r.get("pdb") else ""
        except InputError as exc:
            raise InputError(p, f"row {k}: {exc.problem}") from None
    return rows


def write_record(path: str | os.PathLike, rec: dict) -> None:
    """Write a record of :func:`fetch_entry` (JSON, atomically)."""
    write_json(path, rec)


def read_record(path: str | os.PathLike) -> dict:
    """Read a record of :func:`fetch_entry`; ids validated again before they name files."""
    p = Path(path)
    try:
        rec = json.loads(p.read_text())
        emdb_id(rec["emdb"])
    except (OSError, ValueError, KeyError, InputError) as exc:
        raise InputError(p, f"not a fetch record ({exc})") from None
    return rec
