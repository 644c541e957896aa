"""What the pure-Python line, delimiter, netstring and fixed-length decoders share.

Design notes
------------
:class:`Splitter` is the base of :class:`~framekit.codecs.lines.LinesDecoder`,
:class:`~framekit.codecs.delimited.DelimitedDecoder`,
:class:`~framekit.codecs.netstring.NetstringDecoder` and
:class:`~framekit.codecs.fixed_length.FixedLengthDecoder`.  It owns the bytes,
the public calls (``feed``, ``get_buffer``, ``buffer_updated``, ``detach``)
and the bookkeeping that codec switching needs; a subclass writes only
``_decode``, which cuts frames out of a region of bytes.  ``_speedups_text.pyx``
is its Cython twin, name for name.

The held bytes.  Bytes received and not yet consumed (the start of an
unfinished frame, or the rest of a read after an error or after ``max_frames``
frames: the *backlog*) live in one ``bytearray``, ``_buf[_start:_end]``.  When
nothing is held and ``feed`` gets ``bytes``, frames are cut straight out of
them and only their unconsumed tail is copied in.  A backlog is decoded apart
first, so that the new bytes are copied only if a frame runs on into them.
Otherwise the input is appended to the held bytes (``get_buffer`` puts it
there already) and they are decoded together: one copy per byte, as
``(carry + chunk).split()`` makes.

Switching (``max_frames``, ``detach``).  A decode call records where each of
its frames ends in the stream it decoded (``_ends``, offsets from where the
call began), and the bytes of that stream are kept until the next decode call:
the caller's ``bytes`` object by reference, or the region of ``_buf`` the call
decoded, which is never overwritten before the next call (``_reserve`` copies
the held bytes to the spare buffer instead): ``_src[_src_base:_src_end]``,
then ``_more`` (a ``feed``'s bytes, when a backlog was decoded before them).
So ``detach(unused)`` can hand back, exactly as received, everything after the
frame the caller stopped at, even bytes the call skipped or rejected.  Bytes
dropped by an *earlier* call (the skipped part of an oversized frame) are gone:
``_lost`` says so, and ``detach`` refuses to go back past them.

Memory.  ``_reserve`` moves the held bytes to the front, or to the spare
buffer, only when the move costs no more than the bytes that were consumed
(or the room it frees), and a new buffer is at least twice what it must hold:
each byte is copied O(1) times however a long frame is cut into reads.  At
most two buffers exist; a spare larger than ``_SPARE_MAX`` is let go.
"""

from __future__ import annotations

import operator
from typing import List, Optional, Tuple, Union

from ..errors import FramingError
from . import _limits
from ._limits import DEFAULT_READ_SIZE
from .interface import Buffer

__all__ = ["Splitter"]

#: A spare buffer larger than this (left by a long frame) is let go.
_SPARE_MAX = 4 * DEFAULT_READ_SIZE

Source = Union[bytes, bytearray]


def _rounded(size: int) -> int:
    return (size + 4095) & ~4095


class Splitter:
    """Base of the pure-Python line, delimiter, netstring and fixed-length decoders."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._spare: Optional[bytearray] = None
        self._start = 0
        self._end = 0
        self._hidden = 0  # held bytes at _start that are no frame's (a delimiter's start)
        self._offered = 0
        self._broken: Optional[str] = None
        self._detached = False
        # The most recent decode call, for detach().
        self._src: Source = b""  # the stream it decoded: _src[_src_base:_src_end] + _more
        self._src_base = 0
        self._src_end = 0
        self._more = b""
        self._base = 0  # subtracted from an offset in the bytes being decoded: the stream's
        self._backlog = False  # held bytes were left by an error or by max_frames
        self._ends: List[int] = []
        self._first = 0
        self._nframes = 0
        self._last_drop = -1
        self._lost = False
        self._dropped = False
        self._was_broken = False

    # -- what a subclass writes ----------------------------------------------------

    def _decode(
        self, src: Source, pos: int, end: int, frames: List[bytes], limit: int
    ) -> Tuple[int, Optional[FramingError]]:
        """Decode ``src[pos:end]`` into ``frames``, at most ``limit`` of them (-1: any).

        Returns where it stopped (the bytes from there on stay held) and the
        error to raise, if any.  Every frame's end, minus ``_base``, goes to
        ``_ends``, and the first one's start to ``_first``; a region of bytes
        dropped sets ``_last_drop`` to its end, minus ``_base``.
        """
        raise NotImplementedError

    @property
    def pending(self) -> int:
        """Bytes held that belong to no complete frame yet."""
        if self._detached:
            return 0
        return self._end - self._start - self._hidden

    # -- buffer management ----------------------------------------------------------

    def _reserve(self, room: int) -> None:
        """Make at least ``room`` bytes free after ``_end``, keeping the held bytes
        and, untouched, the bytes the most recent call decoded."""
        buf = self._buf
        if len(buf) - self._end >= room:
            return
        held = self._end - self._start
        if self._src is not buf and self._start >= held and len(buf) - held >= room:
            buf[:held] = buf[self._start : self._end]  # in place: moves no more than was consumed
        else:
            target = self._spare
            if target is None or target is self._src or len(target) - held < max(room, held):
                target = bytearray(_rounded(held + max(room, held)))
            target[:held] = buf[self._start : self._end]
            self._spare = buf if len(buf) <= _SPARE_MAX else None
            self._buf = target
        self._start = 0
        self._end = held

    def _append(self, data: Buffer) -> None:
        n = len(data)
        if n:
            self._reserve(n)
            self._buf[self._end : self._end + n] = data
            self._end += n

    # -- a decode call --------------------------------------------------------------

    def _begin(self, max_frames: int) -> int:
        """Start a decode call: check the decoder can take it; reset the call's records."""
        if self._detached:
            raise _limits.detached_error()
        limit = _limits.check_max_frames(operator.index(max_frames))
        self._offered = 0
        self._was_broken = self._broken is not None
        self._lost = self._dropped
        self._nframes = 0
        self._ends = []
        self._first = 0
        self._last_drop = -1
        if self._broken is not None:
            self._retain(b"", 0, 0, b"")
            raise _limits.broken_error(self._broken)
        return limit

    def _retain(self, src: Source, start: int, end: int, more: bytes) -> None:
        """Record the stream this call decodes: ``src[start:end]``, then ``more``."""
        self._src = src
        self._src_base = self._base = start
        self._src_end = end
        self._more = more

    def _run_held(self, frames: List[bytes], limit: int, end: int) -> Optional[FramingError]:
        """Decode the held bytes up to ``end`` into ``frames``; keep what is left of them."""
        err = None
        if limit:
            self._start, err = self._decode(self._buf, self._start, end, frames, limit)
        return err

    def _run_bytes(self, data: bytes, frames: List[bytes], limit: int) -> Optional[FramingError]:
        """Decode straight out of ``data`` (nothing is held); keep its unconsumed tail."""
        pos, err = self._decode(data, 0, len(data), frames, limit)
        if pos < len(data):
            self._append(memoryview(data)[pos:])
        return err

    def _append_held(self, data: Buffer) -> None:
        """Append to the held bytes in the middle of a call (they may move)."""
        start = self._start
        self._append(data)
        self._base += self._start - start

    def _finish(self, frames: List[bytes], err: Optional[FramingError], limit: int) -> List[bytes]:
        self._nframes = len(frames)
        if self._broken is not None:
            self._start = self._end  # a broken decoder holds nothing
        if frames:
            self._dropped = self._last_drop > self._ends[-1]
        else:
            self._dropped = self._lost or self._last_drop >= 0
        # Held bytes left by an error or by max_frames may hold whole frames:
        # the next feed() decodes them apart before its own bytes.
        self._backlog = self._end > self._start and (err is not None or len(frames) == limit)
        if err is not None:
            err.frames = frames
            raise err
        return frames

    # -- public API -----------------------------------------------------------------

    def feed(self, data: Buffer, max_frames: int = -1) -> List[bytes]:
        """Add received bytes; return the frames they complete, in order.

        Args:
            data: the bytes received (copied from, never kept, unless ``bytes``).
            max_frames: decode at most this many frames and hold every byte
                after the last one, undecoded; ``0`` only takes the bytes;
                ``-1`` (the default): no limit.

        Raises:
            FramingError: a subclass, with ``.frames``, the frames decoded
                before the bad bytes (see the decoder's own ``feed``).
            ValueError: ``max_frames`` is below -1, or the decoder was detached.
        """
        if type(data) is not bytes:
            data = memoryview(data).cast("B")  # a bad argument fails before the call begins
        limit = self._begin(max_frames)
        frames: List[bytes] = []
        if type(data) is not bytes or not limit:
            self._append(data)
            self._retain(self._buf, self._start, self._end, b"")
            return self._finish(frames, self._run_held(frames, limit, self._end), limit)
        if self._end == self._start:
            self._retain(data, 0, len(data), b"")
            return self._finish(frames, self._run_bytes(data, frames, limit), limit)
        self._retain(self._buf, self._start, self._end, data)
        if self._backlog:
            # What an error or max_frames left is decoded apart, so that `data`
            # is copied only if a frame runs on into it.
            err = self._run_held(frames, limit, self._end)
            if err is None and self._start == self._end and len(frames) != limit:
                self._base = self._src_base - self._src_end  # `data` follows them
                return self._finish(frames, self._run_bytes(data, frames, limit), limit)
            if err is not None or len(frames) == limit:
                self._append(data)
                return self._finish(frames, err, limit)
        self._append_held(data)
        return self._finish(frames, self._run_held(frames, limit, self._end), limit)

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Return writable space to receive into (``recv_into``, ``BufferedProtocol``).

        Args:
            sizehint: the least size wanted; ``<= 0`` means 64 KiB.

        Returns:
            A view of at least ``sizehint`` bytes, good for one
            :meth:`buffer_updated` call.
        """
        if self._detached:
            raise _limits.detached_error()
        if self._broken is not None:
            raise _limits.broken_error(self._broken)
        room = sizehint if sizehint > 0 else DEFAULT_READ_SIZE
        self._reserve(room)
        self._offered = len(self._buf) - self._end
        return memoryview(self._buf)[self._end :]

    def buffer_updated(self, nbytes: int, max_frames: int = -1) -> List[bytes]:
        """Decode the ``nbytes`` just written into the last :meth:`get_buffer` view.

        Returns the frames completed and raises like :meth:`feed` (``max_frames``
        too); ``ValueError`` when ``nbytes`` is more than that view offered.
        """
        if self._detached:
            raise _limits.detached_error()
        nbytes = operator.index(nbytes)
        if self._broken is None and not 0 <= nbytes <= self._offered:
            raise _limits.offered_error(nbytes, self._offered)
        limit = self._begin(max_frames)
        frames: List[bytes] = []
        if self._backlog and limit:
            # As in feed(): what an error or max_frames left is decoded apart first.
            self._retain(self._buf, self._start, self._end + nbytes, b"")
            err = self._run_held(frames, limit, self._end)
            self._end += nbytes
            if err is not None or len(frames) == limit:
                return self._finish(frames, err, limit)
        else:
            self._end += nbytes
            self._retain(self._buf, self._start, self._end, b"")
        return self._finish(frames, self._run_held(frames, limit, self._end), limit)

    def detach(self, unused: int = 0) -> bytes:
        """Stop for good; return the rest of the stream, as it was received.

        That is the wire bytes of the last ``unused`` frames the most recent
        decode call returned (or carried in its error's ``.frames``), then
        every byte received after them.  Afterwards every call but
        ``pending`` raises ``ValueError``.

        Raises:
            ValueError: ``unused`` is negative or more than that call's frames;
                or the decoder cannot go back that far (``unused=0`` after a
                call that returned no frame, while the bytes before it were
                dropped: an oversized frame was being skipped, or the decoder
                was already broken).
        """
        if self._detached:
            raise _limits.detached_error()
        unused = operator.index(unused)
        n = self._nframes
        if not 0 <= unused <= n:
            raise _limits.detach_unused_error(unused, n)
        k = n - unused
        if k:
            point = self._ends[k - 1]
        elif n:
            point = self._first
        elif self._was_broken or self._lost:
            raise _limits.detach_dropped_error(self._was_broken)
        else:
            point = 0
        size = self._src_end - self._src_base
        if point < size:
            rest = bytes(self._src[self._src_base + point : self._src_end]) + self._more
        else:
            rest = self._more[point - size :]
        self._detached = True
        self._buf = bytearray()
        self._spare = None
        self._src = self._more = b""
        self._start = self._end = self._hidden = 0
        return rest
