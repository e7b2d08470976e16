"""Errors raised on bad input: each names the file, the field and what was expected."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input data or configuration.

    The message always has the form ``<file>: <field>: <problem> (expected <what>)`` so a user
    can go straight to the offending place.
    """

    def __init__(self, path: str | Path | None, field: str, problem: str, expected: str | None = None):
        self.path = str(path) if path is not None else None
        self.field = field
        self.problem = problem
        self.expected = expected
        where = f"{self.path}: " if self.path else ""
        tail = f" (expected {expected})" if expected else ""
        super().__init__(f"{where}{field}: {problem}{tail}")


class MismatchError(InputError):
    """Data that differs from its record (a checksum that does not match its manifest).

    The command line exits with status 1 on this error, 2 on any other bad input."""
