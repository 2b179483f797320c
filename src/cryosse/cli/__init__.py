"""The ``cryosse`` command line: one module per stage, each with ``register(subparsers)``.

Each subcommand parses its arguments, calls one library function and reports. Errors the
user can fix are printed as one line, ``cryosse: error: <file>: <problem>``, with exit
status 2; outputs are written atomically, so a failed command leaves nothing half-written.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys

from .. import __version__
from ..errors import CryosseError
from ..io.files import one_line
from . import dataset, evaluate, fetch, interop, predict, prep, train

__all__ = ["main", "build_parser"]

STAGES = (fetch, prep, dataset, interop, train, predict, evaluate)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cryosse", description="Secondary-structure segmentation data "
                                "and models for medium-resolution cryo-EM maps.")
    p.add_argument("--version", action="version", version=f"cryosse {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in STAGES:
        stage.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args._required_output and not getattr(args, "output", None):
        print(f"cryosse {args.command}: error: the following arguments are required: -o/--output",
              file=sys.stderr)
        return 2
    try:
        args.func(args)
    except CryosseError as exc:
        print(f"cryosse: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cryosse: interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:  # noqa: BLE001 - the environment failed: one line, never a traceback
        if isinstance(exc, SystemExit):
            raise
        if os.environ.get("CRYOSSE_DEBUG"):
            raise
        line, code = environment_error(exc, getattr(args, "output", None))
        print(f"cryosse {args.command}: error: {line}", file=sys.stderr)
        return code
    return 0


def environment_error(exc: BaseException, output=None) -> tuple[str, int]:
    """One line and an exit status for a failure of the environment (disk, permissions, memory,
    device) or a bug: the file it concerns (or the command's output), the problem, and what to
    do. Status 2 for what the user can fix, 1 for a bug (its type and message, and how to see
    the traceback: CRYOSSE_DEBUG=1)."""
    text = one_line(exc)
    if isinstance(exc, OSError):
        where = exc.filename or output or "output"
        if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
            return f"{where}: no space left on the device (disk full or quota); free space and rerun", 2
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"{where}: permission denied", 2
        if exc.errno == errno.EROFS:
            return f"{where}: read-only file system", 2
        if exc.errno == errno.ENOENT:
            return f"{where}: no such file or folder", 2
        return f"{where}: {exc.strerror or text}", 2
    low = text.lower()
    if isinstance(exc, MemoryError) or "out of memory" in low or "bad_alloc" in low or "unable to allocate" in low:
        detail = f" ({text[:160]})" if text not in ("MemoryError", "std::bad_alloc") else ""
        return (f"out of memory{detail}; give the job more memory, or lower --max-memory-gb so the plan refuses "
                "it before work", 2)
    if isinstance(exc, RuntimeError) and ("cuda" in low or "device" in low):
        return f"--device: {text[:200]}", 2
    return f"internal error ({type(exc).__name__}: {text[:200]}); this is a bug, rerun with CRYOSSE_DEBUG=1 " \
           "for the traceback", 1


if __name__ == "__main__":
    sys.exit(main())
