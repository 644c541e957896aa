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

A buffer is never allocated smaller than ``_limits.BUFFER_MIN`` (1 KiB): bytes
fed a few at a time are then moved (compacted, or to the spare buffer while
the log holds the old one) once per KiB, not once per frame.

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
read plus one cache-warm copy).  Here the object is an
anonymous ``mmap`` turned into ``bytes`` at the end (a copy); the Cython twin
allocates the final ``bytes`` object and hands it over as is: one copy per
byte from the kernel to the frame the caller receives.  ``get_buffer`` offers
the next part of it: the rest of the frame, or as much as has arrived if that
is more than the read size, so memory that is offered grows no faster than
the frame arrives.

Memory that was never written is never handed out
-------------------------------------------------
``buffer_updated(n)`` may be told that more bytes were written than were (but
not more than were offered).  Every byte a view offers is then zero or an
earlier byte of the same stream, identically in both backends: a new buffer is
zero-filled beyond the bytes copied into it (``bytearray(n)``), and the frame
assembled in place is zero-filled page by page by the system here (``mmap``),
by ``memset`` just before each part is offered in the Cython twin.  A view is
released by the call that uses it up (``buffer_updated``, ``feed``, the next
``get_buffer``): one view, one update, and a spent view cannot rewrite a frame
being assembled.  (A slice the caller made of it stays alive; the frame it
receives is still never changed afterwards.)

The memory bound
----------------
With ``P`` bytes of an unfinished frame received, ``R`` the read size asked
for (64 KiB by default) and ``L`` the wire bytes of the frames the most recent
decode call returned (kept for :meth:`LengthPrefixedDecoder.detach`), a
decoder holds at most about ``2 * max(P, R) + R + L`` bytes of buffers
(``_buf`` and the spare that replaces it while ``L`` is kept), and a frame
assembled in place reserves ``DIRECT_RATIO * P`` of address space of which at
most ``2 * P + R`` is ever written or zeroed.  An oversized frame costs
nothing, however large it says it is.  Once nothing is pending, a buffer above
``_limits.BUFFER_KEEP`` (512 KiB) is dropped, so a large frame leaves nothing
behind.  Bytes taken with ``max_frames=0``, or fed while a stream is open and
not read, are held until decoded or read: that is the caller's to bound.

Switching: max_frames and detach
--------------------------------
``max_frames=n`` stops the decode loop after ``n`` frames (one compare per
frame) and holds the rest, undecoded (``_undecoded``: the next call decodes
the held bytes first).  A call with ``max_frames=0`` decodes nothing and is
not a *decode call* for ``detach``: the connection core takes a read's bytes
that way while its last batch is still being handed out, and ``detach`` then
still refers to that batch.  For ``detach``, each decode call keeps a log of
the wire from the start of its first frame: [A] an in-place frame it
completed (its stripped head and the frame), [B] the span of ``_buf`` it
decoded, [C] the span of the input it decoded (a reference to ``feed``'s
``bytes``; a copy of that span for any other buffer type, which the caller may
reuse).  ``detach(unused)`` walks the headers in the log to the first unused
frame and returns the rest of the log and what the decoder holds, forgetting
errors, skips and corruption found in them.  A logged ``_buf`` is never
written over until the next decode call: the unread bytes move to the spare
buffer instead (``_logged``; ``_log_buf`` may stay ``_buf`` from one call to
the next, and logs nothing while its span is empty).  It cannot go back when
the decode call began inside a skip and returned no frame, after
``stream_begin``, while a stream is open, or once a call was refused because
the decoder was broken.

Streaming
---------
With ``stream_limit`` above ``max_frame_size``, a frame in between is *held*:
the decode loop stops at its header, consuming nothing, exactly as for an
unfinished frame.  ``stream_begin`` parses the next header on its own
(``_read_header``) with ``max(stream_limit, max_frame_size)`` as the bound,
consumes the stripped bytes and opens the stream; a frame being assembled in
place is copied back into the buffer first (what arrived of it).  While a
stream is open, ``feed``/``buffer_updated`` only take bytes, ``get_buffer``
offers no more than the rest of the payload, and ``stream_read`` copies out of
the buffer, so the decoder holds no more than one read however long the frame.
"""

from __future__ import annotations

import mmap
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


def _as_bytes(data: Buffer) -> memoryview:
    """A view of ``data`` as unsigned bytes; it must be C-contiguous."""
    view = memoryview(data)
    if not view.c_contiguous:
        raise _limits.contiguous_error()
    return view.cast("B")


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

    def header(
        self, payload_size: int, *, prefix: Buffer = b"", max_frame_size: int | None = None
    ) -> bytes:
        """Return the header (``prefix`` + length field) for a payload of that size.

        Send ``[header, payload]`` with one vectored call to avoid copying the
        payload.

        Args:
            payload_size: the bytes that will follow the header.
            prefix: the ``length_offset`` bytes before the length field.
            max_frame_size: the largest frame (header included) to allow for
                this header; ``None``: the codec's.  A caller streaming a frame
                larger than the codec's maximum raises it for that one header.

        Returns:
            The header, as ``bytes``.

        Raises:
            ValueError: ``prefix`` is not ``length_offset`` bytes long, or the
                field value (``payload_size - length_adjustment``) is negative
                or does not fit the field.
            FrameTooLarge: the frame would be larger than ``max_frame_size``
                (the decoder would refuse it).
        """
        c = self._cfg
        plen = _nbytes(prefix)
        if plen != c.length_offset:
            raise _limits.prefix_error(plen, c.length_offset)
        maximum = (
            c.max_frame_size if max_frame_size is None else _limits.check_header_max(max_frame_size)
        )
        size_in = operator.index(payload_size)
        value = size_in - c.length_adjustment
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
        frame_length = size_in + plen + len(field)
        if frame_length > maximum:
            raise _limits.encode_too_large_error(frame_length, maximum)
        return bytes(prefix) + field if prefix else field

    def encode(self, payload: Buffer, *, prefix: Buffer = b"") -> bytes:
        """Return one whole frame: ``prefix``, the length field, then ``payload``.

        Raises:
            ValueError: as :meth:`header`.
            FrameTooLarge: the frame is above ``max_frame_size``.
        """
        return self.header(_nbytes(payload), prefix=prefix) + payload

    def encode_many(self, payloads: Iterable[Buffer], *, prefix: Buffer = b"") -> bytes:
        """Return the frames of all ``payloads`` in one buffer, for one ``sendall``.

        Raises:
            ValueError: as :meth:`header`.
            FrameTooLarge: a frame is above ``max_frame_size`` (nothing is returned).
        """
        header = self.header
        parts: List[Buffer] = []
        for payload in payloads:
            parts.append(header(_nbytes(payload), prefix=prefix))
            parts.append(payload)
        return b"".join(parts)

    def encode_parts(self, payload: Buffer, *, prefix: Buffer = b"") -> Tuple[bytes, Buffer]:
        """Return ``(header, payload)`` for a vectored send (``socket.sendmsg``).

        Raises:
            ValueError: as :meth:`header`.
            FrameTooLarge: the frame is above ``max_frame_size``.
        """
        return self.header(_nbytes(payload), prefix=prefix), payload

    # -- decoding -------------------------------------------------------------

    def decoder(self) -> LengthPrefixedDecoder:
        """Return a new, independent decoder for one stream."""
        return LengthPrefixedDecoder(self)


class LengthPrefixedDecoder:
    """Incremental decoder for one stream; made by :meth:`LengthPrefixed.decoder`.

    Feed it bytes in pieces of any size; it returns each frame once complete.
    It has both optional capabilities of :mod:`framekit.codecs.interface`:
    switching (``max_frames``, :meth:`detach`) and streaming (``stream_*``).
    """

    __slots__ = (
        "_adj",
        "_broken",
        "_buf",
        "_detached",
        "_direct_min",
        "_direct_ratio",
        "_discard",
        "_end",
        "_fail_fast",
        "_frame",
        "_frame_cut",
        "_frame_from",
        "_frame_head",
        "_frame_pos",
        "_header_max",
        "_held",
        "_last",
        "_log_b0",
        "_log_b1",
        "_log_base",
        "_log_buf",
        "_log_d0",
        "_log_d1",
        "_log_data",
        "_log_frame",
        "_log_head",
        "_log_lost",
        "_log_n",
        "_max",
        "_need",
        "_offered",
        "_offset",
        "_order",
        "_rest_min",
        "_room_cap",
        "_size",
        "_spare",
        "_start",
        "_stream_left",
        "_stream_length",
        "_stream_limit",
        "_strip",
        "_too_long",
        "_undecoded",
        "_unpack",
        "_view",
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
        self._spare = bytearray()  # a buffer to switch to while _buf is logged
        self._start = 0  # first unread byte in _buf
        self._end = 0  # end of the bytes written to _buf
        self._need = -1  # length of the buffered unfinished frame, once its header is read
        self._undecoded = False  # _buf may hold more than the start of one frame
        self._held = False  # decoding stopped at the header of a frame held for streaming
        self._discard = 0  # bytes of a rejected frame still to skip
        self._too_long = 0  # its length, while its FrameTooLarge is still owed (not fail_fast)
        self._broken: str | None = None  # why, once a corrupted length was seen
        self._detached = False
        self._offered = 0  # size of the last get_buffer() view
        self._view: memoryview | None = None  # that view, released once spent
        # A large frame being assembled in place (see _begin_frame):
        self._frame: Any = None  # its payload, allocated whole (an anonymous mmap)
        self._frame_pos = 0  # payload bytes received into it so far
        self._frame_cut = 0  # bytes stripped from its front (counted as pending)
        self._frame_head = b""  # those bytes, as received (for detach)
        self._frame_from = 0  # where it began in the bytes being decoded
        self._last = 0  # payload size of the last frame decoded
        self._rest_min = 1  # assemble in place only if this much is yet to come
        self._header_max = c.length_offset + (c.length_size or c.varint_max_bytes)
        self._direct_min = _limits.DIRECT_MIN  # read here so tests can lower them
        self._direct_ratio = _limits.DIRECT_RATIO
        self._room_cap = _limits.ROOM_CAP
        # Streaming (see stream_begin):
        self._stream_limit = 0
        self._stream_left = 0  # payload bytes not yet read
        self._stream_length = 0  # the streamed frame's length, header included
        # The log of the most recent decode call, for detach(): the wire from
        # the start of its first frame is [A][B][C], then what the decoder holds.
        self._log_n = 0  # frames it returned
        self._log_base = 0  # bytes of the log before its first frame (a skip's end)
        self._log_lost = False  # the start of the log is no longer known
        self._log_head = b""  # A: an in-place frame it completed (head, payload)...
        self._log_frame: bytes | None = None
        self._log_buf: bytearray | None = None  # B: _log_buf[_log_b0:_log_b1]
        self._log_b0 = 0
        self._log_b1 = 0
        self._log_data: Any = None  # C: _log_data[_log_d0:_log_d1], the call's input
        self._log_d0 = 0
        self._log_d1 = 0

    @property
    def pending(self) -> int:
        """Bytes buffered that belong to no complete frame yet."""
        held = self._end - self._start
        if self._frame is not None:
            held += self._frame_cut + self._frame_pos
        return held

    @property
    def stream_limit(self) -> int:
        """The largest frame (header included) that is held for streaming; 0: off."""
        return self._stream_limit

    @stream_limit.setter
    def stream_limit(self, value: int) -> None:
        self._stream_limit = _limits.check_stream_limit(value)

    @property
    def stream_remaining(self) -> int:
        """Payload bytes of the open stream not yet read; 0: not streaming."""
        return self._stream_left

    @property
    def stream_held(self) -> bool:
        """Whether decoding stopped at the header of a frame held for streaming
        (above ``max_frame_size``, not above ``stream_limit``)."""
        return self._held

    # -- the decode loop ------------------------------------------------------

    def _decode(
        self, src: Any, pos: int, end: int, frames: List[bytes], limit: int
    ) -> Tuple[int, FramingError | None]:
        """Decode the complete frames in ``src[pos:end]`` and append them to ``frames``.

        Stops once ``frames`` holds ``limit`` frames (``-1``: no limit).
        Returns the position after the last byte consumed and the error that
        stopped decoding, if any.  Consumed bytes are whole frames and skipped
        bytes; what is left is the start of an unfinished frame, unless
        ``_undecoded`` says decoding stopped for another reason.
        """
        size = self._size
        offset = self._offset
        unpack = self._unpack
        adj = self._adj
        strip = self._strip
        maximum = self._max
        as_bytes = type(src) is bytes
        self._need = -1
        self._held = False
        self._undecoded = False
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
                    self._undecoded = True
                    return pos, _limits.too_large_error(too_long, maximum, frames)
            if len(frames) == limit:
                self._undecoded = True
                return pos, None
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
                if cut <= frame_length and frame_length <= self._stream_limit:
                    # Held for streaming: stop at its header until stream_begin().
                    self._need = frame_length
                    self._held = self._undecoded = True
                    return pos, None
                if frame_length > maximum:
                    err = _limits.too_large_error(frame_length, maximum, frames)
                else:
                    err = _limits.strip_error(frame_length, cut, frames)
                self._undecoded = True
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
                    self._begin_frame(src, pos, end, cut, payload)
                    return end, None
                return pos, None
            if as_bytes:
                frames.append(src[pos + cut : pos + frame_length])
            else:
                frames.append(bytes(src[pos + cut : pos + frame_length]))
            pos += frame_length

    def _begin_frame(self, src: Any, pos: int, end: int, cut: int, payload: int) -> None:
        """Start assembling a large frame in place, from the bytes ``src[pos:end]``
        that arrived with its header (``cut`` of them are stripped).

        The frame is an anonymous ``mmap``: zero-filled by the system, page by
        page as it is written, so that a frame announced but not sent costs
        no memory beyond what arrived.
        """
        frame = mmap.mmap(-1, payload)
        head = src[pos + cut : end]
        frame[: len(head)] = head
        self._frame = frame
        self._frame_pos = len(head)
        self._frame_cut = cut
        self._frame_head = bytes(src[pos : pos + cut])
        self._frame_from = pos

    def _fill_frame(self, data: Any, pos: int) -> int:
        """Copy ``data`` from ``pos`` into the frame being assembled; return the
        position after the bytes taken."""
        frame = self._frame
        take = min(len(frame) - self._frame_pos, len(data) - pos)
        frame[self._frame_pos : self._frame_pos + take] = data[pos : pos + take]
        self._frame_pos += take
        return pos + take

    def _deliver_frame(self, frames: List[bytes]) -> None:
        """Hand over the complete frame assembled in place."""
        frame = bytes(self._frame)
        frames.append(frame)
        self._last = len(frame)
        self._frame = None
        self._frame_head = b""
        self._need = -1

    def _break(self, err: FramingError) -> FramingError:
        self._broken = str(err)
        return err

    def _refuse(self) -> None:
        """Raise why the decoder takes no more input: detached, or broken."""
        if self._detached:
            raise _limits.detached_error()
        assert self._broken is not None
        if not self._log_lost:
            # Broken since before this call: detach() cannot go back any more,
            # so nothing held is worth keeping.
            self._clear()
            self._log_lost = True
        raise _limits.broken_error(self._broken)

    def _clear(self) -> None:
        self._buf = bytearray()
        self._spare = bytearray()
        self._start = self._end = 0
        self._frame = None
        self._frame_head = b""
        self._need = -1
        self._discard = self._too_long = self._stream_left = 0
        self._log_drop()
        self._log_n = 0

    # -- buffer management ----------------------------------------------------

    def _reserve(self, room: int) -> None:
        """Make at least ``room`` bytes free after ``_end``.

        The bytes the log holds (``_log_buf``) are never moved nor written
        over: the unread bytes go to another buffer instead (the spare one).
        """
        buf = self._buf
        pending = self._end - self._start
        if len(buf) - self._end >= room:
            return
        compact = len(buf) - pending >= room and self._start >= pending
        if compact and not self._logged(buf):
            # Moving the unread bytes to the front frees enough: cheap, in place.
            buf[:pending] = buf[self._start : self._end]
        else:
            size = len(buf) if compact else max(2 * len(buf), pending + room, _limits.BUFFER_MIN)
            new = self._spare
            self._spare = bytearray()
            if len(new) < size:
                new = bytearray(size)
            new[:pending] = buf[self._start : self._end]
            self._buf = new
        self._start = 0
        self._end = pending

    def _append(self, data: Any) -> None:
        n = len(data)
        if n:
            self._reserve(n)
            self._buf[self._end : self._end + n] = data
            self._end += n

    def _consume_buffer(self, frames: List[bytes], limit: int) -> FramingError | None:
        """Decode the buffer, logging the bytes consumed (part B of the log)."""
        self._log_buf = self._buf
        self._log_b0 = start = self._start
        pos, err = self._decode(memoryview(self._buf), start, self._end, frames, limit)
        # A frame that began in place holds its bytes there: they are not logged.
        self._log_b1 = self._frame_from if self._frame is not None else pos
        self._start = pos
        return err

    def _void_view(self) -> None:
        """Spend the outstanding get_buffer() view: one view, one update."""
        self._offered = 0
        view = self._view
        if view is not None:
            self._view = None
            try:
                view.release()
            except BufferError:  # exported further by the caller: it stays
                pass

    def _take(self, data: Any) -> None:
        """Hold ``data`` undecoded (``max_frames=0``, or while streaming)."""
        pos = 0
        frame = self._frame
        if frame is not None and self._frame_pos < len(frame):
            pos = self._fill_frame(data, 0)
        if pos < len(data):
            self._append(data[pos:])
            self._undecoded = True

    def _log_start(self, data: Any) -> None:
        """A decode call begins: forget the log of the previous one.

        ``_log_buf`` stays when it is ``_buf``: with an empty span it holds
        nothing (see :meth:`_logged`), and the Cython twin is spared taking
        and dropping a reference to it in every call.
        """
        keep = self._log_buf is self._buf
        self._log_drop()
        if keep:
            self._log_buf = self._buf
        self._log_base = self._discard  # a skip to finish before the first frame
        self._log_data = data

    def _logged(self, buf: bytearray) -> bool:
        """Whether the log holds bytes of ``buf``: they must not be written over."""
        return buf is self._log_buf and self._log_b1 > self._log_b0

    def _log_drop(self) -> None:
        old = self._log_buf
        if old is not None and old is not self._buf and len(old) <= len(self._buf):
            self._spare = old  # no longer logged: reuse it
        self._log_buf = None
        self._log_b0 = self._log_b1 = self._log_d0 = self._log_d1 = 0
        self._log_head = b""
        self._log_frame = None
        self._log_data = None
        self._log_lost = False

    def _finish(
        self, frames: List[bytes], err: FramingError | None, data: Any, copy: bool
    ) -> List[bytes]:
        """End a decode call: complete the log, shrink an idle buffer, raise ``err``."""
        self._log_n = len(frames)
        self._log_lost = self._log_base > 0 and not frames
        if copy and self._log_d1 > self._log_d0:
            # The caller may reuse its buffer: keep a copy of what is logged.
            self._log_data = bytes(data[self._log_d0 : self._log_d1])
            self._log_d1 -= self._log_d0
            self._log_d0 = 0
        if self._end == self._start:
            self._undecoded = False
            if len(self._buf) > _limits.BUFFER_KEEP:
                if self._log_buf is self._buf:
                    # Keep only what the log needs of it.
                    self._log_buf = self._buf[self._log_b0 : self._log_b1]
                    self._log_b0, self._log_b1 = 0, len(self._log_buf)
                self._buf = bytearray()
                self._spare = bytearray()
                self._start = self._end = 0
        if err is not None:
            raise err
        return frames

    # -- public API -----------------------------------------------------------

    def feed(self, data: Buffer, max_frames: int = -1) -> List[bytes]:
        """Add received bytes; return every frame they complete, in order.

        Args:
            data: the bytes received (any C-contiguous bytes-like object).
            max_frames: decode at most that many frames and hold every byte
                after the last one, undecoded, for a later call (``0``: only
                take the bytes); ``-1``: no limit.

        Returns:
            The frames, as ``bytes``.

        Raises:
            FrameTooLarge: a frame above ``max_frame_size``; its bytes are
                skipped and decoding can go on (call ``feed(b"")`` to decode
                complete frames already buffered behind it).
            CorruptedFrame: the stream is corrupt (see the module notes).
            Each error's ``.frames`` holds the frames decoded before it.
            BufferError: ``data`` is not C-contiguous.
            ValueError: the decoder was detached, or ``max_frames < -1``.
        """
        if self._broken is not None or self._detached:
            self._refuse()
        limit = _limits.check_max_frames(max_frames)
        copy = type(data) is not bytes
        if copy:
            data = _as_bytes(data)
        self._void_view()
        if limit == 0 or self._stream_left:
            self._take(data)
            return []
        end = len(data)
        pos = 0
        frames: List[bytes] = []
        err: FramingError | None = None
        self._log_start(data)
        # Here the rest of a frame would be copied anyway: in place saves a copy.
        self._rest_min = 1
        frame = self._frame
        if frame is not None:
            pos = self._fill_frame(data, 0)
            if self._frame_pos == len(frame):
                self._log_head = self._frame_head  # part A of the log
                self._deliver_frame(frames)
                self._log_frame = frames[-1]
        self._log_d0 = pos
        if self._frame is None and len(frames) != limit:
            if self._undecoded and self._end > self._start:
                # Held bytes may hold whole frames: decode them with the rest.
                self._append(data[pos:])
                pos = self._log_d0 = end
                err = self._consume_buffer(frames, limit)
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
                take = min(want, end - pos)
                self._append(data[pos : pos + take])
                pos = self._log_d0 = pos + take
                err = self._consume_buffer(frames, limit)
                if self._frame is not None:
                    pos = self._fill_frame(data, pos)
                    if self._frame_pos == len(self._frame):
                        self._deliver_frame(frames)
                        self._log_b1 = self._start  # its head is logged after all
                if err is not None or self._undecoded:
                    break
            if (
                err is None
                and not self._undecoded
                and self._frame is None
                and (pos < end or self._discard)
            ):
                pos, err = self._decode(data, pos, end, frames, limit)
                self._log_d1 = self._frame_from if self._frame is not None else pos
            elif self._frame is not None:
                self._log_d1 = self._log_d0  # began in the buffer: held, not logged
            else:
                self._log_d1 = pos
            if pos < end and err is not None and self._discard:
                # The rest of a rejected frame that began in the buffer.
                skip = min(self._discard, end - pos)
                self._discard -= skip
                pos = self._log_d1 = pos + skip
            if pos < end:
                held = self._undecoded or err is not None
                self._append(data[pos:end])
                self._undecoded = held
        else:
            self._log_d1 = pos
            if pos < end:  # max_frames reached: the rest is held
                self._append(data[pos:end])
                self._undecoded = True
        return self._finish(frames, err, data, copy)

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Return writable space to receive into (``recv_into``).

        Report how much was written with :meth:`buffer_updated`.  The view is
        all the free space, at least ``sizehint`` bytes (64 KiB when
        ``sizehint <= 0``) and, between frames, room for one as large as the
        last (up to ``_limits.ROOM_CAP``); while a large frame is being
        assembled in place, the next part of that frame (the rest of it, or
        as much as has arrived, if that is more than ``sizehint``); while
        streaming, no more than the rest of the payload.  Pass a large
        ``sizehint`` (256 KiB) when each read is costly: fewer reads beat
        fewer copies.  The view is released by the next call that uses it
        up (``buffer_updated``, ``feed``, ``get_buffer``).

        Raises:
            CorruptedFrame: the decoder is broken.
            ValueError: the decoder was detached.
        """
        if self._broken is not None or self._detached:
            self._refuse()
        self._void_view()
        room = sizehint if sizehint > 0 else DEFAULT_READ_SIZE
        frame = self._frame
        if frame is not None and self._frame_pos < len(frame):
            # The rest of a large frame goes straight into place, growing no
            # faster than it arrives.
            pos = self._frame_pos
            n = min(len(frame) - pos, max(room, self._frame_cut + pos))
            view = memoryview(frame)[pos : pos + n]
        else:
            pending = self._end - self._start
            rest = -1
            if self._stream_left:
                rest = self._stream_left - min(pending, self._stream_left)
                room = min(room, rest)
            elif pending == 0:
                if not self._logged(self._buf):
                    self._start = self._end = 0
                room = max(room, self._header_max + min(self._last, self._room_cap))
            elif self._need > 0:
                # Room for the rest of the frame, growing no faster than it arrives.
                room = max(room, min(self._need - pending, pending))
            self._reserve(room)
            n = len(self._buf) - self._end
            if rest >= 0:
                n = min(n, rest)
            view = memoryview(self._buf)[self._end : self._end + n]
        self._offered = n
        self._view = view
        return view

    def buffer_updated(self, nbytes: int, max_frames: int = -1) -> List[bytes]:
        """Account for ``nbytes`` written into the last :meth:`get_buffer` view.

        Args:
            nbytes: how many bytes were written at the start of the view.
            max_frames: as in :meth:`feed`.

        Returns:
            Every frame completed, as :meth:`feed`.

        Raises:
            ValueError: ``nbytes`` is more than the view offered (or that
                view was already used), or as :meth:`feed`.
            FramingError: as :meth:`feed`.
        """
        if self._broken is not None or self._detached:
            self._refuse()
        limit = _limits.check_max_frames(max_frames)
        nbytes = operator.index(nbytes)
        if not 0 <= nbytes <= self._offered:
            raise _limits.offered_error(nbytes, self._offered)
        self._void_view()  # one view, one update
        frames: List[bytes] = []
        frame = self._frame
        if frame is not None and self._frame_pos < len(frame):
            self._frame_pos += nbytes
        else:
            self._end += nbytes
            if limit == 0 or self._stream_left:
                self._undecoded = self._undecoded or nbytes > 0
        if limit == 0 or self._stream_left:
            return frames
        self._log_start(None)
        if frame is not None and self._frame_pos == len(frame):
            self._log_head = self._frame_head
            self._deliver_frame(frames)
            self._log_frame = frames[-1]
        if self._end > self._start and len(frames) != limit and self._frame is None:
            # Here the rest of a frame would be read into the buffer: in place
            # saves its copy, but only a large rest is worth the read it ends with.
            self._rest_min = self._direct_min
            err = self._consume_buffer(frames, limit)
            if frames:
                self._last = len(frames[-1])
            return self._finish(frames, err, None, False)
        return self._finish(frames, None, None, False)

    def eof(self) -> None:
        """Declare the end of the stream.

        Raises:
            IncompleteFrame: an unfinished frame is buffered (it says how many
                bytes were cut off), or a stream is open.
            FrameTooLarge: the stream ended while an oversized frame was being
                skipped and its error (``fail_fast=False``) was still owed.
            ValueError: the decoder was detached.
        """
        if self._detached:
            raise _limits.detached_error()
        if self._broken is not None:
            return
        if self._stream_left:
            to_come = self._stream_left - min(self._end - self._start, self._stream_left)
            raise _limits.incomplete_error(self._stream_length - to_come, self._stream_length)
        if self._too_long:
            too_long = self._too_long
            self._too_long = self._discard = 0
            raise _limits.too_large_error(too_long, self._max, [])
        pending = self.pending
        if pending:
            raise _limits.incomplete_error(pending, self._need)

    # -- switching ------------------------------------------------------------

    def detach(self, unused: int = 0) -> bytes:
        """Stop for good and hand back the rest of the stream, as it was received.

        Args:
            unused: how many of the frames returned by the most recent decode
                call (its return value, or its error's ``.frames``) the caller
                did not use: their wire bytes come first.

        Returns:
            The wire bytes of those frames, then every byte received after
            them; whatever the decoder made of them is forgotten.

        Raises:
            ValueError: ``unused`` is negative or more than that call's frames,
                or the decoder cannot go back to that point (it is streaming,
                skipping a frame since before that call, or broken since before
                it), or it was already detached.
        """
        if self._detached:
            raise _limits.detached_error()
        unused = operator.index(unused)
        if self._stream_left:
            raise _limits.detach_lost_error("a stream is open")
        if not 0 <= unused <= self._log_n:
            raise _limits.detach_error(unused, self._log_n)
        if self._log_lost:
            if self._broken is not None:
                raise _limits.detach_lost_error("broken before the most recent call")
            raise _limits.detach_lost_error("skipping a frame that began before that call")
        parts: List[Any] = []
        if self._log_frame is not None:
            parts += [self._log_head, self._log_frame]
        if self._log_buf is not None:
            parts.append(self._log_buf[self._log_b0 : self._log_b1])
        if self._log_data is not None:
            parts.append(self._log_data[self._log_d0 : self._log_d1])
        if self._frame is not None:
            parts += [self._frame_head, self._frame[: self._frame_pos]]
        held = self._buf[self._start : self._end]
        wire = b"".join(parts)
        pos = self._log_base
        for _ in range(self._log_n - unused):
            pos += self._wire_length(wire, pos)
        out = wire[pos:] + held
        self._void_view()
        self._clear()
        self._detached = True
        return out

    def _read_header(self, src: Any, pos: int, end: int) -> Tuple[int, int]:
        """Parse the header at ``src[pos:end]``.

        Returns ``(frame_length, header_end)``, or ``(-1, 0)`` while it is
        incomplete; a corrupt header breaks the decoder and raises, as in
        :meth:`_decode` (which has the same rules inline, for speed).
        """
        offset = self._offset
        if self._size:
            header_end = offset + self._size
            if end - pos < header_end:
                return -1, 0
            field = int.from_bytes(src[pos + offset : pos + header_end], self._order)  # type: ignore[arg-type]
            if self._size == 8 and field >= 1 << 63:
                raise self._break(_limits.negative_length_error(field - (1 << 64), []))
        else:
            n = field = 0
            while True:
                if n == self._vmax:
                    raise self._break(_limits.varint_error(self._vmax, []))
                if pos + offset + n >= end:
                    return -1, 0
                b = src[pos + offset + n]
                field |= (b & 0x7F) << (7 * n)
                n += 1
                if b < 0x80:
                    break
            if field > VARINT_MAX_VALUE:
                raise self._break(_limits.varint_overflow_error([]))
            header_end = offset + n
        frame_length = field + self._adj + header_end
        if frame_length < header_end:
            raise self._break(_limits.too_short_error(frame_length, header_end, []))
        return frame_length, header_end

    def _wire_length(self, wire: bytes, pos: int) -> int:
        """The length of the (valid, already decoded) frame at ``wire[pos:]``."""
        return self._read_header(wire, pos, len(wire))[0]

    # -- streaming ------------------------------------------------------------

    def stream_begin(self) -> int:
        """Start streaming the next frame: a held one, one being assembled, or
        one whose header is complete in the buffer.

        Returns:
            The payload's length (what :meth:`feed` would have returned, as a
            count), or ``-1`` while the next header is incomplete.

        Raises:
            FrameTooLarge: the frame is above ``max(stream_limit,
                max_frame_size)``; it is skipped, before a byte of its payload
                is read.
            CorruptedFrame: as :meth:`feed`.
            ValueError: a stream is already open, or the decoder was detached.
        """
        if self._broken is not None or self._detached:
            self._refuse()
        if self._stream_left:
            raise _limits.stream_open_error()
        self._void_view()
        frame = self._frame
        if frame is not None:
            # A frame being assembled in place: what arrived is streamed first.
            rest = self._buf[self._start : self._end]
            self._buf = bytearray(frame[: self._frame_pos]) + rest
            self._spare = bytearray()
            self._start, self._end = 0, len(self._buf)
            self._frame = None
            self._frame_head = b""
            return self._open_stream(self._frame_cut + len(frame), len(frame))
        if self._discard:
            skip = min(self._discard, self._end - self._start)
            self._start += skip
            self._discard -= skip
            self._log_lost = True
            if self._discard:
                return -1
            if self._too_long:
                too_long, self._too_long = self._too_long, 0
                raise _limits.too_large_error(too_long, self._max, [])
        frame_length, header_end = self._read_header(self._buf, self._start, self._end)
        if frame_length < 0:
            return -1
        cut = header_end if self._strip < 0 else self._strip
        limit = max(self._max, self._stream_limit)
        if cut > frame_length or frame_length > limit:
            err: FramingError
            if cut > frame_length:
                err = _limits.strip_error(frame_length, cut, [])
            elif self._stream_limit > self._max:
                err = _limits.stream_too_large_error(frame_length, limit)
            else:
                err = _limits.too_large_error(frame_length, self._max, [])
            take = min(self._end - self._start, frame_length)
            self._start += take
            self._discard = frame_length - take
            self._need = -1
            self._held = False
            self._undecoded = self._end > self._start
            self._log_lost = True
            raise err
        if self._end - self._start < cut:
            return -1
        self._start += cut
        return self._open_stream(frame_length, frame_length - cut)

    def _open_stream(self, frame_length: int, payload: int) -> int:
        self._stream_length = frame_length
        self._stream_left = payload
        self._need = -1
        self._held = False
        self._undecoded = self._end - self._start > payload
        # Nothing before the stream can be gone back to, and after it comes
        # what the decoder holds.
        self._log_drop()
        self._log_n = self._log_base = 0
        return payload

    def stream_read(self, max_bytes: int) -> bytes:
        """Return and consume up to ``max_bytes`` buffered payload bytes.

        Returns:
            The bytes (``b""`` when none is buffered: receive more first).

        Raises:
            ValueError: no stream is open, or ``max_bytes`` is negative.
        """
        if self._broken is not None or self._detached:
            self._refuse()
        n = _limits.check_count("max_bytes", max_bytes)
        if not self._stream_left:
            raise _limits.no_stream_error("stream_read()")
        n = min(n, self._stream_left, self._end - self._start)
        with memoryview(self._buf) as view:
            out = bytes(view[self._start : self._start + n])
        self._start += n
        self._stream_left -= n
        return out

    def stream_advance(self, nbytes: int) -> None:
        """Count ``nbytes`` payload bytes the caller took straight from the source.

        Raises:
            ValueError: no stream is open, payload bytes are still buffered
                (read them first), or ``nbytes`` is more than is still to come.
        """
        if self._broken is not None or self._detached:
            self._refuse()
        n = _limits.check_count("nbytes", nbytes)
        if not self._stream_left:
            raise _limits.no_stream_error("stream_advance()")
        buffered = min(self._end - self._start, self._stream_left)
        to_come = self._stream_left - buffered
        if n > to_come or (n and buffered):
            raise _limits.stream_advance_error(n, buffered, to_come)
        self._void_view()
        self._stream_left -= n

    def stream_discard(self) -> None:
        """Drop the rest of the payload, buffered and still to come (no-op when
        no stream is open).

        Raises:
            ValueError: the decoder was detached.
        """
        if self._broken is not None or self._detached:
            self._refuse()
        if not self._stream_left:
            return
        self._void_view()
        buffered = min(self._end - self._start, self._stream_left)
        self._start += buffered
        self._discard = self._stream_left - buffered
        self._stream_left = 0
        if self._discard:
            self._log_lost = True
