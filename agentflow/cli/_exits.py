"""How a command ends: an exit code a script can act on, and at most one line on stderr.

The codes (also in ``agentflow --help`` and the README's "Command line"):

    0    success
    1    the operation failed: ``wait`` saw the instance end errored or terminated,
         ``doctor`` found a sandbox layer missing, ``demo`` did not complete
    2    bad usage or input: an argument, a JSON payload, an instance not in a state the
         command applies to, a file that is not an agentflow database
    3    not found: no instance with that id, no agentflow database at that path
    4    ``wait`` timed out
    5    ``wait --until-waiting`` returned because the instance waits or is paused
    6    the database is unavailable: locked by another process, unreadable, or its
         server cannot be reached (nothing was changed; try again)
    130  interrupted (Ctrl-C)
    141  the reader closed the pipe (``agentflow show ID | head -2``), as SIGPIPE

6 is apart from 1 so that a script running ``wait`` can tell a failed workflow from a
database it could not ask.
"""

from __future__ import annotations

import sqlite3
import sys

from agentflow.cli._text import printable
from agentflow.errors import AgentflowError, NotFoundError, UsageError

__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_DATABASE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FINISHED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_SIGPIPE",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "DatabaseUnavailableError",
    "failure",
    "is_database_error",
    "is_locked",
    "one_line",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_TIMEOUT = 4
EXIT_NOT_FINISHED = 5
EXIT_DATABASE = 6
EXIT_INTERRUPTED = 130
EXIT_SIGPIPE = 141

EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    the operation failed (wait: the instance errored or was terminated;
       doctor: a sandbox layer is missing; demo: it did not complete)
  2    bad usage or input (also: the instance is not in a state the command
       applies to, or the file is not an agentflow database)
  3    not found (no such instance, no agentflow database at that path)
  4    wait: timed out
  5    wait --until-waiting: the instance waits or is paused
  6    the database is unavailable (locked by another process, unreadable, or
       its server unreachable); nothing was changed
  130  interrupted (Ctrl-C)
  141  the reader closed the pipe early (e.g. `| head`), as SIGPIPE does"""


class DatabaseUnavailableError(Exception):
    """The database could not be used (exit 6); the message says why and what to do."""


def is_locked(exc: BaseException) -> bool:
    """Whether SQLite said another connection holds the lock it needs."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def is_database_error(exc: BaseException) -> bool:
    """An error of the database driver (sqlite3, or psycopg if it is loaded): the
    database, not the command, failed."""
    if isinstance(exc, sqlite3.DatabaseError):
        return True
    psycopg = sys.modules.get("psycopg")  # never imported here: `agentflow` must not need it
    return psycopg is not None and isinstance(exc, psycopg.Error)


def one_line(text: str) -> str:
    """``text`` on one line: drivers' multi-line messages joined with "; "."""
    return printable("; ".join(line.strip() for line in text.splitlines() if line.strip()))


def failure(exc: BaseException) -> tuple[int, str]:
    """The exit code of a command that raised ``exc``, and the line to print."""
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND, one_line(str(exc))
    if isinstance(exc, UsageError):
        return EXIT_USAGE, one_line(str(exc))
    if isinstance(exc, DatabaseUnavailableError):
        return EXIT_DATABASE, one_line(str(exc))
    if is_locked(exc):
        return EXIT_DATABASE, one_line(f"database is locked: another process held its write "
                                       f"lock too long ({exc}); try again when it is done")
    if is_database_error(exc):
        return EXIT_DATABASE, one_line(f"the database cannot be used: {exc}")
    if isinstance(exc, AgentflowError | OSError):
        return EXIT_FAILED, one_line(str(exc))
    return EXIT_FAILED, one_line(f"{type(exc).__name__}: {exc}")
