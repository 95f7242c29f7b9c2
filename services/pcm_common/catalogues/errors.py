"""The one error type of the catalogue loader."""

from __future__ import annotations

import os
from pathlib import Path


def display_path(path: Path) -> str:
    """Path as the operator typed it: relative to the working directory when under it.

    An operator fixing a catalogue wants a path they can open from where they ran the check,
    so relative when possible, absolute otherwise (never ``..`` chains).
    """
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return os.fspath(path)


class CatalogueError(Exception):
    """A catalogue file is wrong; ``str()`` is one line: ``<file>:<line>: field '<f>': <why>``.

    The parts stay available as attributes so callers (and tests) need not parse the text.
    """

    def __init__(self, path: Path, line: int | None, field: str | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        # One line, whatever the underlying library said (YAML errors span several lines).
        self.reason = " ".join(reason.split())
        super().__init__(self._render())

    def _render(self) -> str:
        where = display_path(self.path)
        if self.line is not None:
            where = f"{where}:{self.line}"
        if self.field is None:
            return f"{where}: {self.reason}"
        return f"{where}: field '{self.field}': {self.reason}"
