"""``framekit send-file`` and ``framekit recv-file``: files over one framed connection.

Design notes
------------
The tutorials' file sender writes the bytes and closes the socket to say "the
end"; its receiver cannot tell a finished file from a dropped connection, and
never learns the name or checks the content.  These two commands drive the
protocol of :mod:`framekit.apps.transfer` (header with name, size and sha256, chunks
of at most 1 MiB, end, acknowledgement with the receiver's digest) over any
stream transport, with the codec options every subcommand shares.

**Memory.**  The sender reads each chunk with ``readinto`` into one reused
buffer whose first byte is the chunk type, and sends a memoryview of it: the
codec sends header and payload with one vectored write, so the data is copied
from the file into that buffer and nowhere else.  The receiver writes each
chunk as it arrives.  Neither end holds more than a chunk or two, whatever the
file size.

**Sender.**  Every path is checked (a regular file, a safe and unique name)
before connecting, and every file is hashed before connecting too, so the
receiver never waits on a sender that is busy hashing.  The receiver may
refuse a file before its data (it exists, the name is unsafe, no room) or fail
it midway (a full disk); between chunks the sender looks, without blocking,
for such an early refusal and stops sending that file.  A failed file is
reported and the next one is tried; a broken connection ends the session.
The acknowledgement must repeat the announced size and digest: a receiver
that acknowledges anything else is reported as a failure.

**Receiver.**  A listening server (any stream address) that runs one
:class:`framekit.apps.transfer.Receiver` per connection.  By default it serves one
session and exits, with status 1 if any file failed (the tutorial's
receiver, made correct), or 130 if Ctrl-C came first; ``--keep-serving``
serves until Ctrl-C (or SIGTERM), then exits with 1 if any file failed.
Only a connection whose first frame is a well-formed header is a session: a
port probe, a peer that sends anything else (garbage, a malformed header such
as ``H{}``), or a connection that sends nothing for ``--timeout`` seconds
(every read is bounded), is logged and dropped, and recv-file goes on
listening for the real sender.  Without ``--keep-serving``, a second sender
that comes while the session runs is refused with an ``X`` frame.
``--max-connections`` (default :data:`DEFAULT_MAX_CONNECTIONS`) bounds the
connections, hence the threads, held at once: idle sockets cost at most that
many threads, each for at most ``--timeout`` seconds.

``--out`` is created, with any missing parents, as ``mkdir -p`` would (and
the log says so); a directory that cannot be written to is refused before
anything listens, with the system's reason.  At start, temporary files that
a killed receiver left there are removed
(:func:`framekit.apps.transfer.remove_stale_parts`: only those no live
receiver holds).

**Ctrl-C.**  recv-file stops at once: a file being received is removed and
reported as interrupted (not as a lost connection), and it exits with 130,
or, with ``--keep-serving``, with 1 if a file failed.  send-file says which
file was cut short and how many were sent, then exits with 130.

**Exit status.**  Non-zero on any failure, with one line per failure on
stderr.  Progress bars (bytes, rate, ETA) are drawn on stderr only when it is
a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import logging
import os
import select
import socket
import stat
import tempfile
import threading
from typing import Any, Callable, List, NamedTuple, Optional, Tuple

from ...addresses import Address, parse_address
from ...codecs.interface import Codec
from ...core.options import FRAME_TIMEOUT
from ...errors import ConnectionClosed, FramingError
from ...sync import FramedSocket, connect, serve
from ..errors import CommandError, describe_error
from ..hints import decoding_hint
from ..transfer import (
    _MAX_INFO_BYTES,
    ACK,
    CHUNK,
    CHUNK_SIZE,
    END,
    ERROR,
    HEADER,
    READY,
    FileInfo,
    ProtocolError,
    Receiver,
    TransferError,
    check_name,
    decode_info,
    encode_ack,
    encode_error,
    encode_header,
    parse_reply,
    remove_stale_parts,
)
from .options import (
    add_codec_arguments,
    add_tls_arguments,
    codec_from_args,
    peer_name,
    ssl_context_from_args,
)
from .progress import Progress
from .serve import stop_signals

__all__ = ["file_codec", "recv", "send", "send_file"]

logger = logging.getLogger("framekit")

#: Room left in a frame for the codec's header and the chunk's type byte.
_FRAME_OVERHEAD = 64
#: recv-file's --max-connections default: a sender or a few, and room for port probes.
DEFAULT_MAX_CONNECTIONS = 16
#: How a file cut short by Ctrl-C on the receiving side is reported.
_STOPPED = "recv-file was stopped (Ctrl-C)"


class Command(NamedTuple):
    """A subcommand of :mod:`framekit.apps.cli`: its options and its body."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _add_common(parser: argparse.ArgumentParser, *, server: bool) -> None:
    add_codec_arguments(parser)
    add_tls_arguments(parser, server=server)


def file_codec(args: argparse.Namespace) -> Tuple[Codec, int]:
    """The codec for a file session, and the chunk size its frames allow.

    The chunk size is capped by the maximum frame size and by what the length
    field can carry (a 2-byte field: under 64 KiB).  Then every kind of frame
    the protocol sends (replies, the end frame, the largest header, a full
    chunk) goes through ``encode()`` and a fresh decoder, and must come back
    as it was: a framing that cannot carry them (a 1-byte length field, a
    length adjustment that one-byte frames cannot have, ``--strip 0``) is
    refused here, in one line, rather than failing mid-session.

    Raises:
        CommandError: ``--codec lines`` (it cannot carry binary data), a
            maximum frame size too small for any chunk, or a framing that
            does not carry the protocol's frames unchanged.
    """
    if getattr(args, "codec", None) == "lines":
        raise CommandError(
            "--codec lines cannot carry file data (a chunk may contain newlines); "
            "use --codec length or --codec netstring"
        )
    codec = codec_from_args(args)
    max_frame = getattr(codec, "max_frame_size", None)
    chunk = CHUNK_SIZE
    if max_frame is not None:
        chunk = min(CHUNK_SIZE, max_frame - _FRAME_OVERHEAD)
        if chunk < 1024:
            raise CommandError(
                f"--max-frame-size {max_frame} is too small for file transfer (at least "
                f"{1024 + _FRAME_OVERHEAD} bytes; chunks of up to 1 MiB are sent)"
            )
    chunk = min(chunk, _largest_frame(codec, 1 + chunk) - 1)
    info = FileInfo("f", 0, "0" * 64)
    samples = [
        ("a ready reply", READY),
        ("an end frame", END),
        ("an acknowledgement", encode_ack(info)),
        ("an error reply", encode_error("refused")),
        ("a header", encode_header(info)),
        ("the largest header or reply", HEADER + b"x" * _MAX_INFO_BYTES),
        ("a full chunk", CHUNK + bytes(max(chunk, 0))),
    ]
    for what, frame in samples:
        decoded: Any
        try:
            decoded = codec.decoder().feed(codec.encode(frame))
        except Exception as exc:  # any failure means the same: it cannot be used
            decoded = exc
        if decoded != [frame]:
            raise CommandError(
                f"this framing cannot carry file transfer: {what} "
                f"({len(frame)} bytes) {_what_went_wrong(decoded)}"
            )
    return codec, chunk


def _largest_frame(codec: Codec, limit: int) -> int:
    """The largest frame size up to ``limit`` that ``codec.encode()`` accepts (0: none)."""

    def fits(n: int) -> bool:
        try:
            codec.encode(CHUNK + bytes(n - 1))
        except Exception:  # a length field too small, a frame too large...
            return False
        return True

    if fits(limit):
        return limit
    low, high = 0, limit  # fits(low) or low == 0; not fits(high)
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return low


def _what_went_wrong(decoded: Any) -> str:
    if isinstance(decoded, Exception):
        return f"cannot be encoded: {describe_error(decoded)}"
    if len(decoded) == 1:
        return "comes back changed (is --strip set?)"
    return f"comes back as {len(decoded)} frames"


# --- send-file --------------------------------------------------------------------


def _add_send_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("address", help="the receiver: tcp://HOST:PORT, tls://, unix:///PATH")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files to send")
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="limit for connecting and for each wait on the receiver (default 60; 0: no limit)",
    )
    _add_common(parser, server=False)


class _Offer(NamedTuple):
    path: str
    info: FileInfo


def _offer(path: str) -> _Offer:
    """Check ``path`` and hash it (streaming)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise CommandError(f"{path}: not a regular file")
        name = check_name(os.path.basename(path))
        digest = hashlib.sha256()
        size = 0
        with open(path, "rb") as f:
            buffer = bytearray(CHUNK_SIZE)
            view = memoryview(buffer)
            while n := f.readinto(buffer):
                digest.update(view[:n])
                size += n
    except TransferError as exc:
        raise CommandError(f"{path}: {exc}") from None
    except OSError as exc:
        raise CommandError(describe_error(exc)) from None
    return _Offer(path, FileInfo(name, size, digest.hexdigest()))


def _offers(paths: List[str]) -> List[_Offer]:
    offers = [_offer(p) for p in paths]
    seen: dict[str, str] = {}
    for offer in offers:
        other = seen.get(offer.info.name)
        if other == offer.path:
            raise CommandError(f"{other} is given twice")
        if other is not None:
            raise CommandError(f"{other} and {offer.path} would both be named {offer.info.name}")
        seen[offer.info.name] = offer.path
    return offers


class _Refused(Exception):
    """The receiver refused or failed one file; the session goes on."""


def send_file(conn: FramedSocket, offer: _Offer, chunk_size: int = CHUNK_SIZE) -> FileInfo:
    """Send one file over ``conn`` and return what the receiver acknowledged.

    The file is opened before its header goes out, so a file that cannot be
    read fails alone, before the receiver hears of it.  A read error midway
    ends the file early (its end frame follows at once: the receiver answers
    "size mismatch" and the session stays in step).  Reads never go past the
    announced size but by one byte: a file that grew is sent that byte, which
    the receiver refuses ("more data than announced"), so it never saves it.

    Raises:
        _Refused: the receiver refused the file or failed to store it.
        TransferError: the file cannot be read or changed, or the
            acknowledgement does not match; the session can go on.
        ProtocolError, ConnectionError, OSError: the session cannot go on.
    """
    info = offer.info
    try:
        f = open(offer.path, "rb")  # noqa: SIM115 - the with-block below closes it
    except OSError as exc:
        raise TransferError(_unreadable(offer, exc)) from None
    with f:
        conn.send(encode_header(info))
        kind, value = parse_reply(conn.recv())
        if kind == ERROR:
            raise _Refused(value)
        if kind != READY:
            raise ProtocolError(f"the receiver answered a header with {kind!r}")
        sent = 0
        early: Optional[Tuple[bytes, Any]] = None
        problem: Optional[str] = None  # a local failure: it is what gets reported
        buffer = bytearray(1 + chunk_size)
        buffer[0] = CHUNK[0]
        view = memoryview(buffer)
        with Progress(info.name, info.size) as bar:
            while True:
                remaining = info.size - sent
                try:  # one byte beyond the announced size tells a file that grew
                    n = f.readinto(view[1 : 1 + min(chunk_size, remaining + 1)])
                except OSError as exc:
                    problem = _unreadable(offer, exc)
                    break
                if not n:
                    break
                conn.send(view[: 1 + n])
                if n > remaining:
                    problem = _changed(info)
                    break
                sent += n
                bar.update(sent)
                early = _early_reply(conn)
                if early is not None:
                    break
        conn.send(END)
        kind, value = early if early is not None else parse_reply(conn.recv())
    if problem is None and early is None and sent != info.size:
        problem = _changed(info)  # it shrank
    if problem is not None and kind in (ERROR, ACK):
        raise TransferError(problem)
    if kind == ERROR:
        raise _Refused(value)
    if early is not None or kind != ACK:
        raise ProtocolError(f"unexpected {kind!r} reply from the receiver during {info.name}")
    if value != info:
        raise TransferError(
            f"{info.name}: the receiver acknowledged {value.size} bytes with sha256 "
            f"{value.sha256}, but {info.size} bytes with sha256 {info.sha256} were sent"
        )
    return info


def _unreadable(offer: _Offer, exc: OSError) -> str:
    return f"{offer.path}: cannot read: {exc.strerror or describe_error(exc)}"


def _changed(info: FileInfo) -> str:
    return f"{info.name} changed while it was being sent"


def _early_reply(conn: FramedSocket) -> Optional[Tuple[bytes, Any]]:
    """A reply that arrived while sending (a refusal), or ``None``.  Never blocks."""
    sock = conn.socket
    pending = getattr(sock, "pending", None)  # TLS may hold decrypted bytes
    if not (pending and pending()) and not select.select([sock], [], [], 0)[0]:
        return None
    return parse_reply(conn.recv())


def _run_send(args: argparse.Namespace) -> int:
    address = parse_address(args.address)
    if address.is_datagram:
        raise CommandError(f"send-file needs a stream address (tcp, tls, unix), not {address}")
    _check_timeout(args)
    codec, chunk_size = file_codec(args)
    context = ssl_context_from_args(args, address, server=False)
    try:
        offers = _offers(args.paths)
    except KeyboardInterrupt:
        logger.error("interrupted while reading the files to send; nothing was sent")
        raise
    failures = 0
    sent = 0
    offer: Optional[_Offer] = None
    try:
        with connect(address, codec, timeout=args.timeout or None, ssl=context) as conn:
            assert isinstance(conn, FramedSocket)
            for offer in offers:
                try:
                    send_file(conn, offer, chunk_size)
                    sent += 1
                except _Refused as exc:
                    logger.error("%s: refused by the receiver: %s", offer.path, exc)
                    failures += 1
                except TransferError as exc:
                    if isinstance(exc, ProtocolError):
                        raise
                    logger.error("%s", exc)
                    failures += 1
                except (ConnectionError, TimeoutError, FramingError, OSError) as exc:
                    raise CommandError(_lost(address, offer, exc)) from None
            offer = None
    except KeyboardInterrupt:
        cut = f"{offer.path} was not received (the receiver keeps nothing of it); " if offer else ""
        logger.error("interrupted: %s%d of %d file(s) sent", cut, sent, len(offers))
        raise
    return 1 if failures else 0


def _check_timeout(args: argparse.Namespace) -> None:
    if not args.timeout >= 0:  # also NaN
        raise CommandError("--timeout must be 0 (no limit) or more")
    if not getattr(args, "frame_timeout", 0) >= 0:
        raise CommandError("--frame-timeout must be 0 (no limit) or more")


def _lost(address: Address, offer: _Offer, exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        what = "the receiver closed the connection"
    elif isinstance(exc, TimeoutError):
        what = "the receiver stopped answering (--timeout)"
    else:
        what = f"connection lost: {describe_error(exc)}"
    return f"{offer.path}: {what} ({address}); the file was not received"


# --- recv-file ---------------------------------------------------------------------


def _add_recv_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "address", help="where to listen: tcp://HOST:PORT, tls://, unix:///PATH (port 0: any)"
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="directory for the files; created with its parents if missing (as mkdir -p)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.add_argument(
        "--keep-serving",
        action="store_true",
        help="serve session after session until Ctrl-C (default: exit after one)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="drop a connection that sends nothing for this long (default 60; 0: no limit)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help="connections (and threads) held at once; more are turned away "
        f"(default {DEFAULT_MAX_CONNECTIONS})",
    )
    parser.add_argument(
        "--frame-timeout",
        type=float,
        default=FRAME_TIMEOUT,
        metavar="SECONDS",
        help="drop a sender whose frame, once begun, takes longer than this to arrive "
        f"(default {FRAME_TIMEOUT:g}; 0: no limit)",
    )
    _add_common(parser, server=True)


class _Session:
    """One connection's receiving loop, with its progress bars and log lines."""

    def __init__(
        self, args: argparse.Namespace, address: Address, stopping: threading.Event
    ) -> None:
        self.args = args
        self.address = address
        self.receiver = Receiver(args.out, force=args.force)
        self.bar: Optional[Progress] = None
        self.broken = False
        self.stopping = stopping

    def __call__(self, conn: FramedSocket, peer: str, first: bytes) -> None:
        """Serve the session whose first frame (a header) was ``first``."""
        logger.info("%s connected", peer)
        receiver = self.receiver
        lost = "connection closed"
        try:
            for frame in itertools.chain([first], conn):
                replies = receiver.receive(frame)
                self._progress()
                for reply in replies:
                    conn.send(reply)
        except ProtocolError as exc:
            _try_send(conn, exc.reply)  # the receiver has logged it
        except (FramingError, ConnectionError, TimeoutError, OSError) as exc:
            lost = f"connection lost ({describe_error(exc)})"
            if receiver.current is None and not self.stopping.is_set():
                logger.error("%s: %s", peer, lost)  # else connection_lost() below says it
                self.broken = True
        finally:
            if self.stopping.is_set():  # our own shutdown ended it: say so, not "lost"
                lost = _STOPPED
            receiver.connection_lost(lost)
            self._progress()
        done = len(receiver.completed)
        logger.info("%s: session over: %d file(s) received, %d failed", peer, done, self.failed)

    @property
    def failed(self) -> int:
        """Failed files, plus one if the session itself broke between files."""
        return len(self.receiver.failures) + self.broken

    def _progress(self) -> None:
        current = self.receiver.current
        if self.bar is not None and (current is None or self.bar.label != current.name):
            self.bar.close()
            self.bar = None
        if current is not None:
            if self.bar is None:
                self.bar = Progress(current.name, current.size)
            self.bar.update(self.receiver.received)


def _peer_of(conn: FramedSocket) -> Any:
    try:
        return conn.socket.getpeername()
    except OSError:
        return ""


def _try_send(conn: FramedSocket, frame: bytes) -> None:
    try:
        conn.send(frame)
    except OSError:
        pass


def _first_frame(conn: FramedSocket, peer: str) -> Optional[bytes]:
    """The connection's first frame if it is a header; else say why it is dropped."""
    try:
        frame: bytes = conn.recv()
    except ConnectionClosed:
        logger.info("%s closed the connection without sending a file", peer)
        return None
    except (FramingError, ConnectionError, TimeoutError, OSError) as exc:
        hint = decoding_hint(exc, conn.codec, first=True)
        reason = describe_error(exc) + (f"; {hint}" if hint else "")
        logger.warning("%s: dropping the connection: %s", peer, reason)
        return None
    if frame[:1] != HEADER:
        logger.warning("%s: dropping the connection: it did not start with a file header", peer)
        _try_send(conn, encode_error("expected a file header"))
        return None
    try:
        decode_info(frame)
    except ProtocolError as exc:  # not a sender of ours: it must not take the session
        logger.warning("%s: dropping the connection: %s", peer, exc)
        _try_send(conn, exc.reply)
        return None
    return frame


def _run_recv(args: argparse.Namespace) -> int:
    address = parse_address(args.address)
    if address.is_datagram:
        raise CommandError(f"recv-file needs a stream address (tcp, tls, unix), not {address}")
    _check_timeout(args)
    codec, _chunk = file_codec(args)
    context = ssl_context_from_args(args, address, server=True)
    if args.max_connections < 1:
        raise CommandError("--max-connections must be at least 1")
    _prepare_out(args.out)
    sessions: List[_Session] = []
    lock = threading.Lock()
    stopping = threading.Event()
    finished, finished_w = socket.socketpair()  # readable once the one session ended

    def handler(conn: FramedSocket) -> None:
        # Only a connection that sends a header is a session: a port probe or
        # an idle connection (dropped after --timeout) is logged and
        # forgotten, and without --keep-serving recv-file goes on listening
        # for the real sender.
        conn.socket.settimeout(args.timeout or None)
        peer = peer_name(address, _peer_of(conn))
        first = _first_frame(conn, peer)
        if first is None:
            return
        session: Optional[_Session] = None
        with lock:
            if args.keep_serving or not sessions:
                session = _Session(args, address, stopping)
                sessions.append(session)
        if session is None:
            logger.warning("%s: refused: the one session is already being received", peer)
            _try_send(conn, encode_error("the receiver is busy with another sender"))
            return
        try:
            session(conn, peer, first)
        finally:
            if not args.keep_serving:
                with contextlib.suppress(OSError):
                    finished_w.send(b"\0")

    server = serve(
        address,
        handler,
        codec,
        ssl=context,
        max_connections=args.max_connections,
        frame_timeout=args.frame_timeout or None,  # --timeout: each connection's socket
    )
    try:
        with stop_signals() as wait, server:
            server.start()
            logger.info("listening on %s; saving files to %s", server.address, args.out)
            try:
                wait(*([] if args.keep_serving else [finished]))
            except KeyboardInterrupt:
                stopping.set()  # before the shutdown ends the sessions: see _Session
                logger.info("shutting down")
                if not args.keep_serving:
                    raise  # the one session did not happen, or not to its end
    finally:
        finished.close()
        finished_w.close()
    with lock:
        failed = sum(s.failed for s in sessions)
    return 1 if failed else 0


def _prepare_out(out: str) -> None:
    """Create ``--out`` if needed, check that files can be written there, clean it up.

    Raises:
        CommandError: it is not a directory, cannot be created, or cannot be
            written to (the system's reason is given: permission denied, a
            read-only file system...).
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise CommandError(f"cannot use --out {out}: not a directory")
    if not os.path.isdir(out):
        try:
            os.makedirs(out)
        except OSError as exc:
            reason = exc.strerror or describe_error(exc)
            raise CommandError(f"cannot create --out {out}: {reason}") from None
        logger.info("created directory %s", out)
    try:  # the real test: os.access() says yes to root on a read-only file system
        fd, probe = tempfile.mkstemp(prefix=".framekit-probe-", dir=out)
    except OSError as exc:
        reason = exc.strerror or describe_error(exc)
        raise CommandError(f"cannot write to --out {out}: {reason}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    removed = remove_stale_parts(out)
    if removed:
        logger.info(
            "removed %d temporary file(s) left by an interrupted transfer: %s",
            len(removed),
            ", ".join(removed),
        )


send = Command(_add_send_arguments, _run_send)
recv = Command(_add_recv_arguments, _run_recv)
