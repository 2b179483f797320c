"""Fetch: EMDB maps and headers, PDB models, and EMDB search results over HTTP(S).

:mod:`.archive` knows the archives' layouts and the cache, :mod:`.transport` downloads
(resume, retries, per-host limits), :mod:`.checks` checks each file before it enters the
cache, :mod:`.emdb` reads EMDB headers and queries the EMDB search API.
"""
from ..ids import emdb_id, pdb_id
from .archive import (DEFAULT_EMDB_URL, DEFAULT_PDB_URL, MIRRORS, ArchiveConfig, Mirror, emdb_header_url,
                      emdb_map_url, emdb_paths, fetch_emdb, fetch_entry, fetch_many, fetch_pdb, pdb_model_url,
                      pdb_path, read_record, write_record)
from .checks import check_cif_gz, check_gzip, check_mrc_gz, check_xml
from .emdb import (DEFAULT_EMDB_API, QUERY_COLUMNS, EmdbHeader, EmdbQuery, parse_emdb_header, query_emdb,
                   read_query_table, write_query_table)
from .transport import FetchConfig, FetchError, NotFound, TooLarge, base_url, check_url, download, host_slot

__all__ = ["ArchiveConfig", "Mirror", "MIRRORS", "FetchConfig", "FetchError", "NotFound", "TooLarge", "check_url", "EmdbHeader", "EmdbQuery", "emdb_id", "pdb_id",
           "emdb_map_url", "emdb_header_url", "pdb_model_url", "emdb_paths", "pdb_path", "download",
           "host_slot", "base_url", "fetch_emdb", "fetch_pdb", "fetch_entry", "fetch_many", "parse_emdb_header",
           "query_emdb", "read_query_table", "write_query_table", "read_record", "write_record",
           "check_gzip", "check_mrc_gz", "check_cif_gz", "check_xml", "QUERY_COLUMNS",
           "DEFAULT_EMDB_URL", "DEFAULT_PDB_URL", "DEFAULT_EMDB_API"]
