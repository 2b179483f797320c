"""The EMDB's own formats: the entry header (XML, schema v3) and the search API with its saved
query table."""
from __future__ import annotations

import csv
import datetime as _dt
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from ..errors import InputError
from ..ids import _EMDB_RE, _PDB_RE, emdb_id, pdb_id
from ..io import write_text
from .checks import parse_xml
from .transport import FetchConfig, FetchError, download
from .transport import base_url as _base

DEFAULT_EMDB_API = "https://www.ebi.ac.uk/emdb/api"

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
    #: ``map/@size_kbytes``: the map's uncompressed size in kB (10^3 bytes)
    map_kbytes: int | None = None

    @property
    def map_bytes(self) -> int | None:
        return None if self.map_kbytes is None else self.map_kbytes * 1000


def xs_boolean(value: str | None) -> bool:
    """An ``xs:boolean`` attribute: ``true``/``1`` or ``false``/``0`` (whitespace collapsed)."""
    return (value or "").strip() in ("true", "1")


def _first_text(root, paths: list[str]) -> str | None:
    for p in paths:
        el = root.find(p)
        if el is not None and el.text and el.text.strip():
            return el.text.strip()
    return None


def parse_emdb_header(path: str | os.PathLike) -> EmdbHeader:
    """Resolution, recommended (primary) contour level and fitted PDB ids of an EMDB header
    (XML, schema v3: ``emd/structure_determination_list/…/final_reconstruction/resolution``,
    ``emd/map/contour_list/contour[@primary]/level`` (an ``xs:boolean``: ``true`` or ``1``),
    ``emd/crossreferences/pdb_list/pdb_reference/pdb_id`` (four-character or extended ids),
    ``emd/map/@size_kbytes``)."""
    p = Path(path)
    try:
        root = parse_xml(p)
    except (ElementTree.ParseError, OSError, FetchError) as exc:
        raise InputError(p, f"not a readable EMDB header ({exc})") from None
    for el in root.iter():  # drop namespaces if any
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    eid = root.get("emdb_id") or ""
    res = _first_text(root, [".//final_reconstruction/resolution", ".//resolution_by_author",
                             ".//resolution"])
    level = None
    for c in root.findall("map/contour_list/contour"):
        primary = xs_boolean(c.get("primary"))
        if primary or level is None:
            t = c.findtext("level")
            if t and t.strip():
                level = _float(t)
                if primary and level is not None:
                    break
    pdbs = tuple(dict.fromkeys(e.text.strip().lower() for e in
                               root.findall("crossreferences/pdb_list/pdb_reference/pdb_id")
                               if e.text and _PDB_RE.match(e.text.strip())))
    method = _first_text(root, [".//structure_determination/method"]) or ""
    status = _first_text(root, ["admin/current_status/code"]) or ""
    title = _first_text(root, ["admin/title"]) or ""
    kb = (root.find("map").get("size_kbytes") or "").strip() if root.find("map") is not None else ""
    return EmdbHeader(emdb_id(eid) if _EMDB_RE.match(eid) else "",
                      _float(res), level, pdbs, method, status, title,
                      int(kb) if kb.isdigit() and int(kb) > 0 else None)


# ----------------------------------------------------------------------------- search

QUERY_COLUMNS = ["emdb", "pdb", "resolution_a", "title", "release_date"]
#: Solr fields asked of the search API, as the EMDB's own client (``emdb`` on PyPI) and other
#: public callers name them; the API has no map size field (the size comes from each header)
SEARCH_FIELDS = "emdb_id,resolution,fitted_pdbs,title,release_date,current_status"
#: the has-a-model filter, in the form public callers use
HAS_MODEL = 'xref_links:"pdb"'


@dataclass(frozen=True)
class EmdbQuery:
    """Selection of EMDB entries (released, single-particle, with a fitted model, resolution
    range, release dates). ``max_map_mb`` is recorded with the table; the fetch applies it
    from each entry's header (the search API has no map size)."""

    resolution_a: tuple[float, float] = (5.0, 10.0)
    method: str = "singleParticle"
    released_after: str = ""
    released_before: str = ""
    max_map_mb: float = 512.0
    limit: int = 100
    extra: str = ""

    def solr(self) -> str:
        lo, hi = self.resolution_a
        q = [f"resolution:[{lo:g} TO {hi:g}]", f'structure_determination_method:"{self.method}"',
             'current_status:"REL"', HAS_MODEL]
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
    CSV output), checked again here whatever the server did with the filters: resolution in
    range, a fitted model in ``fitted_pdbs``, status REL when the answer gives it; sorted by
    id."""
    url = (f"{_base(api_url, 'api_url')}/search/{urllib.parse.quote(query.solr(), safe='')}"
           f"?rows={int(query.limit)}&fl={SEARCH_FIELDS}&wt=csv&download=true")
    with tempfile.TemporaryDirectory() as d:
        path = download(url, Path(d) / "search.csv", what="EMDB search", cfg=cfg,
                        max_bytes=64_000_000 + 2_000 * int(query.limit))
        text = path.read_text(encoding="utf-8", errors="replace")
    return parse_search_csv(text, query)


def parse_search_csv(text: str, query: EmdbQuery) -> list[dict]:
    """Rows of a search answer (CSV) that fit ``query``: resolution in range, at least one
    fitted PDB id, released (when the answer has ``current_status``); sorted by id."""
    rows, lo, hi = [], *query.resolution_a
    for r in csv.DictReader(text.splitlines()):
        r = {k.strip().lower(): (v or "").strip() for k, v in r.items() if k}
        try:
            eid = emdb_id(r.get("emdb_id", ""))
            res = float(r.get("resolution") or "nan")
        except (InputError, ValueError):
            continue
        pdbs = [p.lower() for p in re.split(r"[\s,;|]+", r.get("fitted_pdbs", "")) if _PDB_RE.match(p)]
        status = r.get("current_status", "").upper()
        if not (lo <= res <= hi) or not pdbs or (status and status != "REL"):
            continue
        rows.append({"emdb": eid, "pdb": pdbs[0], "resolution_a": f"{res:g}",
                     "title": " ".join(r.get("title", "").split()),
                     "release_date": r.get("release_date", "")[:10]})
    rows.sort(key=lambda r: int(r["emdb"][4:]))
    return rows


def _float(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def write_query_table(path: str | os.PathLike, rows: list[dict], query: EmdbQuery, api_url: str) -> None:
    """The query result as a TSV with a header of ``#`` lines: table version, date, query."""
    lines = ["# cryosse EMDB query table, version 2",
             f"# date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}",
             f"# api: {api_url}", f"# query: {query.solr()}",
             f"# max_map_mb: {query.max_map_mb:g} (applied by the fetch, from each header)",
             f"# entries: {len(rows)}",
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
