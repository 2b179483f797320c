"""HTTP(S) downloads into a cache that never holds a corrupt file: ``.part`` files resumed with
``Range`` requests, checks before the rename, retries with backoff and jitter for transient
failures (timeouts, 5xx, dropped connections, truncated or damaged bodies), none for
deterministic ones (404/410, content that fails its check, a file over its size bound), a
per-host limit on concurrent connections, and a byte bound on every download: the size the
caller announces (a map's EMDB header), the Content-Length, and a hard cap
(``max_file_mb``); a body that goes past its bound is cut off and refused."""
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
    #: largest map fetched, MB (10^6 bytes) uncompressed: refused before the download from the
    #: EMDB header's ``map/@size_kbytes``, and the inflation is stopped past it
    max_map_mb: float = 512.0
    #: hard cap on any one file, MB: on the bytes received and on a model's inflated size
    max_file_mb: float = 2048.0

    def __post_init__(self):
        from ..io import rules

        bad = rules.problems(self)  # the ranges shared with the CLI and the schema
        if bad:
            raise ValueError(f"{bad[0][0]}: {bad[0][1]}")

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1e6)

    @property
    def max_map_bytes(self) -> int:
        return int(self.max_map_mb * 1e6)


class FetchError(CryosseError):
    """A download that failed for good (after retries); one line naming the id and URL."""


class NotFound(FetchError):
    """The server says the file does not exist (404/410): withdrawn entry or wrong id."""


class TooLarge(FetchError):
    """A file over its size bound (announced, or found while it arrives or inflates)."""


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


class _NoUnsafeRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only (urllib would follow one to ftp://): a mirror cannot
    send the client to local files or another protocol."""

    def http_error_302(self, req, fp, code, msg, headers):
        target = urllib.parse.urljoin(req.full_url, headers.get("location") or headers.get("uri") or "")
        scheme = urllib.parse.urlparse(target).scheme.lower()
        if scheme not in ("http", "https"):
            fp.close()
            raise FetchError(f"redirect to {scheme}:// refused ({' '.join(target.split())[:200]})")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


_OPENER = urllib.request.build_opener(_NoUnsafeRedirect)


def _get_into(url: str, part: Path, cfg: FetchConfig, limit: int) -> None:
    """GET ``url`` into ``part``, resuming from its current size with a Range request; at
    most ``limit`` bytes in all (more announced or received: :class:`TooLarge`)."""
    have = part.stat().st_size if part.exists() else 0
    if have > limit:  # a stale part from a run with a larger bound
        part.unlink()
        have = 0
    req = urllib.request.Request(url, headers={"User-Agent": cfg.user_agent})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = _OPENER.open(req, timeout=cfg.timeout_s)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in (404, 410):
            raise NotFound(f"HTTP {exc.code}") from None
        if exc.code == 416 and have:  # nothing after what we have: the checks decide
            return
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Retryable(f"HTTP {exc.code} {exc.reason}") from None
        raise FetchError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, FileNotFoundError):  # file:// (a local mirror): like a 404
            raise NotFound("no such file") from None
        raise
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
        expected = int(length) if length and length.strip().isdigit() else None
        if expected is not None and start + expected > limit:
            raise TooLarge(f"{start + expected} bytes announced (Content-Length), over the bound of {limit}")
        bound = limit - start if expected is None else min(expected, limit - start)
        got = 0
        with open(part, mode) as fh:
            while True:
                b = resp.read(min(cfg.chunk_bytes, bound - got + 1))
                if not b:
                    break
                if got + len(b) > bound:
                    fh.write(b[:bound - got])
                    if expected is None or bound < expected:
                        raise TooLarge(f"body goes on past {limit} bytes (the bound for this file); cut off")
                    break  # more than the Content-Length it announced: ignored (http.client stops there)
                fh.write(b)
                got += len(b)
            fh.flush()
            os.fsync(fh.fileno())
        if expected is not None and got != expected:
            raise _Retryable(f"connection closed after {start + got} bytes, "
                             f"{start + expected} announced")


def download(url: str, dest: str | os.PathLike, *, what: str, check=None,
             cfg: FetchConfig = FetchConfig(), max_bytes: int | None = None) -> Path:
    """Download ``url`` to ``dest`` (a cache file) unless it is there already.

    ``what`` names the item in messages (``EMD-1234 map``); ``check(path)`` verifies the
    downloaded file before it is renamed into place (it raises :class:`FetchError` for content
    that cannot change on retry, ``_Retryable`` for a damaged transfer). ``max_bytes`` bounds
    the download (with ``cfg.max_file_mb``). Raises :class:`NotFound` (404/410),
    :class:`TooLarge` or :class:`FetchError` (at once for deterministic failures, after
    ``cfg.retries`` retries for transient ones), leaving at most a resumable ``.part`` file of
    a transient failure.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest):  # one writer per cache file, also across processes
        if dest.is_file():
            return dest
        limit = cfg.max_file_bytes if max_bytes is None else min(int(max_bytes), cfg.max_file_bytes)
        return _download(check_url(url, what), dest, what, check, cfg, limit)


@contextlib.contextmanager
def _exclusive(dest: Path):
    import fcntl

    with open(dest.with_name(dest.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _download(url: str, dest: Path, what: str, check, cfg: FetchConfig, limit: int) -> Path:
    part = dest.with_name(dest.name + ".part")
    last = ""
    for attempt in range(cfg.retries + 1):
        if attempt:
            delay = min(cfg.max_backoff_s, cfg.backoff_s * 2 ** (attempt - 1))
            time.sleep(delay * (0.5 + random.random() / 2))
        try:
            with host_slot(url, cfg.per_host):
                _get_into(url, part, cfg, limit)
            if check is not None:
                check(part)
            os.replace(part, dest)
            return dest
        except NotFound:
            part.unlink(missing_ok=True)
            raise NotFound(f"{what}: not found at {url} (withdrawn or wrong id)") from None
        except FetchError as exc:
            part.unlink(missing_ok=True)
            raise type(exc)(f"{what}: {exc} at {url}") from None
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


# a URL's characters: no whitespace, quotes or shell metacharacters ($ ` ; | & < > ( ) { } \\ ! * ' ")
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])"
_PATH = r"(?:/[A-Za-z0-9._~%+,:=@/-]*)?"
_BASE_RE = re.compile(rf"^(?:https?://{_HOST}(?::[0-9]{{1,5}})?{_PATH}|file://(?:localhost)?/[A-Za-z0-9._~%+,:=@/-]*)$")
_QUERY_RE = re.compile(r"^[A-Za-z0-9._~%+,:=@/&-]*$")


def base_url(url: str, what: str = "url") -> str:
    """A base URL of an archive or API, validated: scheme http or https (with a host) or file
    (a local mirror), and only URL characters (no whitespace, quotes or shell
    metacharacters, no query or fragment); the trailing ``/`` dropped."""
    u = str(url)
    if not _BASE_RE.match(u):
        scheme = u.split("://", 1)[0].lower() if "://" in u else ""
        if scheme not in ("http", "https", "file"):
            raise InputError(what, f"unsupported base URL {u!r} (http://HOST/..., https://HOST/... or file:///PATH)")
        raise InputError(what, f"invalid base URL {u!r} (a host and URL characters only: no whitespace, "
                               "quotes or shell metacharacters)")
    return u.rstrip("/")


def check_url(url: str, what: str = "url") -> str:
    """A full download URL: a valid base (see :func:`base_url`) and a plain query string."""
    base, _, query = str(url).partition("?")
    base_url(base, what)
    if not _QUERY_RE.match(query):
        raise InputError(what, f"invalid URL query in {url!r}")
    return url
