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
from .transport import base_url as _base

DEFAULT_EMDB_API = "https://www.ebi.ac.uk/emdb/api"
from .transport import FetchConfig, download

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
    limit: int = 100
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
