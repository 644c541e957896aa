"""Log records of the ``framekit`` logger as the command's one-line messages.

Design notes
------------
While a subcommand runs, records of the ``framekit`` logger go to stderr as
``framekit CMD: [warning: |error: ]MESSAGE`` (INFO and up; DEBUG, and the
tracebacks of records that carry one, with ``--debug``).  Like
:mod:`framekit.apps.errors`, this module imports nothing from the
applications, so both :mod:`framekit.apps.cli` and the subcommands (a
``serve`` worker process sets its own logging up) can use it.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["setup_logging"]


class _Formatter(logging.Formatter):
    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.ERROR:
            level = "error: "
        elif record.levelno >= logging.WARNING:
            level = "warning: "
        else:
            level = ""
        line = f"framekit {self.command}: {level}{record.getMessage()}"
        if record.exc_info and logging.getLogger("framekit").isEnabledFor(logging.DEBUG):
            line += "\n" + self.formatException(record.exc_info)
        return line


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record arrives (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(command: str, debug: bool = False) -> logging.Handler:
    """Send the ``framekit`` logger's records to stderr as one-line messages.

    Returns:
        The handler; pass it to ``logging.getLogger("framekit").removeHandler``
        when done.
    """
    handler = _StderrHandler()
    handler.setFormatter(_Formatter(command))
    logger = logging.getLogger("framekit")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    return handler
