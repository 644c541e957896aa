"""The codec interface: everything a transport may ask of a framing.

Design notes
------------
Transports (blocking and asyncio, stream and datagram) use a codec through
these two protocols and nothing else, so any framing plugs in:
:class:`framekit.LengthPrefixed`, :class:`framekit.Delimited`,
:class:`framekit.Netstring`, or a user's own class.

A codec is a factory of decoders plus an encoder::

    codec.decoder() -> Decoder          one per stream (or per datagram)
    codec.encode(payload) -> bytes      one whole frame
    codec.encode_many(payloads) -> bytes
    codec.encode_parts(payload) -> sequence of buffers, for sendmsg()

A decoder is sans-IO: bytes in, frames out::

    decoder.feed(data) -> list[bytes]
    decoder.get_buffer(sizehint) -> memoryview      receive in place...
    decoder.buffer_updated(nbytes) -> list[bytes]   ...then decode
    decoder.eof()                                   IncompleteFrame if cut off
    decoder.pending                                 bytes of an unfinished frame

Decoding errors are :class:`framekit.FramingError` subclasses carrying
``.frames`` (frames decoded before the bad bytes).  A decoder that raises
``CorruptedFrame`` may refuse all further input; any other error leaves it
usable, and ``feed(b"")`` decodes what is already buffered.

A datagram transport makes one decoder per datagram: ``feed(datagram)`` then
``eof()``, so a datagram carries whole frames and a cut-off one is an error.

Optional capabilities
---------------------
Two capabilities go beyond frames in, frames out.  A decoder has them when it
has the methods below (the connection core looks for them with ``getattr``);
a codec without them works everywhere, and only the feature that needs them
fails, with a clear ``TypeError`` that names the codec.

**Switching** (``conn.switch_codec(codec)``): a decoder that has ``detach``
also accepts ``max_frames`` in ``feed`` and ``buffer_updated``::

    decoder.feed(data, max_frames=-1) -> list[bytes]
    decoder.buffer_updated(nbytes, max_frames=-1) -> list[bytes]
    decoder.detach(unused=0) -> bytes

* ``max_frames >= 0`` decodes at most that many frames; every byte after the
  last frame decoded stays held, undecoded, for a later call (``feed(b"")``
  decodes it).  An error the bytes after that frame would raise is not raised:
  it is not reached.  ``max_frames=0`` only takes the bytes.  ``-1``: no limit.
* ``detach(unused)`` stops the decoder for good and hands back the rest of
  the stream as it was received: the wire bytes of the last ``unused`` frames
  that the most recent decode call returned (its return value, or the
  ``.frames`` of the error it raised), followed by every byte received after
  them.  Whatever the decoder made of those bytes (frames, an error, a skip or
  a corruption it found) is forgotten.  It raises ``ValueError`` when
  ``unused`` is negative or larger than that call's frames, or when the
  decoder cannot go back to that point: ``unused=0`` while it is skipping the
  rest of an oversized frame, or broken, since before its most recent call.
  Afterwards every call but ``pending`` raises ``ValueError``.

The connection core calls a decoder again only once every frame of its
previous call was handed to the caller (bytes that arrive earlier wait in the
core), so the frames not yet handed out all come from the decoder's most
recent call, and ``detach(len(those frames))`` gives the new codec exactly
the stream after the last frame the caller got.

**Streaming** (``conn.recv_stream()``: a frame too large to hold, read in
pieces)::

    decoder.stream_limit                     settable; 0 (the default): off
    decoder.stream_begin() -> int
    decoder.stream_read(max_bytes) -> bytes
    decoder.stream_advance(nbytes) -> None
    decoder.stream_discard() -> None
    decoder.stream_remaining -> int
    decoder.stream_held -> bool

* ``stream_limit > max_frame_size``: a frame whose length is above
  ``max_frame_size`` but not above ``stream_limit`` is no error; it is
  *held*: decoding stops at its header (the frames before it are returned, no
  bytes of it are consumed) until ``stream_begin()`` takes it;
  ``stream_held`` says so (a caller that wants frames whole then refuses it:
  ``stream_begin()`` and ``stream_discard()``).  Lengths here
  are the codec's own (for ``LengthPrefixed``, the adjusted frame length,
  header included, as for ``max_frame_size``).
* ``stream_begin()`` starts streaming the next frame: a held one, one whose
  assembly has begun (what arrived of its payload is streamed first), or one
  whose header is complete in the buffer.  It consumes the header and returns
  the payload's length (what ``recv()`` would have returned, as a count), or
  ``-1`` while the next header is incomplete.  A frame above
  ``max(stream_limit, max_frame_size)`` raises ``FrameTooLarge`` and is
  skipped, before a byte of its payload is read; corrupt headers raise as in
  ``feed``.  Any frame can be streamed, a small complete one too.  It
  raises ``ValueError`` while a stream is already open.
* While streaming, bytes that ``feed``/``buffer_updated`` take are payload
  first (those calls return no frames until the payload is complete);
  ``stream_read(n)`` returns and consumes up to ``n`` buffered payload bytes
  (``b""`` when none is buffered); ``stream_advance(n)`` says the caller
  took ``n`` payload bytes straight from the source, past the decoder;
  ``get_buffer()`` offers room for no more than the rest of the payload;
  ``stream_remaining`` counts the payload bytes not yet read (0: not
  streaming); ``stream_discard()`` drops the rest of the payload (buffered
  and still to come, as an oversized frame's bytes are).  When the payload is
  done the decoder goes back to frames; bytes it holds after the payload are
  decoded by the next call (``feed(b"")``).
* ``eof()`` while streaming raises ``IncompleteFrame`` as for a cut frame.

A user's codec need only write ``decoder()``/``encode()`` and a decoder's
``feed()``/``eof()``/``pending``: :class:`CodecBase` and :class:`DecoderBase`
derive the rest.  ``DecoderBase`` deliberately declares no ``pending``, so a
subclass may make it a plain attribute (``self.pending = 0``) or a property.
The built-in :class:`framekit.Delimited` and :class:`framekit.Netstring` are
written this way too.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Protocol, Sequence, Union, runtime_checkable

from ..errors import FramingError
from ._limits import DEFAULT_READ_SIZE, broken_error

__all__ = ["Buffer", "Codec", "CodecBase", "Decoder", "DecoderBase"]

Buffer = Union[bytes, bytearray, memoryview]


@runtime_checkable
class Decoder(Protocol):
    """Incremental decoder for one stream."""

    @property
    def pending(self) -> int:
        """Bytes buffered that belong to no complete frame yet."""
        ...

    def feed(self, data: Buffer) -> List[bytes]:
        """Add received bytes; return the frames they complete, in order."""
        ...

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Return writable space to receive into."""
        ...

    def buffer_updated(self, nbytes: int) -> List[bytes]:
        """Decode the ``nbytes`` just written into the last :meth:`get_buffer` view."""
        ...

    def eof(self) -> None:
        """End of stream: raise ``IncompleteFrame`` if a frame was cut off."""
        ...


@runtime_checkable
class Codec(Protocol):
    """A framing: a factory of decoders and an encoder.

    ``prefix`` is the bytes that go before the length field, for framings
    that have a place for them (``LengthPrefixed`` with a ``length_offset``:
    the type byte of the Postgres, MQTT and gRPC presets).  The transports
    pass it on only when the caller gave one, so a codec whose encoding
    methods take no ``prefix`` works everywhere else; one that has no place
    for it refuses a non-empty prefix with ``ValueError``.
    """

    def decoder(self) -> Decoder:
        """Return a new decoder for one stream."""
        ...

    def encode(self, payload: Buffer, *, prefix: Buffer = b"") -> bytes:
        """Return one whole frame carrying ``payload``."""
        ...

    def encode_many(self, payloads: Iterable[Buffer], *, prefix: Buffer = b"") -> bytes:
        """Return the frames of all ``payloads`` in one buffer."""
        ...

    def encode_parts(self, payload: Buffer, *, prefix: Buffer = b"") -> Sequence[Buffer]:
        """Return buffers whose concatenation is the frame, for ``sendmsg``."""
        ...


class CodecBase:
    """Base class for a codec: derives ``encode_many`` and ``encode_parts`` from ``encode``.

    Subclasses write :meth:`decoder` and :meth:`encode`, and may override the
    other two with something faster.
    """

    def decoder(self) -> Decoder:
        """Return a new decoder for one stream."""
        raise NotImplementedError

    def encode(self, payload: Buffer, *, prefix: Buffer = b"") -> bytes:
        """Return one whole frame carrying ``payload``.

        Raises:
            ValueError: ``payload`` cannot be framed (it holds a delimiter), or
                a non-empty ``prefix`` for a framing with no place for it.
            FrameTooLarge: the frame is above the codec's maximum.
        """
        raise NotImplementedError

    def encode_many(self, payloads: Iterable[Buffer], *, prefix: Buffer = b"") -> bytes:
        """Return the frames of all ``payloads`` in one buffer, for one ``sendall``.

        Raises:
            ValueError, FrameTooLarge: as :meth:`encode`.
        """
        if prefix:
            return b"".join([self.encode(p, prefix=prefix) for p in payloads])
        return b"".join([self.encode(p) for p in payloads])

    def encode_parts(self, payload: Buffer, *, prefix: Buffer = b"") -> Sequence[Buffer]:
        """Return buffers whose concatenation is the frame (here: just the frame).

        Raises:
            ValueError, FrameTooLarge: as :meth:`encode`.
        """
        if prefix:
            return (self.encode(payload, prefix=prefix),)
        return (self.encode(payload),)


class DecoderBase:
    """Base class for a decoder: derives ``get_buffer``/``buffer_updated`` from ``feed``.

    Subclasses write :meth:`feed`, :meth:`eof` and a ``pending`` attribute or
    property.  The received bytes land in a scratch buffer and are passed to
    ``feed`` as a memoryview, which ``feed`` must copy from (not keep), since
    the scratch buffer is reused.  Subclasses need not call ``__init__``: the
    two fields below have class-level defaults, and the scratch buffer is only
    ever replaced, never resized, so the shared empty default is never written.
    """

    _scratch: bytearray = bytearray()
    _offered: int = 0

    def feed(self, data: Buffer) -> List[bytes]:
        """Add received bytes; return the frames they complete, in order.

        Raises:
            FramingError: a subclass; its ``.frames`` holds the frames decoded
                before the bad bytes.
        """
        raise NotImplementedError

    def eof(self) -> None:
        """End of stream.

        Raises:
            IncompleteFrame: a frame was cut off.
        """
        raise NotImplementedError

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Return writable space to receive into (``recv_into``, ``BufferedProtocol``).

        Args:
            sizehint: the least size wanted; ``<= 0`` means 64 KiB.

        Returns:
            A view of at least ``sizehint`` bytes; report what was written with
            :meth:`buffer_updated`.
        """
        size = sizehint if sizehint > 0 else DEFAULT_READ_SIZE
        if len(self._scratch) < size:
            self._scratch = bytearray(size)
        self._offered = len(self._scratch)
        return memoryview(self._scratch)

    def buffer_updated(self, nbytes: int) -> List[bytes]:
        """Decode the ``nbytes`` just written into the last :meth:`get_buffer` view.

        Returns:
            The frames completed, as :meth:`feed`.

        Raises:
            ValueError: ``nbytes`` is more than the view offered.
            FramingError: as :meth:`feed`.
        """
        if not 0 <= nbytes <= self._offered:
            raise ValueError(
                f"buffer_updated({nbytes}): only {self._offered} bytes were offered by get_buffer()"
            )
        self._offered = 0
        with memoryview(self._scratch) as view:
            return self.feed(view[:nbytes])


class _ChunkDecoder(DecoderBase):
    """The ``feed`` shared by the built-in pure-Python decoders (Delimited, Netstring).

    A subclass writes ``_decode(data, frames)``: it decodes one chunk of bytes
    into ``frames`` (any split of a stream must give the same result) and, on
    an error other than ``CorruptedFrame``, leaves the unread rest of the
    chunk in ``_backlog`` before raising.  On ``CorruptedFrame`` it sets
    ``_broken`` to the reason.  ``feed`` turns the input into ``bytes``,
    decodes the backlog first (apart, so no chunk is ever copied onto it),
    and attaches the frames decoded so far to the error.
    """

    _backlog: bytes = b""
    _broken: Optional[str] = None

    def _decode(self, data: bytes, frames: List[bytes]) -> None:
        raise NotImplementedError

    def feed(self, data: Buffer) -> List[bytes]:
        """Add received bytes; return every frame they complete, in order.

        Raises:
            FramingError: a subclass; its ``.frames`` holds the frames decoded
                before the bad bytes.  After ``CorruptedFrame`` every call
                raises ``CorruptedFrame`` again.
        """
        if self._broken is not None:
            raise broken_error(self._broken)
        if type(data) is not bytes:
            data = bytes(data)
        frames: List[bytes] = []
        try:
            if self._backlog:
                backlog, self._backlog = self._backlog, b""
                try:
                    self._decode(backlog, frames)
                except FramingError:
                    if self._broken is None:
                        self._backlog += data
                    raise
            self._decode(data, frames)
        except FramingError as err:
            err.frames = frames
            raise
        return frames
