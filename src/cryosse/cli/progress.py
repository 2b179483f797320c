"""A progress report for long commands (``cryosse predict``): on a terminal one bar redrawn in
place (done / total, percent, elapsed, ETA), otherwise (a log file, Snakemake) one line per
10 %; nothing with ``--quiet``."""
from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


def _clock(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """``progress(done, total)`` callable for :func:`cryosse.inference.predict_to_dir`."""

    def __init__(self, what: str = "tiles", *, quiet: bool = False, stream=None, tty: bool | None = None,
                 clock=time.monotonic):
        self.what, self.quiet = what, quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.t0 = None
        self.decile = -1
        self.last_draw = -1.0

    def line(self, done: int, total: int) -> str:
        el = self.clock() - self.t0
        eta = el / done * (total - done) if done else float("nan")
        pct = 100.0 * done / max(total, 1)
        bar = "#" * int(24 * done / max(total, 1))
        left = _clock(eta) if done else "?"
        return f"[{bar:<24}] {self.what} {done}/{total} {pct:3.0f}%  {_clock(el)} elapsed, ETA {left}"

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        now = self.clock()
        if self.t0 is None:
            self.t0 = now
        if self.tty:
            if done < total and now - self.last_draw < 0.2:
                return
            self.last_draw = now
            end = "\n" if done >= total else ""
            print(f"\r{self.line(done, total)}", end=end, file=self.stream, flush=True)
            return
        decile = int(10 * done / max(total, 1))
        if decile > self.decile:
            self.decile = decile
            print(self.line(done, total), file=self.stream, flush=True)
