"""Small helpers with no better home.

Design notes
------------
:class:`Closing` is the ``with`` statement for anything with ``close()``: the
blocking sockets and the CLI's progress bar.  It declares empty ``__slots__``,
so classes with slots keep them.

:func:`fresh` is how a stored error is raised again and again (every send
after a connection was lost): as a copy, so the traceback each raise attaches
(frames that hold the connection) never hangs off the stored instance, which
the connection holds: no reference cycle, nothing left for the cyclic GC.
"""

from __future__ import annotations

import copy
from types import TracebackType
from typing import Optional, Type, TypeVar

__all__ = ["Closing", "fresh"]

_T = TypeVar("_T", bound="Closing")


class Closing:
    """``with obj:`` gives ``obj`` and calls ``obj.close()`` on the way out."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


_E = TypeVar("_E", bound=BaseException)


def fresh(exc: _E) -> _E:
    """A copy of ``exc`` to raise: same type, arguments, attributes and cause,
    no traceback (see the module notes)."""
    try:
        new = copy.copy(exc)
    except Exception:  # an exception class copy cannot rebuild: raise it as it is
        return exc.with_traceback(None)
    new.__traceback__ = None
    new.__cause__ = exc.__cause__
    new.__suppress_context__ = exc.__suppress_context__
    return new
