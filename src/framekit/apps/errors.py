"""How the ``framekit`` command reports a failure: one line, no traceback.

Design notes
------------
This module sits below :mod:`framekit.apps.cli` and every subcommand: the
subcommands raise :class:`CommandError` and call :func:`describe_error`, and
the command's ``main`` prints the line.  It imports nothing from the
applications, so no subcommand has to import ``cli`` (which imports them):
the import graph of :mod:`framekit.apps` has no cycle.
"""

from __future__ import annotations

import socket
import ssl

__all__ = ["CommandError", "describe_error"]


class CommandError(Exception):
    """A failure whose message is already the one line the user should read."""


def describe_error(exc: BaseException) -> str:
    """Return one line saying what went wrong, without Python's noise."""
    if isinstance(exc, CommandError):
        text = str(exc)
    elif isinstance(exc, ssl.SSLCertVerificationError):
        text = f"TLS certificate verification failed: {getattr(exc, 'verify_message', exc)}"
    elif isinstance(exc, ssl.SSLError):
        text = f"TLS error: {getattr(exc, 'reason', None) or exc}"
    elif isinstance(exc, socket.timeout) and not exc.strerror:
        text = str(exc) or "timed out"
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
        if exc.filename is not None:
            text = f"{exc.filename}: {text}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())
