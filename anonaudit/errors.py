"""User-facing errors.

Every problem a user can fix (bad file, bad parameter, unknown subject …) is raised as an
:class:`AnonauditError` whose message says *what* is wrong and *where* (file, column, row,
parameter). The CLI and the app print that one line instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class AnonauditError(Exception):
    """Base class for errors whose message is meant for the user."""


class DataError(AnonauditError):
    """A data file or dataset is malformed; the message names file, column and row when known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.column = column
        self.row = row
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class ParameterError(AnonauditError):
    """A parameter has an invalid value; the message names the parameter."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"parameter {name!r}: {message}")


class NotFoundError(AnonauditError):
    """A dataset, job or artifact named by the user does not exist."""


class JobCancelled(AnonauditError):
    """Raised inside a running job when its cancellation was requested."""
