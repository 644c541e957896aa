"""How a connection ended, said the same way by every server.

Design notes
------------
A server logs one line when a connection ends, on the ``framekit`` logger,
at a level that says whose fault it was: a clean end at DEBUG; a connection
the client reset or broke at INFO (networks do that: a flood of resets must
not flood the log with warnings); a client's bad input, a timeout or a
refusal at WARNING, in one line without a traceback (the client misbehaved,
not the server); any other exception from the handler at ERROR, with its
traceback (a bug to fix).  The
blocking, asyncio and anyio servers all take the line from :func:`ending`.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Optional, Tuple

from ..errors import BudgetExceeded, ConnectionClosed, FramingError

__all__ = ["ending"]


def ending(
    name: str, exc: Optional[BaseException], *, closing: bool = False
) -> Tuple[int, str, Optional[BaseException]]:
    """The log line for a connection that ended.

    Args:
        name: who it was (``"connection from tcp://1.2.3.4:5678"``).
        exc: what ended its handler, or None if the handler returned.
        closing: the server is shutting down (errors it caused are expected).

    Returns:
        ``(level, message, exc_info)``: ``exc_info`` is the exception whose
        traceback to log, or None.
    """
    if exc is None:
        return logging.DEBUG, f"{name}: handler done", None
    if isinstance(exc, ConnectionClosed) or (closing and isinstance(exc, OSError)):
        return logging.DEBUG, f"{name} closed: {exc}", None
    if isinstance(exc, FramingError):
        return logging.WARNING, f"closing {name}: bad input: {type(exc).__name__}: {exc}", None
    if isinstance(exc, BudgetExceeded):
        return logging.WARNING, f"closing {name}: {exc}", None
    if isinstance(exc, ssl.SSLError):
        return logging.WARNING, f"TLS error with {name}: {exc}", None
    if isinstance(exc, ConnectionError):
        return logging.INFO, f"{name} lost: {type(exc).__name__}: {exc}", None
    if isinstance(exc, (TimeoutError, socket.timeout)):  # Python 3.9: not the same class
        return logging.WARNING, f"closing {name}: timed out: {exc}", None
    return logging.ERROR, f"handler failed on {name}; closing it", exc
