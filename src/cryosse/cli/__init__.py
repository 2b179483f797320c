"""The ``cryosse`` command line: one module per stage, each with ``register(subparsers)``.

Each subcommand parses its arguments, calls one library function and reports. Errors the
user can fix are printed as one line, ``cryosse: error: <file>: <problem>``, with exit
status 2; outputs are written atomically, so a failed command leaves nothing half-written.
"""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import CryosseError
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
