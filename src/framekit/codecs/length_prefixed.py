"""The reference length-prefixed codec, in pure Python.

This module is the specification.  ``_speedups.pyx`` is its Cython twin: same
class names, same signatures, same errors and messages (both build their errors
with :mod:`framekit.codecs._limits`), same results on every input split at any point.
The test suite runs every codec test on both and a hypothesis test checks that
they agree.

Semantics (Netty's ``LengthFieldBasedFrameDecoder``/``LengthFieldPrepender``)
-----------------------------------------------------------------------------
A frame on the wire is::

    [length_offset bytes][length field][rest of frame]

``frame_length = field + length_adjustment + length_offset + len(length field)``
is the size of the whole frame, header included.  The decoder emits
``frame[strip:frame_length]``; ``strip=None`` strips the whole header (for a
varint the header size varies from frame to frame).

* The field is unsigned for widths 1 to 4, signed for 8 (a negative 8-byte
  field is corrupt), and an unsigned LEB128 varint for ``"varint"``.
* ``frame_length > max_frame_size``: exactly ``frame_length`` bytes are
  discarded, even across later calls, and ``FrameTooLarge`` is raised once:
  at once with ``fail_fast`` (or when the whole frame is already buffered),
  otherwise after its last byte went by.  Decoding then resumes.
* A negative field, an adjusted length shorter than the header, or a varint
  longer than ``varint_max_bytes`` raises ``CorruptedFrame`` and *breaks* the
  decoder: there is no trustworthy next frame boundary, so every later call
  raises ``CorruptedFrame`` again rather than resynchronising silently.
* ``strip`` beyond ``frame_length`` raises ``CorruptedFrame`` for that frame
  only; its bytes are discarded like an oversized frame's and decoding resumes.
  (Netty checks this once the frame is buffered; we check when the header is
  read, so the frame is never buffered.)

Buffering and the denial-of-service bound
-----------------------------------------
The decoder owns one ``bytearray`` with a read offset (``_start``) and a write
offset (``_end``).  It only ever holds the bytes of *one* unfinished frame: a
frame's length is compared with ``max_frame_size`` as soon as its header is
read, and the bytes of an oversized frame are counted off and dropped, never
stored.  Room for an unfinished frame grows with the bytes that have arrived
(at most doubling), not with the length its header announces: beyond one
read's room (64 KiB by default) a peer makes us allocate at most twice what it
has sent of a frame, or ``DIRECT_RATIO`` (8) times for one assembled in place.

``feed(data)`` decodes straight out of ``data`` when nothing is buffered, and
copies into the buffer only what it needs to finish a frame that started in an
earlier call, then goes back to decoding out of ``data``.  Each byte is copied
into the buffer at most once, and complete frames are sliced out with one copy.

``get_buffer()`` hands out the free space after ``_end`` for ``recv_into`` or
``asyncio.BufferedProtocol``.  Unread bytes are moved to the front only when
that frees enough room; otherwise the buffer is replaced by one twice as large.
The buffer is never resized in place, because the caller may still hold a
memoryview of it (asyncio does, during ``buffer_updated``).

Large frames are assembled in place
-----------------------------------
A frame whose payload is at least ``_limits.DIRECT_MIN`` (32 KiB) gets its own
object as soon as its header is read and at least 1/``DIRECT_RATIO`` (1/8) of
it has arrived (which keeps the bound above, within a factor of 8).
The payload bytes already received are copied into it, and from then on
``feed`` copies into it and ``get_buffer`` returns exactly its unfilled tail,
so the socket writes the rest of the frame where it will stay.  Through
``get_buffer`` this happens only if at least ``DIRECT_MIN`` bytes of the frame
are still to come: a read that ends a few bytes short of a large frame leaves
it in the buffer, for the next read to finish along with what follows,
instead of costing a tiny read of its own.  Each ``get_buffer`` view serves
one ``buffer_updated`` call; after it the view is spent.  Between
frames, ``get_buffer`` offers room for another frame as large as the last one
(up to ``ROOM_CAP``), so a steady stream of large frames takes one read and
one copy per frame: fewer reads beat fewer copies (measured: a header-sized
read to land every payload in place was slower, over loopback TCP, than one
read plus one cache-warm copy).  Here the object is a
``bytearray`` turned into ``bytes`` at the end (a copy); the Cython twin
allocates the final ``bytes`` object and hands it over as is: one copy per
byte from the kernel to the frame the caller receives.
"""

from __future__ import annotations

import operator
import struct
from typing import Any, Iterable, List, Tuple, Union

from ..errors import FramingError
from . import _limits
from ._limits import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_READ_SIZE,
    VARINT_MAX_VALUE,
)

__all__ = ["LengthPrefixed", "LengthPrefixedDecoder"]

Buffer = Union[bytes, bytearray, memoryview]

_STRUCT_CODES = {1: "B", 2: "H", 4: "I", 8: "q"}


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _nbytes(payload: Buffer) -> int:
    return len(payload) if type(payload) is bytes else memoryview(payload).nbytes


class LengthPrefixed:
    """Length-prefixed framing with Netty's semantics (see the module notes).

    Args:
        length_size: width of the length field: 1, 2, 3, 4, 8 or ``"varint"``.
        byteorder: ``"big"`` or ``"little"``; ignored for varints.
        length_offset: bytes before the length field (a type byte, a magic...).
        length_adjustment: added to the field to get the bytes after the
            header (Netty's ``lengthAdjustment``).
        strip: bytes dropped from the front of each decoded frame (Netty's
            ``initialBytesToStrip``); ``None`` drops the whole header.
        max_frame_size: the largest adjusted frame, header included, that the
            decoder accepts (Netty's ``maxFrameLength``).
        fail_fast: raise ``FrameTooLarge`` as soon as the header is read
            rather than after the oversized frame was discarded.
        varint_max_bytes: longest varint length field accepted (1 to 10).

    Raises:
        ValueError, TypeError: on an invalid argument.
    """

    __slots__ = ("_cfg", "_pack")

    def __init__(
        self,
        length_size: Union[int, str] = 4,
        *,
        byteorder: str = "big",
        length_offset: int = 0,
        length_adjustment: int = 0,
        strip: int | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        fail_fast: bool = True,
        varint_max_bytes: int = 10,
    ) -> None:
        self._cfg = _limits.check_length_prefixed(
            length_size,
            byteorder,
            length_offset,
            length_adjustment,
            strip,
            max_frame_size,
            fail_fast,
            varint_max_bytes,
        )
        code = _STRUCT_CODES.get(self._cfg.length_size)
        order = ">" if byteorder == "big" else "<"
        self._pack = struct.Struct(order + code).pack if code else None

    # -- configuration --------------------------------------------------------

    @property
    def length_size(self) -> Union[int, str]:
        return self._cfg.length_size or _limits.VARINT

    @property
    def byteorder(self) -> str:
        return self._cfg.byteorder

    @property
    def length_offset(self) -> int:
        return self._cfg.length_offset

    @property
    def length_adjustment(self) -> int:
        return self._cfg.length_adjustment

    @property
    def strip(self) -> int | None:
        return None if self._cfg.strip < 0 else self._cfg.strip

    @property
    def max_frame_size(self) -> int:
        return self._cfg.max_frame_size

    @property
    def fail_fast(self) -> bool:
        return self._cfg.fail_fast

    @property
    def varint_max_bytes(self) -> int:
        return self._cfg.varint_max_bytes

    def __repr__(self) -> str:
        c = self._cfg
        return (
            f"LengthPrefixed({self.length_size!r}, byteorder={c.byteorder!r}, "
            f"length_offset={c.length_offset}, length_adjustment={c.length_adjustment}, "
            f"strip={self.strip!r}, max_frame_size={c.max_frame_size}, "
            f"fail_fast={c.fail_fast}, varint_max_bytes={c.varint_max_bytes})"
        )

    # -- encoding -------------------------------------------------------------

    def header(self, payload_size: int, *, prefix: Buffer = b"") -> bytes:
        """Return the header (``prefix`` + length field) for a payload of that size.

        Send ``[header, payload]`` with one vectored call to avoid copying the
        payload.

        Raises:
            ValueError: ``prefix`` is not ``length_offset`` bytes long, or the
                field value (``payload_size - length_adjustment``) is negative
                or does not fit the field.
        """
        c = self._cfg
        if _nbytes(prefix) != c.length_offset:
            raise _limits.prefix_error(_nbytes(prefix), c.length_offset)
        value = operator.index(payload_size) - c.length_adjustment
        size = c.length_size
        if size == 0:
            field = _varint(value) if 0 <= value <= VARINT_MAX_VALUE else b""
            if not field or len(field) > c.varint_max_bytes:
                raise _limits.encode_range_error(value, 0, c.varint_max_bytes)
        elif value < 0 or value >= 1 << (size * 8 - (size == 8)):
            raise _limits.encode_range_error(value, size, c.varint_max_bytes)
        elif self._pack is not None:
            field = self._pack(value)
        else:
            field = value.to_bytes(size, c.byteorder)  # type: ignore[arg-type]
        return bytes(prefix) + field if prefix else field

    def encode(self, payload: Buffer, *, prefix: Buffer = b"") -> bytes:
        """Return one whole frame: ``prefix``, the length field, then ``payload``.

        Raises:
            ValueError: as :meth:`header`.
        """
        return self.header(_nbytes(payload), prefix=prefix) + payload

    def encode_many(self, payloads: Iterable[Buffer], *, prefix: Buffer = b"") -> bytes:
        """Return the frames of all ``payloads`` in one buffer, for one ``sendall``.

        Raises:
            ValueError: as :meth:`header`.
        """
        header = self.header
        parts: List[Buffer] = []
        for payload in payloads:
            parts.append(header(_nbytes(payload), prefix=prefix))
            parts.append(payload)
        return b"".join(parts)

    def encode_parts(self, payload: Buffer, *, prefix: Buffer = b"") -> Tuple[bytes, Buffer]:
        """Return ``(header, payload)`` for a vectored send (``socket.sendmsg``)."""
        return self.header(_nbytes(payload), prefix=prefix), payload

    # -- decoding -------------------------------------------------------------

    def decoder(self) -> LengthPrefixedDecoder:
        """Return a new, independent decoder for one stream."""
        return LengthPrefixedDecoder(self)


class LengthPrefixedDecoder:
    """Incremental decoder for one stream; made by :meth:`LengthPrefixed.decoder`.

    Feed it bytes in pieces of any size; it returns each frame once complete.
    """

    __slots__ = (
        "_adj",
        "_broken",
        "_buf",
        "_direct_min",
        "_direct_ratio",
        "_discard",
        "_end",
        "_fail_fast",
        "_frame",
        "_frame_cut",
        "_frame_pos",
        "_header_max",
        "_last",
        "_max",
        "_need",
        "_offered",
        "_offset",
        "_order",
        "_rest_min",
        "_room_cap",
        "_size",
        "_start",
        "_strip",
        "_too_long",
        "_unpack",
        "_vmax",
    )

    def __init__(self, codec: LengthPrefixed) -> None:
        c = codec._cfg
        self._size = c.length_size
        self._order = c.byteorder
        code = _STRUCT_CODES.get(c.length_size)
        order = ">" if c.byteorder == "big" else "<"
        self._unpack = struct.Struct(order + code).unpack_from if code else None
        self._offset = c.length_offset
        self._adj = c.length_adjustment
        self._strip = c.strip
        self._max = c.max_frame_size
        self._fail_fast = c.fail_fast
        self._vmax = c.varint_max_bytes
        self._buf = bytearray()
        self._start = 0  # first unread byte in _buf
        self._end = 0  # end of the bytes written to _buf
        self._need = -1  # length of the buffered unfinished frame, once its header is read
        self._discard = 0  # bytes of a rejected frame still to skip
        self._too_long = 0  # its length, while its FrameTooLarge is still owed (not fail_fast)
        self._broken: str | None = None  # why, once a corrupted length was seen
        self._offered = 0  # size of the last get_buffer() view
        # A large frame being assembled in place (see _begin_frame):
        self._frame: bytearray | None = None  # its payload, allocated whole
        self._frame_pos = 0  # payload bytes received into it so far
        self._frame_cut = 0  # bytes stripped from its front (counted as pending)
        self._last = 0  # payload size of the last frame decoded
        self._rest_min = 1  # assemble in place only if this much is yet to come
        self._header_max = c.length_offset + (c.length_size or c.varint_max_bytes)
        self._direct_min = _limits.DIRECT_MIN  # read here so tests can lower them
        self._direct_ratio = _limits.DIRECT_RATIO
        self._room_cap = _limits.ROOM_CAP

    @property
    def pending(self) -> int:
        """Bytes buffered that belong to no complete frame yet."""
        if self._frame is not None:
            return self._frame_cut + self._frame_pos
        return self._end - self._start

    # -- the decode loop ------------------------------------------------------

    def _decode(
        self, src: Any, pos: int, end: int, frames: List[bytes]
    ) -> Tuple[int, FramingError | None]:
        """Decode the complete frames in ``src[pos:end]`` and append them to ``frames``.

        Returns the position after the last byte consumed and the error that
        stopped decoding, if any.  Consumed bytes are whole frames and skipped
        bytes; what is left is the start of an unfinished frame.
        """
        size = self._size
        offset = self._offset
        unpack = self._unpack
        adj = self._adj
        strip = self._strip
        maximum = self._max
        as_bytes = type(src) is bytes
        self._need = -1
        while True:
            if self._discard:
                n = min(end - pos, self._discard)
                pos += n
                self._discard -= n
                if self._discard:
                    return pos, None
                if self._too_long:
                    too_long = self._too_long
                    self._too_long = 0
                    return pos, _limits.too_large_error(too_long, maximum, frames)
            avail = end - pos
            if size:
                header_end = offset + size
                if avail < header_end:
                    return pos, None
                if unpack is not None:
                    field = unpack(src, pos + offset)[0]
                    if field < 0:
                        return pos, self._break(_limits.negative_length_error(field, frames))
                else:
                    field = int.from_bytes(
                        src[pos + offset : pos + header_end],
                        "big" if self._order == "big" else "little",
                    )
            else:
                i = pos + offset
                n = 0
                field = 0
                while True:
                    if n == self._vmax:
                        return pos, self._break(_limits.varint_error(self._vmax, frames))
                    if i + n >= end:
                        return pos, None
                    b = src[i + n]
                    field |= (b & 0x7F) << (7 * n)
                    n += 1
                    if b < 0x80:
                        break
                if field > VARINT_MAX_VALUE:
                    return pos, self._break(_limits.varint_overflow_error(frames))
                header_end = offset + n
            frame_length = field + adj + header_end
            if frame_length < header_end:
                return pos, self._break(_limits.too_short_error(frame_length, header_end, frames))
            cut = header_end if strip < 0 else strip
            if frame_length > maximum or cut > frame_length:
                err: FramingError
                if frame_length > maximum:
                    err = _limits.too_large_error(frame_length, maximum, frames)
                else:
                    err = _limits.strip_error(frame_length, cut, frames)
                if avail >= frame_length:
                    return pos + frame_length, err
                self._discard = frame_length - avail
                if frame_length > maximum and not self._fail_fast:
                    self._too_long = frame_length
                    return end, None
                return end, err
            if avail < frame_length:
                self._need = frame_length
                payload = frame_length - cut
                if (
                    payload >= self._direct_min
                    and frame_length - avail >= self._rest_min
                    and avail >= cut
                    and payload <= self._direct_ratio * avail
                ):
                    self._begin_frame(src[pos + cut : end], payload, cut)
                    return end, None
                return pos, None
            if as_bytes:
                frames.append(src[pos + cut : pos + frame_length])
            else:
                frames.append(bytes(src[pos + cut : pos + frame_length]))
            pos += frame_length

    def _begin_frame(self, head: Any, payload: int, cut: int) -> None:
        """Start assembling a large frame in place, from the bytes ``head`` of
        its payload that arrived with the header."""
        frame = bytearray(payload)
        frame[: len(head)] = head
        self._frame = frame
        self._frame_pos = len(head)
        self._frame_cut = cut

    def _fill_frame(self, data: Any, pos: int, frames: List[bytes]) -> int:
        """Copy ``data`` from ``pos`` into the frame being assembled, emit the
        frame if that completes it, and return the position after the bytes taken."""
        assert self._frame is not None
        take = min(len(self._frame) - self._frame_pos, len(data) - pos)
        self._frame[self._frame_pos : self._frame_pos + take] = data[pos : pos + take]
        self._frame_pos += take
        self._end_frame(frames)
        return pos + take

    def _end_frame(self, frames: List[bytes]) -> None:
        assert self._frame is not None
        if self._frame_pos == len(self._frame):
            frames.append(bytes(self._frame))
            self._last = len(self._frame)
            self._frame = None
            self._need = -1

    def _break(self, err: FramingError) -> FramingError:
        self._broken = str(err)
        return err

    # -- buffer management ----------------------------------------------------

    def _reserve(self, room: int) -> None:
        """Make at least ``room`` bytes free after ``_end``."""
        buf = self._buf
        pending = self._end - self._start
        if len(buf) - self._end >= room:
            return
        if len(buf) - pending >= room and self._start >= pending:
            # Moving the unread bytes to the front frees enough: cheap, in place.
            buf[:pending] = buf[self._start : self._end]
        else:
            new = bytearray(max(2 * len(buf), pending + room))
            new[:pending] = buf[self._start : self._end]
            self._buf = new
        self._start = 0
        self._end = pending

    def _append(self, data: Any) -> None:
        n = len(data)
        self._reserve(n)
        self._buf[self._end : self._end + n] = data
        self._end += n

    def _consume_buffer(self, frames: List[bytes]) -> FramingError | None:
        pos, err = self._decode(memoryview(self._buf), self._start, self._end, frames)
        if pos >= self._end:
            pos = self._end = 0
        self._start = pos
        return err

    def _finish(self, frames: List[bytes], err: FramingError | None) -> List[bytes]:
        if err is None:
            return frames
        if self._broken is not None:
            self._start = self._end = 0
            self._frame = None
            self._need = -1
            self._discard = self._too_long = 0
        raise err

    # -- public API -----------------------------------------------------------

    def feed(self, data: Buffer) -> List[bytes]:
        """Add received bytes; return every frame they complete, in order.

        Raises:
            FrameTooLarge: a frame above ``max_frame_size``; its bytes are
                skipped and decoding can go on (call ``feed(b"")`` to decode
                complete frames already buffered behind it).
            CorruptedFrame: the stream is corrupt (see the module notes).
            Each error's ``.frames`` holds the frames decoded before it.
        """
        if self._broken is not None:
            raise _limits.broken_error(self._broken)
        if type(data) is not bytes:
            data = memoryview(data).cast("B")
        end = len(data)
        pos = 0
        frames: List[bytes] = []
        self._offered = 0  # a get_buffer() view is void once feed() is used
        # Here the rest of a frame would be copied anyway: in place saves a copy.
        self._rest_min = 1
        if self._frame is not None:
            pos = self._fill_frame(data, pos, frames)
        # Finish the frame that an earlier call left unfinished, copying no
        # more of ``data`` than it needs.
        while self._end > self._start and pos < end:
            pending = self._end - self._start
            if self._need >= 0:
                want = self._need - pending
            elif self._size:
                want = self._offset + self._size - pending
            else:
                want = max(self._offset + 1 - pending, 1)
            if want > 0:  # else the buffer already holds a header or more (after an error)
                take = min(want, end - pos)
                self._append(data[pos : pos + take])
                pos += take
            err = self._consume_buffer(frames)
            if self._frame is not None:
                pos = self._fill_frame(data, pos, frames)
            if err is not None:
                if self._broken is None and pos < end:
                    # The rest waits in the buffer for the next call, less
                    # what belongs to the rejected frame.
                    skip = min(self._discard, end - pos)
                    self._discard -= skip
                    self._append(data[pos + skip : end])
                return self._finish(frames, err)
        if pos < end or self._discard:
            pos, err = self._decode(data, pos, end, frames)
            if pos < end:
                self._append(data[pos:end])
            if err is not None:
                return self._finish(frames, err)
        elif not data and self._end > self._start:
            return self._finish(frames, self._consume_buffer(frames))
        return frames

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Return writable space to receive into (``recv_into``).

        Report how much was written with :meth:`buffer_updated`.  The view is
        all the free space, at least ``sizehint`` bytes (64 KiB when
        ``sizehint <= 0``) and, between frames, room for one as large as the
        last (up to ``_limits.ROOM_CAP``); or, while a large frame is being
        assembled in place, exactly the rest of that frame.  Pass a large
        ``sizehint`` (256 KiB) when each read is costly: fewer reads beat
        fewer copies.
        """
        if self._broken is not None:
            raise _limits.broken_error(self._broken)
        if self._frame is not None:
            # The rest of a large frame goes straight into place.
            self._offered = len(self._frame) - self._frame_pos
            return memoryview(self._frame)[self._frame_pos :]
        pending = self._end - self._start
        room = sizehint if sizehint > 0 else DEFAULT_READ_SIZE
        if pending == 0:
            self._start = self._end = 0
            room = max(room, self._header_max + min(self._last, self._room_cap))
        if self._need > 0:
            # Room for the rest of the frame, growing no faster than it arrives.
            room = max(room, min(self._need - pending, pending))
        self._reserve(room)
        self._offered = len(self._buf) - self._end
        return memoryview(self._buf)[self._end :]

    def buffer_updated(self, nbytes: int) -> List[bytes]:
        """Account for ``nbytes`` written into the last :meth:`get_buffer` view.

        Returns every frame completed, and raises like :meth:`feed`.
        """
        if self._broken is not None:
            raise _limits.broken_error(self._broken)
        nbytes = operator.index(nbytes)
        if not 0 <= nbytes <= self._offered:
            raise ValueError(
                f"buffer_updated({nbytes}): only {self._offered} bytes were offered by get_buffer()"
            )
        self._offered = 0  # one view, one update
        frames: List[bytes] = []
        if self._frame is not None:
            self._frame_pos += nbytes
            self._end_frame(frames)
            return frames
        self._end += nbytes
        # Here the rest of a frame would be read into the buffer: in place saves
        # its copy, but only a large rest is worth the read it ends with.
        self._rest_min = self._direct_min
        self._finish(frames, self._consume_buffer(frames))
        if frames:
            self._last = len(frames[-1])
        return frames

    def eof(self) -> None:
        """Declare the end of the stream.

        Raises:
            IncompleteFrame: an unfinished frame is buffered (it says how many
                bytes were cut off).
            FrameTooLarge: the stream ended while an oversized frame was being
                skipped and its error (``fail_fast=False``) was still owed.
        """
        if self._too_long:
            too_long = self._too_long
            self._too_long = self._discard = 0
            raise _limits.too_large_error(too_long, self._max, [])
        pending = self.pending
        if pending:
            raise _limits.incomplete_error(pending, self._need)
