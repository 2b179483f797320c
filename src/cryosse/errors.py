"""User-facing errors: one line that names the file and the problem."""
from __future__ import annotations

import os

__all__ = ["CryosseError", "InputError"]


class CryosseError(Exception):
    """An error the user can act on; the CLI prints it as one line and exits with status 2."""


class InputError(CryosseError):
    """A bad input file or value.  ``str(err)`` is ``"<path>: <problem>"``."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(f"{self.path}: {self.problem}")
