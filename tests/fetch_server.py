"""A local HTTP server on 127.0.0.1 that serves files in the EMDB/PDB archive layouts and
injects faults, for the fetch tests.

Faults are queued per URL path; each request pops the next one:
``500``/``503`` (error status), ``404``, ``hang`` (no answer until after the client's timeout),
``truncate`` (half the body, then the connection is closed), ``corrupt`` (full length, bytes
flipped in the middle), ``long_length`` / ``short_length`` (Content-Length 100 bytes more /
less than the body), ``ignore_range`` (answer 200 with the whole file to a Range request), ``reset`` (half the
body, then a TCP reset), ``endless`` (the file,
then bytes without end, no Content-Length), ``no_length`` (the file without Content-Length,
closed at its end), ``huge_length`` (a Content-Length of 10^12 bytes, then the file),
``redirect_file`` / ``redirect_ftp`` / ``redirect_http`` (302 to ``file:///etc/passwd``, to
``ftp://…`` or to the same path under ``/moved``).
``throttle`` (bytes per second, all requests) slows every body down.

With ``search`` (a list of rows, fields named as the EMDB search API names them), the server
answers ``/api/search/<Solr query>?rows=&fl=&wt=csv`` from those rows as a Solr index would:
clauses joined by AND, ``field:[lo TO hi]`` (numbers or dates, ``*`` open) and
``field:"value"`` (a multi-valued field matches any of its values, comma separated); a field
the index does not have is an HTTP 400 (``undefined field``), as Solr answers; ``fl`` fields
it does not have are left out of the answer. Fields in ``search_ignores`` match every row (a
server that ignores that filter).
"""
from __future__ import annotations

import csv
import io
import re
import socket
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FaultServer:
    def __init__(self, files: dict[str, Path] | None = None, root: Path | None = None,
                 search: list[dict] | None = None, port: int = 0):
        self.files = dict(files or {})
        self.search = search
        self.search_ignores: set[str] = set()
        self.root = root
        self.faults: dict[str, list[str]] = {}
        self.log: list[tuple[str, str]] = []  # (path, Range header or "")
        self.throttle = 0.0
        self.hang_s = 3.0
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                try:
                    server._handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def add(self, path: str, file: Path) -> None:
        self.files[path] = Path(file)

    def fault(self, path: str, *faults: str) -> None:
        self.faults.setdefault(path, []).extend(faults)

    def requests(self, path: str) -> list[str]:
        return [r for p, r in self.log if p == path]

    def _resolve(self, path: str) -> Path | None:
        if path in self.files:
            return self.files[path]
        for key, f in self.files.items():  # "prefix*" routes (e.g. a search API)
            if key.endswith("*") and path.startswith(key[:-1]):
                return f
        if self.root is not None:
            f = (self.root / path.lstrip("/")).resolve()
            if self.root.resolve() in f.parents and f.is_file():
                return f
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        rng = h.headers.get("Range", "")
        with self.lock:
            self.log.append((path, rng))
            queue = self.faults.get(path) or []
            fault = queue.pop(0) if queue else ""
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        h.counted = True
        try:
            self._answer(h, path, rng, fault)
        finally:
            self._release(h)

    def _release(self, h) -> None:
        """The request stops counting as active (before its last bytes leave, so that a
        client that waits for them cannot start its next request earlier)."""
        with self.lock:
            if getattr(h, "counted", False):
                h.counted = False
                self.active -= 1

    def _answer(self, h, path: str, rng: str, fault: str) -> None:
        if fault in ("500", "503"):
            return self._status(h, int(fault))
        if fault == "hang":
            time.sleep(self.hang_s)
            return self._status(h, 503)
        if fault.startswith("redirect_"):
            where = {"redirect_file": "file:///etc/passwd", "redirect_ftp": f"ftp://127.0.0.1{path}",
                     "redirect_http": f"/moved{path}"}[fault]
            h.send_response(302)
            h.send_header("Location", where)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if path.startswith("/moved/"):
            path = path[len("/moved"):]
        if self.search is not None and path.startswith("/api/search/") and fault != "404":
            return self._search(h, path[len("/api/search/"):], h.path.partition("?")[2])
        f = self._resolve(path)
        if f is None or fault == "404":
            return self._status(h, 404)
        body = f.read_bytes()
        if fault in ("endless", "no_length", "huge_length"):
            h.send_response(200)
            if fault == "huge_length":
                h.send_header("Content-Length", str(10 ** 12))
            h.send_header("Connection", "close")
            h.end_headers()
            self._release(h)
            h.wfile.write(body)
            while fault == "endless":
                h.wfile.write(b"\x5a" * 65536)
            h.close_connection = True
            return
        start = 0
        m = re.match(r"bytes=(\d+)-$", rng)
        if m and fault != "ignore_range":
            start = int(m.group(1))
            if start >= len(body):
                return self._status(h, 416)
        payload = body[start:]
        length = len(payload)
        if fault == "corrupt":
            mid = len(payload) // 2
            payload = payload[:mid] + bytes(b ^ 0xFF for b in payload[mid:mid + 64]) + payload[mid + 64:]
        if fault == "long_length":
            length += 100
        if fault == "short_length":
            length = max(0, length - 100)
        h.send_response(206 if start else 200)
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        h.send_header("Content-Length", str(length))
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("Connection", "close")
        h.end_headers()
        if fault == "reset":
            self._send(h, payload[:len(payload) // 2])
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()  # RST instead of FIN
            h.close_connection = True
            return
        if fault == "truncate":
            payload = payload[:len(payload) // 2]
        elif fault == "short_length":
            payload = payload[:length]
        self._send(h, payload)
        h.close_connection = True

    def _send(self, h, payload: bytes) -> None:
        step = max(1, int(self.throttle / 20)) if self.throttle else max(1, len(payload))
        for i in range(0, len(payload), step):
            if self.throttle:
                time.sleep(step / self.throttle)
            if i + step >= len(payload):
                self._release(h)
            h.wfile.write(payload[i:i + step])
            h.wfile.flush()

    def _search(self, h, q: str, query_string: str) -> None:
        args = urllib.parse.parse_qs(query_string)
        known = set().union(*(r.keys() for r in self.search)) if self.search else set()
        clauses = [c.strip().strip("()") for c in urllib.parse.unquote(q).split(" AND ")]
        tests = []
        for c in clauses:
            m = re.match(r'^(\w+):(?:\[(\S+) TO (\S+)\]|"([^"]*)")$', c)
            if not m:
                return self._status(h, 400)
            field, lo, hi, value = m.groups()
            if field not in known:
                return self._status(h, 400)  # Solr: undefined field
            if field not in self.search_ignores:
                tests.append((field, lo, hi, value))
        rows = [r for r in self.search if all(_matches(r.get(f), lo, hi, v) for f, lo, hi, v in tests)]
        rows = rows[:int(args.get("rows", ["10"])[0])]
        fl = [f for f in args.get("fl", ["emdb_id"])[0].split(",") if f in known]
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(fl)
        for r in rows:
            w.writerow([r.get(f, "") for f in fl])
        body = out.getvalue().encode()
        h.send_response(200)
        h.send_header("Content-Type", "text/csv")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Connection", "close")
        h.end_headers()
        self._send(h, body)
        h.close_connection = True

    @staticmethod
    def _status(h, code: int) -> None:
        h.send_response(code)
        h.send_header("Content-Length", "0")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True



def _matches(have, lo, hi, value) -> bool:
    """One Solr clause against a row's value (``None``: the row has no such value)."""
    if have is None or have == "":
        return False
    if value is not None:
        return value.lower() in [v.strip().lower() for v in str(have).split(",")]
    for bound, ok in ((lo, lambda a, b: a >= b), (hi, lambda a, b: a <= b)):
        if bound == "*":
            continue
        try:
            a, b = float(have), float(bound)
        except ValueError:
            a, b = str(have), bound
        if not ok(a, b):
            return False
    return True
