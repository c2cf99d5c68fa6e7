"""Internals of the `purposeguard` command: the demo, the store commands and a
progress bar. The entry point is `purposeguard.cli.main`."""

from __future__ import annotations


class CommandError(Exception):
    """A command cannot run as asked; `code` is its exit status (2: usage, bad input)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


__all__ = ["CommandError"]
