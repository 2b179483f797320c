"""HTTP(S) downloads into a cache that never holds a corrupt file: ``.part`` files resumed with
``Range`` requests, checks before the rename, retries with backoff and jitter for transient
failures, none for 404/410, and a per-host limit on concurrent connections."""
from __future__ import annotations

import contextlib
import http.client
import os
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import CryosseError, InputError


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


def base_url(url: str) -> str:
    u = urllib.parse.urlparse(url)
    if u.scheme not in ("http", "https", "file"):
        raise InputError("url", f"unsupported base URL {url!r} (http, https or file)")
    return url.rstrip("/")
