"""The sans-IO connection core of a framed stream: bytes in, messages out; messages in, buffers out.

Design notes
------------
Every stream transport (blocking ``FramedSocket``, asyncio ``Connection``,
anyio) owns one :class:`StreamCore` and only moves bytes between a socket and
it.  The core owns the codec's decoder, the serializer and ``prefix=``, and
every rule about them: the order of frames and errors, draining a decoder
after an error, noticing a decoder that refuses all input, end of stream,
write coalescing, idle and frame timeouts, codec switching and the byte and
frame counters.  It never touches a socket, a selector, a thread, a clock it
was not given, or an event loop: the transport tells it what happened
(:meth:`buffer_updated`, :meth:`receive_data`, :meth:`receive_eof`,
:meth:`connection_lost`) and asks what to do (:attr:`messages`,
:meth:`next_batch`, :meth:`take_outgoing`, :meth:`deadline`).

**Receiving, in batches.**  One read carries many frames, and the decoder
returns them as one list.  The current batch is :attr:`messages`, an iterator
the transport takes from directly (``for m in core.messages``), so handing out
a message that is already decoded runs no core code at all; with a serializer
the iterator is a ``map`` that deserializes each frame as it is taken (a frame
that fails costs that frame only: the iterator goes on with the next).  When
it runs out the transport calls :meth:`next_batch`, which raises a queued
error, decodes bytes held back, or says that more input is needed.  The
decoder is called again only once its previous batch is used up: bytes that
arrive earlier (an event loop reads ahead of a slow consumer) are held by the
core (one copy, only while the consumer lags) and decoded when needed.  So
the frames not yet handed to the caller always come from the decoder's last
call, which is what codec switching needs, nothing is decoded that a switch
would have to undo, and a batch never queues up behind another.

**Errors keep their place.**  A ``FramingError`` carries the frames decoded
before the bad bytes: they become a batch, and the error is queued right
after them, with its ``.frames`` emptied (they were delivered).  After it the
decoder may still hold complete frames, so :meth:`next_batch` calls
``feed(b"")`` before asking for more input (the peer may be waiting for a
reply and send nothing more).  A decoder that raises again without consuming
anything refuses all input (a corrupted length leaves no trustworthy frame
boundary): the stream ends with that error, raised by every later call.
Exceptions are stored without their traceback and raised with their local
reference dropped in a ``finally``, so no traceback ties an error to the
connection (and its decoder, and the half-received frame in it) in a cycle
that only the garbage collector could free.

**End of stream.**  :meth:`receive_eof` is acted upon once everything before
it has been handed out: the decoder's ``eof()`` raises ``IncompleteFrame``
(once) if a frame was cut off, then every call raises ``ConnectionClosed``.
A lost connection (:meth:`connection_lost` with an error) raises that error
once, after the messages received before it.

**Sending.**  :meth:`write` serializes and encodes one message onto the
outgoing buffers: a small payload as one encoded frame (one copy, with its
header), a ``bytes`` payload of ``VECTORED_MIN_SIZE`` or more as ``[header,
payload]`` (no copy; only ``bytes``, since the buffer may be kept until it is
written).  :meth:`take_outgoing` hands the transport everything to write, for
one ``sendmsg``/``writelines``.  The transport decides when: at once, or
later to coalesce.  The core says when coalescing is safe and useful
(:attr:`coalescing`): while decoded messages of the current batch are still
waiting, the caller is in the middle of a batch and will come back for the
next message before it waits for input, which is when the transport flushes.
That is how one read's replies go out in one system call, as Netty flushes
once per read (``channelReadComplete``).  A consumer that takes the whole
batch at once (:meth:`take_messages`, behind ``recv_batch()``) may be
answering it until it asks for the next batch (:meth:`next_batch`), or may
go and do something else: its replies are held back the same way only where
the transport flushes on its own soon after (``hold``: asyncio, at the end of
the event loop's iteration).

**Timeouts** are deadlines, not timers: the core records when input last
arrived and when the unfinished frame began (only when a timeout is set, so
the cost is one clock read per read), and :meth:`deadline` says until when the
transport may wait for input.  ``idle_timeout``: no byte for that long.
``frame_timeout``: a frame begun that long ago is still incomplete (the
slow-trickle defence).  :meth:`timed_out` builds the ``TimeoutError``.

**Switching codecs** (:meth:`switch_codec`) applies from the frame after the
last one handed to the caller: the decoder hands back, with ``detach``, the
bytes of the frames not yet handed out and everything after them, and a
decoder of the new codec starts on those.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Type, Union

from ..codecs.interface import Buffer, Codec
from ..errors import (
    BudgetExceeded,
    ConnectionClosed,
    FrameTooLarge,
    FramingError,
    SerializationError,
)
from ..serializers import Serializer, dumps, loads
from .budget import MemoryBudget
from .options import DEFAULT_READ_SIZE, VECTORED_MIN_SIZE

__all__ = ["COALESCE_MAX", "StreamCore"]

_EMPTY: Iterator[Any] = iter(())
_NONE_LEFT: Callable[[], int] = _EMPTY.__length_hint__  # type: ignore[attr-defined]

#: Writes held back while a batch is in use are flushed at this size anyway, so
#: a batch of large replies never piles up in memory.
COALESCE_MAX = 256 * 1024


class StreamCore:
    """The framing state of one stream connection, without I/O (see the module notes).

    Args:
        codec: the framing; its decoder is made here.
        serializer: messages go through ``dumps``/``loads`` when set.
        read_size: the least room asked of the decoder for each read.
        max_queued_frames: :attr:`over_limit` above this many messages waiting
            (None: no bound; for transports that read ahead).
        max_queued_bytes: :attr:`over_limit` above this many bytes waiting,
            decoded or not (None: no bound).
        idle_timeout: seconds without input before :meth:`timed_out`.
        frame_timeout: seconds a begun frame may take to complete.
        clock: the time source for the timeouts (``time.monotonic``, or the
            event loop's ``time``).

    Attributes:
        codec: the codec in use (changed by :meth:`switch_codec`).
        serializer: the serializer in use, or None; may be changed at any time.
        messages: the current batch: take messages from it directly.
        frames_in, bytes_in, frames_out, bytes_out: counters.
    """

    __slots__ = (
        "_bounded",
        "_budget",
        "_charged",
        "_clock",
        "_decoder",
        "_drain",
        "_end",
        "_eof",
        "_error",
        "_flushed",
        "_frame_started",
        "_frame_timeout",
        "_frames",
        "_held",
        "_holding",
        "_idle_timeout",
        "_last_input",
        "_left",
        "_lost",
        "_max_bytes",
        "_max_frames",
        "_read_size",
        "_refused",
        "_scratch",
        "_scratch_out",
        "_sink",
        "_sinking",
        "_stream_limit",
        "_stream_out",
        "_stream_pending",
        "_streamable",
        "_sunk",
        "_switchable",
        "_taken",
        "_taking",
        "_timed",
        "_unheld",
        "batch_bytes",
        "bytes_in",
        "bytes_out",
        "codec",
        "filling",
        "frames_in",
        "frames_out",
        "messages",
        "outgoing",
        "peer",
        "send_timeout",
        "serializer",
    )

    def __init__(
        self,
        codec: Codec,
        serializer: Optional[Serializer] = None,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        max_queued_frames: Optional[int] = None,
        max_queued_bytes: Optional[int] = None,
        idle_timeout: Optional[float] = None,
        frame_timeout: Optional[float] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.codec = codec
        self.serializer = serializer
        self._decoder = codec.decoder()
        self._switchable = hasattr(self._decoder, "detach")
        self._streamable = hasattr(self._decoder, "stream_begin")
        self._stream_limit = 0  # max_stream_size (0: frames stream up to max_frame_size)
        self._stream_pending = False  # a stream begun, not yet handed to the caller
        self._stream_out = False  # a frame is being sent in pieces (start_stream_out)
        self._read_size = read_size
        self._frames: Iterator[bytes] = _EMPTY
        #: ``self._frames.__length_hint__``: frames of the batch not handed out
        #: yet (operator.length_hint() costs eight times as much; this runs
        #: several times a read and once a send).
        self._left: Callable[[], int] = _NONE_LEFT
        self.messages: Iterator[Any] = _EMPTY
        self.batch_bytes = 0  # bytes of the current batch (counted only when bounded)
        self._error: Optional[BaseException] = None  # raised once the batch is used up
        self._drain = False  # after an error: feed(b"") before more input
        self._held = bytearray()  # input that arrived while a batch was in use
        self._scratch: Optional[bytearray] = None  # room for such input
        self._scratch_out = False  # the last get_buffer() view was the scratch
        self._sink: Optional[memoryview] = None  # the caller's buffer (offer_sink)
        self._sunk = 0  # bytes the transport wrote into it
        self._sinking = False  # the last get_buffer() view was the sink
        #: A sink is offered and not full: the reader need not be woken yet.
        self.filling = False
        self._taken = False  # the decoder took bytes without decoding them (max_frames=0)
        self._taking = False  # the last get_buffer() view is for such bytes
        self._eof = False  # end of input received, not yet acted upon
        self._lost: Optional[BaseException] = None  # the connection failed
        self._end: Optional[Tuple[Type[BaseException], str]] = None
        self._max_frames = max_queued_frames
        self._max_bytes = max_queued_bytes
        self._bounded = max_queued_frames is not None or max_queued_bytes is not None
        self._idle_timeout = idle_timeout
        self._frame_timeout = frame_timeout
        self._timed = idle_timeout is not None or frame_timeout is not None
        #: Seconds a send may wait for the peer to make room (it does not read,
        #: or far too slowly): the shorter timeout; None: no bound.  Transports abort the
        #: connection then and raise :meth:`send_timed_out`.
        self.send_timeout = (
            min(t for t in (idle_timeout, frame_timeout) if t is not None) if self._timed else None
        )
        self._clock = clock
        self._last_input = clock() if self._timed else 0.0
        self._frame_started: Optional[float] = None
        self.outgoing: List[Buffer] = []
        self.frames_in = self.bytes_in = self.frames_out = self.bytes_out = 0
        self._flushed = 0  # bytes_out at the last take_outgoing()
        #: Who is at the other end (an address URL), for error messages.
        self.peer = ""
        self._budget: Optional[MemoryBudget] = None
        self._charged = 0  # bytes charged to the budget
        self._refused = False  # the budget refused this connection: input is dropped
        self._holding = False  # a batch was taken whole: its replies may wait (coalescing)
        self._unheld = False  # a batch was taken whole, not to hold: frames left behind
        # an error in it do not make its replies wait

    def set_budget(self, budget: Optional[MemoryBudget]) -> None:
        """Charge what this connection holds to a server-wide budget (see
        :mod:`framekit.core.budget`); None: no budget."""
        self._release()
        self._budget = budget
        if budget is not None:
            self._bounded = True  # count each batch's bytes from now on
            self._recharge()

    def _recharge(self) -> None:
        budget = self._budget
        if budget is None:
            return
        held = (  # queued_bytes, inlined: this runs twice per read
            (self.batch_bytes if self._left() else 0) + len(self._held) + self._decoder.pending
        )
        delta = held - self._charged
        if not delta:
            return
        if budget.charge(delta):
            self._charged = held
        else:
            self._refuse(budget, held)

    def _refuse(self, budget: MemoryBudget, held: int) -> None:
        """The budget is used up: drop this connection's input, keep its messages."""
        self._refused = True
        self._held = bytearray()
        self._decoder = self.codec.decoder()  # drops the unfinished frame
        self._drain = self._taken = False
        if self._lost is None and self._end is None:
            self._lost = BudgetExceeded(
                f"memory budget used up: the server's connections hold {budget.used} bytes "
                f"of its max_buffered_bytes={budget.limit}, and this one asked for "
                f"{held - self._charged} more; refused",
                budget=budget.limit,
            )
        budget.charge(self.batch_bytes - self._charged)
        self._charged = self.batch_bytes

    def _release(self) -> None:
        if self._budget is not None and self._charged:
            self._budget.charge(-self._charged)
            self._charged = 0

    @property
    def refused(self) -> bool:
        """Whether the memory budget refused this connection (stop reading it)."""
        return self._refused

    # -- receiving: the transport's side ----------------------------------------

    def _busy(self) -> bool:
        """Whether the decoder must not decode: its last batch is not used up."""
        return bool(self._left() or self._error or self._drain or self._held or self._taken)

    def _stream_buffered(self) -> bool:
        """Whether the rest of an open stream's payload is already received: what
        comes next waits in the core (the decoder offers no room past a payload)."""
        if not self._streamable:
            return False
        left: int = self._decoder.stream_remaining  # type: ignore[attr-defined]
        return 0 < left <= self._decoder.pending

    def _can_take(self) -> bool:
        """Whether the decoder can take bytes now without decoding them (a switchable
        decoder, not after an error): no copy of a read-ahead."""
        return self._switchable and not (self._error or self._drain or self._held)

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Writable room to receive into (``recv_into``, ``BufferedProtocol.get_buffer``).

        Report what was written with :meth:`buffer_updated`.
        """
        size = sizehint if sizehint > self._read_size else self._read_size
        self._scratch_out = self._taking = self._sinking = False
        sink = self._sink
        if sink is not None and not self._refused and self._sunk < len(sink):
            self._sinking = True
            return sink[self._sunk :]
        if (
            self._refused
            or self._left()
            or self._error
            or self._drain
            or self._held
            or self._taken
            or (  # _stream_buffered(), inlined
                self._streamable and 0 < self._decoder.stream_remaining <= self._decoder.pending  # type: ignore[attr-defined]
            )
        ):  # not simply the decoder's room (the lines after the first are _busy(), inlined)
            if not self._refused and self._can_take() and not self._stream_buffered():
                self._taking = True
                return self._decoder.get_buffer(size)
            scratch = self._scratch
            if scratch is None or len(scratch) < size:
                self._scratch = scratch = bytearray(size)
            self._scratch_out = True
            return memoryview(scratch)
        return self._decoder.get_buffer(size)

    def buffer_updated(self, nbytes: int) -> None:
        """Take the ``nbytes`` just written into the last :meth:`get_buffer` view.

        Raises:
            ValueError: ``nbytes`` is more than the view offered.
        """
        self.bytes_in += nbytes
        decoded = False
        if self._refused:
            self._scratch_out = self._taking = False
            return
        if self._taking:
            self._taking = False
            self._decoder.buffer_updated(nbytes, 0)  # type: ignore[call-arg]
            self._taken = True
        elif self._sinking:
            self._sinking = False
            self._sunk += nbytes
            sink = self._sink
            self.filling = sink is not None and nbytes > 0 and self._sunk < len(sink)
            self.bytes_in -= nbytes  # counted again by stream_advance
            self.stream_advance(nbytes)
            return
        elif self._scratch_out:
            self._scratch_out = False
            scratch = self._scratch
            assert scratch is not None
            if not 0 <= nbytes <= len(scratch):
                raise ValueError(
                    f"buffer_updated({nbytes}): only {len(scratch)} bytes were offered"
                )
            self._held += memoryview(scratch)[:nbytes]
        else:
            decoded = self._decode(self._decoder.buffer_updated, nbytes)
        if self._timed:
            self._touch(decoded)
        if self._budget is not None:
            self._recharge()

    def receive_data(self, data: Buffer) -> None:
        """Take received bytes (for transports that get them as objects)."""
        self.bytes_in += len(data)
        if self._refused:
            return
        decoded = False
        if not self._busy():
            decoded = self._decode(self._decoder.feed, data)
        elif self._can_take():
            self._decoder.feed(data, 0)  # type: ignore[call-arg]
            self._taken = True
        else:
            self._held += data
        if self._timed:
            self._touch(decoded)
        if self._budget is not None:
            self._recharge()

    def receive_eof(self) -> None:
        """The peer finished sending.  Acted upon after what came before is handed out."""
        self._eof = True

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        """The connection is gone: ``exc`` is raised once after what came before, or a
        clean end if None."""
        if exc is None:
            self._eof = True
        elif self._lost is None and self._end is None:
            self._lost = self.lost_error(exc)

    def _closed_message(self) -> str:
        if self.bytes_in or not self.frames_out:
            return "the peer closed the connection"
        peer = f" ({self.peer})" if self.peer else ""
        return (
            f"the peer{peer} closed the connection before it sent anything: a server that "
            "expects TLS (use tls://), or one at its max_connections, does this"
        )

    def lost_error(self, exc: BaseException) -> BaseException:
        """The error a lost connection is reported with: a reset names the peer,
        and before anything was received, its likely cause."""
        if not isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            return exc.with_traceback(None)
        what = "reset" if isinstance(exc, ConnectionResetError) else "closed (broken pipe)"
        peer = f" to {self.peer}" if self.peer else ""
        message = f"connection{peer} {what} by the peer"
        if not self.bytes_in:
            message += (
                " before it sent anything: a server that expects TLS (use tls://), or one "
                "at its max_connections, closes connections this way"
            )
        made = type(exc)(exc.errno, message)
        made.__cause__ = exc.with_traceback(None)
        return made

    def _decode(self, call: Callable[[Any], List[bytes]], arg: Any) -> bool:
        """Decode into a new batch and a queued error; return whether anything came out."""
        try:
            frames = call(arg)
        except FramingError as exc:
            frames, exc.frames = exc.frames, []
            self._set_batch(frames)
            # Without its traceback: the decoder's frames in it (and any local
            # there that holds the error) would tie it to the decoder in a cycle.
            self._error = exc.with_traceback(None)
            self._drain = True  # frames may be buffered behind the bad ones
            return True
        if frames:
            self._set_batch(frames)
            return True
        return False

    def _set_batch(self, frames: List[bytes]) -> None:
        self.frames_in += len(frames)
        self._frames = it = iter(frames)
        self._left = it.__length_hint__  # type: ignore[attr-defined]
        self.messages = it if self.serializer is None else map(self._loads, it)
        if self._bounded:
            self.batch_bytes = sum(map(len, frames))

    def take_messages(self, hold: bool = False) -> List[Any]:
        """Every message of the current batch not handed out yet, as a list:
        empty when there is none (then call :meth:`next_batch`).

        ``hold``: until the next :meth:`next_batch`, writes may be held back
        as they are while a batch's messages wait (:attr:`coalescing`): the
        caller is answering that batch.  Only for a transport that also
        flushes on its own soon (asyncio: at the end of the loop's iteration),
        since the caller may do anything before it asks for more.

        With a serializer, a frame that does not deserialize ends the list
        before it; the call after raises its
        ``SerializationError`` (at once when it is the first), and the
        messages after it come next, as :attr:`messages` gives them.

        Raises:
            SerializationError: the first frame did not deserialize (it is
                used up, as in :attr:`messages`).
        """
        frames = self._frames
        if self.serializer is None:
            out: List[Any] = list(frames)
        else:
            out = []
            loads = self._loads
            for frame in frames:
                try:
                    out.append(loads(frame))
                except SerializationError:
                    if not out:
                        raise
                    rest = [frame]
                    rest.extend(frames)  # that frame and the ones after it wait
                    self._frames = it = iter(rest)
                    self._left = it.__length_hint__  # type: ignore[attr-defined]
                    self.messages = map(loads, it)
                    self._unheld = not hold  # ...but the caller answers this list now
                    break
        if out and hold:
            self._holding = True
        return out

    def _loads(self, frame: bytes) -> Any:
        serializer = self.serializer
        return frame if serializer is None else loads(serializer, frame)

    # -- receiving: the consumer's side -------------------------------------------

    def next_batch(self) -> bool:
        """Make the next messages current in :attr:`messages`, once it ran out.

        Returns:
            True when messages are available, False when more input is needed.

        Raises:
            FramingError: a decoding error, after the frames decoded before it.
            OSError: the error the connection was lost with (once).
            IncompleteFrame: the stream ended inside a frame (once).
            ConnectionClosed: the stream ended; raised by every later call.
        """
        if self._streamable and self._end is None and self._decoder.stream_remaining:  # type: ignore[attr-defined]
            raise ValueError(
                "a frame is being read as a stream: read it to its end or close it first"
            )
        self._holding = self._unheld = False
        if self._left():
            return True  # the current batch is not used up: nothing changed to recharge
        try:
            return self._next_batch(False)
        finally:
            if self._budget is not None:
                self._recharge()

    def _next_batch(self, hold: bool) -> bool:
        """See :meth:`next_batch`; ``hold``: leave a frame held for streaming alone
        (else it is refused, as above ``max_frame_size``)."""
        if self._left():
            return True  # the current batch is not used up (a caller looked twice)
        while True:
            error: Optional[BaseException] = self._error
            if error is not None:
                self._error = None
                self._frames = self.messages = _EMPTY
                self._left = _NONE_LEFT
                try:
                    raise error
                finally:
                    error = None  # no traceback -> frame -> error cycle
            if self._end is not None:
                exc_type, message = self._end
                raise exc_type(message)
            if self._drain:
                if self._drain_decoder():
                    return True
                continue
            # A decode that only raised (no frame before the error) makes an empty
            # batch: go round, and the error is raised at the top.
            if self._taken:
                self._taken = False
                if self._decode(self._decoder.feed, b"") and self._left():
                    return True
                continue
            held = self._held
            if held:
                self._held = bytearray()
                if self._decode(self._decoder.feed, held) and self._left():
                    return True
                continue
            self._frames = self.messages = _EMPTY
            self._left = _NONE_LEFT
            self.batch_bytes = 0
            lost = self._lost
            if lost is not None:
                self._lost = None
                self._end = (ConnectionClosed, "the connection was lost")
                try:
                    raise lost
                finally:
                    del lost
            if self._eof:
                self._end = (ConnectionClosed, self._closed_message())
                self._decoder.eof()  # IncompleteFrame (once) if a frame was cut off
                continue
            if not hold and self._streamable and self._decoder.stream_held:  # type: ignore[attr-defined]
                self._refuse_stream()
            return False

    def _drain_decoder(self) -> bool:
        """After an error: decode the frames the decoder holds behind the bad bytes.

        Returns True if a batch became current.  A decoder that raises again
        without consuming anything refuses all input: the stream ends with
        that error.
        """
        decoder = self._decoder
        self._drain = self._taken = False
        pending = decoder.pending
        try:
            frames = decoder.feed(b"")
        except FramingError as exc:
            if not exc.frames and decoder.pending >= pending:
                self._end = (type(exc), str(exc))  # stuck: it refuses all input
                self._held = bytearray()
                return False
            frames, exc.frames = exc.frames, []
            self._set_batch(frames)
            self._error = exc.with_traceback(None)
            self._drain = True
            return bool(frames)
        if frames:
            self._set_batch(frames)
            return True
        return False

    @property
    def ended(self) -> bool:
        """Whether the end was reached: every later :meth:`next_batch` raises."""
        return self._end is not None

    @property
    def queued_frames(self) -> int:
        """Decoded frames waiting to be handed out."""
        return self._left()

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting: the current batch (counted whole, and only when the core is
        bounded), input held back, and what the decoder holds."""
        batch = self.batch_bytes if self._left() else 0
        return batch + len(self._held) + self._decoder.pending

    @property
    def over_limit(self) -> bool:
        """More is waiting than ``max_queued_frames``/``max_queued_bytes`` allow."""
        if self._max_frames is not None and self._left() > self._max_frames:
            return True
        return self._max_bytes is not None and self.queued_bytes > self._max_bytes

    @property
    def under_half(self) -> bool:
        """At most half of each bound is in use (the point to resume reading)."""
        if self._max_frames is not None and self._left() > self._max_frames // 2:
            return False
        return self._max_bytes is None or self.queued_bytes <= self._max_bytes // 2

    @property
    def pending(self) -> int:
        """Bytes received that belong to no frame handed out or decoded yet."""
        return self._decoder.pending + len(self._held)

    def discard_received(self) -> None:
        """Drop everything received and not handed out (the connection was closed
        locally): every later :meth:`next_batch` raises ``ConnectionClosed``."""
        self._frames = self.messages = _EMPTY
        self._left = _NONE_LEFT
        self.batch_bytes = 0
        self._error = None
        self._drain = self._taken = False
        self._held = bytearray()
        if self._end is None:
            self._end = (ConnectionClosed, "the connection was closed")
        self._release()

    # -- frames as streams ---------------------------------------------------------

    def set_stream_limit(self, max_stream_size: Optional[int]) -> None:
        """Frames above ``max_frame_size`` up to ``max_stream_size`` (the codec's
        frame length, header included) can be read as streams (:meth:`open_stream`);
        a plain read refuses them with ``FrameTooLarge``."""
        self._stream_limit = max_stream_size or 0
        if self._streamable:
            self._decoder.stream_limit = self._stream_limit  # type: ignore[attr-defined]

    def open_stream(self) -> Union[bytes, int, None]:
        """Begin reading the next frame as a stream.

        Returns:
            The frame as ``bytes`` if it is already whole (decoded: read it in
            one piece), its payload's length if streaming began (read it with
            :meth:`stream_read`/:meth:`stream_advance`), or None: more input
            is needed first.

        Raises:
            TypeError: the codec cannot stream (see :class:`framekit.Decoder`).
            ValueError: a stream is already open.
            FrameTooLarge: the frame is above ``max_stream_size``; it is
                skipped before a byte of its payload is read.
            FramingError, OSError, ConnectionClosed: as :meth:`next_batch`.
        """
        if self._stream_pending:
            self._stream_pending = False
            return self.stream_remaining
        if self.stream_remaining:
            raise ValueError("a stream is already open: read it to its end or discard it")
        for frame in self._frames:
            return frame
        try:
            if self._next_batch(True):
                for frame in self._frames:
                    return frame
            if not self._streamable:
                raise TypeError(
                    f"{self.codec!r} cannot read a frame as a stream: its decoder has no "
                    "stream_begin() (see framekit.Decoder); use recv()"
                )
            if self._busy():
                return None  # bytes held back: decoded on the next look
            length: int = self._decoder.stream_begin()  # type: ignore[attr-defined]
        finally:
            if self._budget is not None:
                self._recharge()
        if length < 0:
            return None
        if not length:
            self._taken = True
        return length

    @property
    def stream_remaining(self) -> int:
        """Payload bytes of the open stream not yet read (0: none open)."""
        if not self._streamable:
            return 0
        return self._decoder.stream_remaining  # type: ignore[attr-defined,no-any-return]

    def stream_read(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of the open stream's payload that are already
        received (``b""``: read more, or take it straight from the socket and
        say so with :meth:`stream_advance`)."""
        data: bytes = self._decoder.stream_read(max_bytes)  # type: ignore[attr-defined]
        if data and not self.stream_remaining:
            self._taken = True  # what follows the payload is decoded on the next look
        if self._budget is not None:
            self._recharge()
        return data

    def stream_advance(self, nbytes: int) -> None:
        """The transport read ``nbytes`` of the payload straight from its socket."""
        self._decoder.stream_advance(nbytes)  # type: ignore[attr-defined]
        self.bytes_in += nbytes
        if self._timed:
            self._last_input = self._clock()
        if not self.stream_remaining:
            self._taken = True

    def offer_sink(self, view: memoryview) -> None:
        """Let the transport read the open stream's payload straight into ``view``
        (the caller's buffer, no longer than the payload left): while it is
        offered, :meth:`get_buffer` returns what is left of it, and
        :attr:`filling` says it is not full yet (the transport need not wake
        the reader for each read).  For transports whose reads go where
        :meth:`get_buffer` says (asyncio's ``BufferedProtocol``); take it back
        with :meth:`take_sink`."""
        self._sink = view
        self._sunk = 0
        self.filling = True

    def take_sink(self) -> int:
        """Stop offering the sink; return how many bytes were read into it."""
        sunk, self._sunk = self._sunk, 0
        self._sink = None
        self._sinking = self.filling = False
        return sunk

    def stream_discard(self) -> None:
        """Skip the rest of the open stream's payload (it is dropped as it arrives)."""
        self._stream_pending = False
        if self.stream_remaining:
            self._decoder.stream_discard()  # type: ignore[attr-defined]
            self._taken = True

    def keep_stream(self) -> None:
        """Leave the stream just opened for the next read: ``recv_stream()`` takes
        it, ``recv()`` takes it whole if it is not above ``max_frame_size``."""
        self._stream_pending = True

    @property
    def stream_kept(self) -> int:
        """The payload length of a stream kept by :meth:`keep_stream`, or -1."""
        return self._decoder.stream_remaining if self._stream_pending else -1  # type: ignore[attr-defined]

    def take_kept_stream(self) -> int:
        """For a plain read of a kept stream: its payload length if it may be
        read whole (not above ``max_frame_size``); else it is skipped and
        ``FrameTooLarge`` raised."""
        length = self.stream_remaining
        if length > getattr(self.codec, "max_frame_size", length):
            self._refuse_stream()
        self._stream_pending = False
        return length

    @property
    def input_ended(self) -> bool:
        """Whether no more input will come (end of stream, or the connection lost)."""
        return self._eof or self._lost is not None or self._end is not None

    def stream_cut(self) -> None:
        """The input ended inside the open stream: raise ``IncompleteFrame``."""
        lost = self._lost
        self._eof = True
        self._end = (ConnectionClosed, "the peer closed the connection")
        if lost is not None:
            self._lost = None
            try:
                raise lost
            finally:
                del lost
        self._decoder.eof()
        raise AssertionError("a decoder's eof() inside a stream must raise")  # pragma: no cover

    def message(self, frame: bytes) -> Any:
        """A frame as the message it carries (through the serializer, if any)."""
        return self._loads(frame)

    def put_back(self, frame: bytes) -> None:
        """Make ``frame`` the next message again (a caller looked at it and left it)."""
        rest = list(self._frames)
        self._frames = it = iter([frame, *rest])
        self._left = it.__length_hint__  # type: ignore[attr-defined]
        self.messages = it if self.serializer is None else map(self._loads, it)

    def _refuse_stream(self) -> None:
        """A plain read met a frame above ``max_frame_size``: skip it, raise."""
        decoder: Any = self._decoder
        self._stream_pending = False
        if not decoder.stream_remaining:
            decoder.stream_begin()
        length = decoder.stream_remaining
        decoder.stream_discard()
        self._taken = True
        maximum = getattr(self.codec, "max_frame_size", 0)
        raise FrameTooLarge(
            f"frame of {length} payload bytes exceeds max_frame_size {maximum}; "
            "discarding it (recv_stream() can read it as a stream)",
            frame_length=length,
            max_frame_size=maximum,
        )

    def stream_header(self, length: int, prefix: Optional[Buffer] = None) -> bytes:
        """The header of a frame whose ``length``-byte payload is sent in pieces.

        Raises:
            TypeError: the codec has no header of its own (only
                length-prefixed framings can send a frame in pieces).
            FrameTooLarge: the frame is above ``max_stream_size`` (or
                ``max_frame_size`` when that is larger).
        """
        codec: Any = self.codec
        if not (hasattr(codec, "header") and hasattr(codec, "length_size")):
            raise TypeError(
                f"{codec!r} cannot send a frame in pieces: only a length-prefixed "
                "framing (framekit.LengthPrefixed) announces a frame's length first"
            )
        limit = max(self._stream_limit, codec.max_frame_size)
        options: Dict[str, Any] = {"max_frame_size": limit}
        if prefix is not None:
            options["prefix"] = prefix
        header: bytes = codec.header(length, **options)
        self.frames_out += 1
        self.bytes_out += len(header)
        return header

    def start_stream_out(self, length: int, prefix: Optional[Buffer] = None) -> List[Buffer]:
        """Begin sending a frame whose ``length``-byte payload goes out in pieces.

        Returns what to write first: the writes held back, then the frame's
        header.  Until :meth:`end_stream_out`, :meth:`take_outgoing` hands out
        nothing, so a frame another task sends meanwhile waits its turn
        instead of landing inside this one.

        Raises:
            As :meth:`stream_header`; nothing changes then.
        """
        header = self.stream_header(length, prefix)
        parts = self.take_outgoing()
        parts.append(header)
        self._stream_out = True
        return parts

    def end_stream_out(self, sent: int) -> None:
        """The frame begun by :meth:`start_stream_out` is over (``sent`` payload
        bytes went out); what was held back meanwhile may go."""
        self._stream_out = False
        self.bytes_out += sent

    # -- timeouts -------------------------------------------------------------------

    def _touch(self, decoded: bool) -> None:
        now = self._clock()
        self._last_input = now
        decoder = self._decoder
        if not decoder.pending or (self._streamable and decoder.stream_remaining):  # type: ignore[attr-defined]
            self._frame_started = None
        elif decoded or self._frame_started is None:
            self._frame_started = now

    def deadline(self) -> Optional[float]:
        """Until when (by the clock) the transport may wait for input; None: forever."""
        if not self._timed:
            return None
        deadline = None
        if self._idle_timeout is not None:
            deadline = self._last_input + self._idle_timeout
        if self._frame_timeout is not None and self._frame_started is not None:
            end = self._frame_started + self._frame_timeout
            deadline = end if deadline is None else min(deadline, end)
        return deadline

    def wait_time(self) -> Optional[float]:
        """Seconds the transport may wait for input from now (<= 0: a deadline has
        passed, see :meth:`timed_out`); None: no timeout is set."""
        if not self._timed:
            return None
        deadline = self.deadline()
        return None if deadline is None else deadline - self._clock()

    def timed_out(self) -> Optional[TimeoutError]:
        """The ``TimeoutError`` for a deadline that has passed, or None if none has.

        Reporting it starts the period again: a caller that catches it and
        waits once more gets a whole new period, not an error at once.
        """
        if not self._timed:
            return None
        now = self._clock()
        error = None
        if (
            self._frame_timeout is not None
            and self._frame_started is not None
            and now >= self._frame_started + self._frame_timeout
        ):
            error = TimeoutError(
                f"frame_timeout: a frame begun {now - self._frame_started:.1f} s ago is "
                f"still incomplete ({self._decoder.pending} bytes of it received)"
            )
        elif self._idle_timeout is not None and now >= self._last_input + self._idle_timeout:
            error = TimeoutError(
                f"idle_timeout: nothing received for {now - self._last_input:.1f} s"
            )
        if error is not None:
            self._last_input = now
            if self._frame_started is not None:
                self._frame_started = now
        return error

    # -- sending ----------------------------------------------------------------------

    def write(self, payload: Any, prefix: Optional[Buffer] = None) -> bool:
        """Serialize and encode one message onto :attr:`outgoing`.

        Returns:
            :attr:`coalescing` after it: whether the transport may hold the
            write back (one look instead of two on the hottest path).

        Raises:
            SerializationError: the serializer failed.
            FrameTooLarge, ValueError: the codec cannot frame it.
            TypeError: ``payload`` is not bytes-like (a ``str`` is told how to fix it).
        """
        if self.serializer is not None:
            payload = dumps(self.serializer, payload)
        try:
            if type(payload) is not bytes or len(payload) < VECTORED_MIN_SIZE:
                if prefix is None:
                    data = self.codec.encode(payload)
                else:
                    data = self.codec.encode(payload, prefix=prefix)
                self.outgoing.append(data)
                out = self.bytes_out = self.bytes_out + len(data)
            else:
                if prefix is None:
                    parts = self.codec.encode_parts(payload)
                else:
                    parts = self.codec.encode_parts(payload, prefix=prefix)
                self.outgoing.extend(parts)
                out = self.bytes_out = self.bytes_out + sum(map(len, parts))
        except TypeError:
            _check_payload(payload)
            raise
        self.frames_out += 1
        return out - self._flushed < COALESCE_MAX and (
            (self._left() > 0 and not self._unheld) or self._holding
        )

    def write_many(self, payloads: Iterable[Any], prefix: Optional[Buffer] = None) -> None:
        """Serialize and encode several messages as one buffer onto :attr:`outgoing`.

        Nothing is added if any of them cannot be framed.

        Raises:
            As :meth:`write`.
        """
        if self.serializer is not None:
            payloads = [dumps(self.serializer, p) for p in payloads]
        elif not isinstance(payloads, (list, tuple)):
            payloads = list(payloads)
        codec = self.codec
        try:
            data = (
                codec.encode_many(payloads)
                if prefix is None
                else codec.encode_many(payloads, prefix=prefix)
            )
        except TypeError:
            for payload in payloads:
                _check_payload(payload)
            raise
        self.outgoing.append(data)
        self.bytes_out += len(data)
        self.frames_out += len(payloads)

    def take_outgoing(self) -> List[Buffer]:
        """Everything to write, in order, for one vectored write; clears :attr:`outgoing`.

        Nothing while a frame is being sent in pieces (see :meth:`start_stream_out`).
        """
        if self._stream_out:
            return []
        out, self.outgoing = self.outgoing, []
        self._flushed = self.bytes_out
        return out

    @property
    def coalescing(self) -> bool:
        """Whether writes may wait: messages of the current batch are still waiting,
        so the caller comes back for the next one before it waits for input, and
        less than :data:`COALESCE_MAX` bytes wait to be written."""
        return (
            (self._left() > 0 and not self._unheld) or self._holding
        ) and self.bytes_out - self._flushed < COALESCE_MAX

    def send_timed_out(self) -> TimeoutError:
        """The error for a send that waited :attr:`send_timeout` seconds while the
        peer took nothing (the transport aborts the connection)."""
        who = f"the peer ({self.peer})" if self.peer else "the peer"
        return TimeoutError(
            f"send: {who} made no room for more bytes in {self.send_timeout:g} s (it "
            "does not read what it is sent, or far too slowly); the connection was aborted"
        )

    # -- switching codecs ---------------------------------------------------------------

    def switch_codec(self, codec: Codec) -> None:
        """Decode with ``codec`` from the frame after the last one handed out.

        Frames decoded but not yet handed out, an error after them and bytes
        not yet decoded all go to the new codec as the bytes they came from.

        Raises:
            TypeError: the current codec's decoder cannot hand back what it
                holds (it has no ``detach``) while it holds something.
            ValueError: the decoder cannot go back there (it is skipping the
                rest of an oversized frame, or the stream is corrupt).
        """
        decoder = self._decoder
        unused = self._left()
        if self._switchable:
            rest = decoder.detach(unused)  # type: ignore[attr-defined]
        elif unused or self._error or decoder.pending:
            raise TypeError(
                f"cannot switch codecs: {self.codec!r} cannot hand back the bytes its "
                "decoder holds (its decoder has no detach(); see framekit.Decoder)"
            )
        else:
            rest = b""
        held, self._held = self._held, bytearray()
        self._taken = False
        self.codec = codec
        self._decoder = codec.decoder()
        self._switchable = hasattr(self._decoder, "detach")
        self._streamable = hasattr(self._decoder, "stream_begin")
        self.set_stream_limit(self._stream_limit)
        self._frames = self.messages = _EMPTY
        self._left = _NONE_LEFT
        self.batch_bytes = 0
        self._error = None
        self._drain = False
        data = bytes(rest) + held if held else rest
        if data:
            self._decode(self._decoder.feed, data)


def _check_payload(payload: Any) -> None:
    if isinstance(payload, str):
        raise TypeError(
            "cannot send a str: encode it to bytes (payload.encode()), "
            "or give the connection a serializer= (e.g. framekit.serializers.JSON)"
        ) from None
