"""Small helpers with no better home.

Design notes
------------
:class:`Closing` is the ``with`` statement for anything with ``close()``: the
blocking sockets and the CLI's progress bar.  It declares empty ``__slots__``,
so classes with slots keep them.
"""

from __future__ import annotations

from types import TracebackType
from typing import Optional, Type, TypeVar

__all__ = ["Closing"]

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
