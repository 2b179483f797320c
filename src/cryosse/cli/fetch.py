"""Commands that reach the archives: fetch (maps, headers, models into a cache) and query-emdb."""
from __future__ import annotations

from ..errors import CryosseError, InputError
from ..fetch import ArchiveConfig, EmdbQuery, FetchConfig
from ..fetch.archive import MIRROR_NAMES
from .options import add_command, alias, config_option, field_option, output_option, say, settings


def cmd_fetch(a) -> None:
    from ..fetch import emdb_id, fetch_entry, fetch_many, write_record

    net, arc = settings(a, FetchConfig, ArchiveConfig)
    mirror = arc.resolve()
    if a.record:  # one entry, its record written whatever happens (the workflow's mode)
        if a.kind != "entry" or len(a.ids) != 1:
            raise InputError("--record", "needs 'fetch entry' with one id")
        rec = fetch_entry(a.ids[0], arc.cache, pdb=a.pdb, emdb_url=mirror, pdb_url=mirror, cfg=net)
        write_record(a.record, rec)
        say(f"{rec['emdb']}: {rec['status']}{': ' + rec['reason'] if rec['reason'] else ''}")
        return
    if a.pdb and a.kind != "entry":
        raise InputError("--pdb", "only with 'fetch entry'")
    if a.pdb:
        recs = [dict(kind="entry", id=emdb_id(a.ids[0]), **fetch_entry(
            a.ids[0], arc.cache, pdb=a.pdb, emdb_url=mirror, pdb_url=mirror, cfg=net))]
    else:
        recs = fetch_many([(a.kind, i) for i in a.ids], arc.cache, emdb_url=mirror, pdb_url=mirror,
                          cfg=net, workers=a.workers)
    failed = [r for r in recs if r["status"] != "ok"]
    for r in recs:
        if r["status"] == "ok":
            say(f"{r['id']}: ok")
    if failed:
        say(f"{len(failed)} of {len(recs)} failed:")
        for r in failed:
            say(f"  {r['reason']}")
        raise CryosseError(f"{len(failed)} of {len(recs)} downloads failed")


def cmd_query(a) -> None:
    from ..fetch import query_emdb, write_query_table

    q, net, arc = settings(a, EmdbQuery, FetchConfig, ArchiveConfig)
    rows = query_emdb(q, arc.api_url, net)
    write_query_table(a.output, rows, q, arc.api_url)
    say(f"{a.output}: {len(rows)} entries")


def net_options(p) -> None:
    field_option(p, FetchConfig, "timeout_s", "--timeout", type=float, help="seconds per connection attempt")
    field_option(p, FetchConfig, "retries", "--retries", type=int, help="retries after 5xx, timeouts, drops")
    field_option(p, FetchConfig, "backoff_s", "--backoff", type=float,
                 help="first retry delay in s, doubled each time")
    field_option(p, FetchConfig, "per_host", "--per-host", type=int, help="concurrent connections per host")
    config_option(p)


def register(sub) -> None:
    s = add_command(sub, "fetch", "download EMDB maps/headers and PDB models into a cache",
                    "Download into CACHE (emdb/EMD-NNNN/emd_NNNN.map.gz and emd-NNNN.xml; pdb/<id>.cif.gz) "
                    "from the archive layouts under --emdb-url / --pdb-url (any mirror). Partial files "
                    "resume; every file is checked before it enters the cache. 'entry' fetches map, header "
                    "and fitted model (--pdb, default the header's first fitted model).",
                    "fetch entry EMD-5168 --cache resources\nfetch pdb 3mfp 6gyn --cache resources", cmd_fetch)
    s.add_argument("kind", choices=["emdb", "pdb", "entry"], help="what the ids are")
    s.add_argument("ids", nargs="+", metavar="ID", help="EMDB ids (EMD-NNNN) or PDB ids")
    field_option(s, ArchiveConfig, "cache", "--cache", help="cache folder")
    field_option(s, ArchiveConfig, "emdb_url", "--emdb-url", help="EMDB archive base URL")
    field_option(s, ArchiveConfig, "pdb_url", "--pdb-url", help="PDB divided/mmCIF base URL")
    field_option(s, ArchiveConfig, "mirror", "--mirror", choices=list(MIRROR_NAMES),
                 help="named mirror with its own URL layout (custom: --emdb-url and --pdb-url)")
    field_option(s, FetchConfig, "max_map_mb", "--max-map-mb", type=float,
                 help="largest map fetched, MB uncompressed (from its header; bounds the download)")
    field_option(s, FetchConfig, "max_file_mb", "--max-file-mb", type=float, help="hard cap on any file, MB")
    s.add_argument("--pdb", help="with 'entry': the PDB model to use")
    s.add_argument("--record", help="with 'entry': write the outcome (ok or failed, reason) as JSON "
                   "and exit 0 even when the download failed")
    s.add_argument("--workers", type=int, default=4, help="downloads at a time")
    net_options(s)

    s = add_command(sub, "query-emdb", "select EMDB entries with the EMDB search API",
                    "Query the EMDB search API (single particle, fitted model, resolution range, release "
                    "dates, map size) and save the result as a versioned TSV (date and query in its header) "
                    "for reproducible runs.",
                    "query-emdb --resolution-range 5 10 --released-after 2020-01-01 -o entries.tsv", cmd_query)
    field_option(s, ArchiveConfig, "api_url", "--api-url", help="EMDB API base URL")
    field_option(s, EmdbQuery, "resolution_a", "--resolution-range", type=float, nargs=2, metavar=("LO", "HI"),
                 help="resolution range in Å")
    alias(s, "--resolution", dest="resolution_a", type=float, nargs=2)
    field_option(s, EmdbQuery, "method", "--method", help="structure determination method")
    field_option(s, EmdbQuery, "released_after", "--released-after", help="YYYY-MM-DD")
    field_option(s, EmdbQuery, "released_before", "--released-before", help="YYYY-MM-DD")
    field_option(s, EmdbQuery, "max_map_mb", "--max-map-mb", type=float,
                 help="largest map, MB: recorded in the table; 'fetch' applies it from each header")
    field_option(s, EmdbQuery, "limit", "--limit", type=int, help="most entries returned")
    field_option(s, EmdbQuery, "extra", "--extra", help="extra Solr clause ANDed to the query")
    net_options(s)
    output_option(s, "output TSV")
