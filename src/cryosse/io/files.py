"""Atomic writes of text, JSON, TSV and PNG files, and reading TSV tables.

Every writer here writes to a temporary file in the destination folder and renames it into
place, so a crash never leaves a half-written output and a reader never sees one.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError

__all__ = ["atomic_path", "write_text", "write_json", "write_tsv", "read_tsv", "pyplot", "write_png",
           "one_line", "TEMP_PREFIX", "temp_prefix", "remove_stale"]


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type name when it has none)."""
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


_UMASK = os.umask(0o022)
os.umask(_UMASK)


#: every temporary file or folder the package makes starts with this, then ``<host>.<pid>.``:
#: ``.cryosse-tmp.<host>.<pid>.<random>.<name>``
TEMP_PREFIX = ".cryosse-tmp."
_TEMP = re.compile(r"^\.cryosse-tmp\.([^.]+)\.([0-9]+)\.")
#: a temporary of another host is stale after this many seconds (its pid cannot be checked)
STALE_AFTER_S = 2 * 24 * 3600
_CLEANED: set[str] = set()


def temp_prefix() -> str:
    """The prefix of this process's temporary names (:data:`TEMP_PREFIX`, host, pid)."""
    return f"{TEMP_PREFIX}{socket.gethostname().split('.')[0] or 'host'}.{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, run by someone else
        return True
    return True


def remove_stale(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries that killed jobs left in ``folder`` (once per folder and
    process): those of this host whose process is gone, and those of other hosts older than
    :data:`STALE_AFTER_S`. A live job's temporaries are never touched. Returns the removed."""
    d = Path(folder)
    key = str(d.resolve()) if d.exists() else ""
    if not key or key in _CLEANED:
        return []
    _CLEANED.add(key)
    host, removed = socket.gethostname().split(".")[0] or "host", []
    with contextlib.suppress(OSError):
        for p in d.iterdir():
            m = _TEMP.match(p.name)
            if not m or int(m.group(2)) == os.getpid() and m.group(1) == host:
                continue
            try:
                stale = (not _alive(int(m.group(2)))) if m.group(1) == host else \
                    time.time() - p.lstat().st_mtime > STALE_AFTER_S
                if stale:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                    removed.append(p)
            except OSError:
                continue
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file is removed when the block raises, so ``path`` is either the old file,
    or the complete new one, never a partial write. Its name starts with :func:`temp_prefix`;
    the temporaries killed jobs left in the folder are removed first (:func:`remove_stale`).
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(dest.parent)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), suffix=f".{dest.name}", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def pyplot():
    """matplotlib's pyplot with the non-interactive Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_png(fig, path: str | os.PathLike, dpi: int = 100) -> None:
    """Save a matplotlib figure as PNG atomically, then close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)


def write_json(path: str | os.PathLike, obj) -> None:
    """Write JSON atomically (sorted keys, indented, trailing newline)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")


def write_tsv(path: str | os.PathLike, rows: list[dict], columns: list[str] | None = None) -> None:
    """Write rows as a tab-separated table with a header, atomically."""
    columns = columns or (list(rows[0]) if rows else [])
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, delimiter="\t", lineterminator="\n",
                           extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow(row)


def read_tsv(path: str | os.PathLike) -> list[dict]:
    """Read a tab-separated table with a header into a list of dicts (all values strings)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such table")
    with open(p, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))
