"""The two kinds of failure the CLI reports: each is printed as one line on stderr, never a traceback."""

from __future__ import annotations

EXIT_ERROR, EXIT_USAGE = 1, 2


class CliError(Exception):
    """A failure the user can act on (not found, refused, unreachable); `error: <message>`, exit 1."""


class UsageError(Exception):
    """A bad flag, flag combination or value; `<prog>: error: <message>`, exit 2."""
