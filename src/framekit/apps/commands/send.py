"""``framekit send``: the tutorials' interactive client, one frame per message.

Design notes
------------
The tutorials' client sends ``input()`` and prints ``recv(1024)``, assuming
the reply is whole and alone.  Here each message is one frame and each reply
is read as one frame, so a long reply is never cut and two replies never run
together.

Messages come from the command line, or else from stdin, one per line (the
newline, and a ``\\r`` before it, removed).  The same loop serves a person at
a terminal (a prompt on stderr, a reply after each line, Ctrl-D to end) and a
pipe (no prompt).  ``--raw`` sends all of stdin as one frame and writes the
reply out as is, so binary data round-trips: ``framekit send --raw ADDR < in >
out``.  Replies are otherwise printed one per line, as bytes (``--hex`` for
binary replies).

Messages go out as bytes: command-line arguments are turned back into the
bytes the shell passed (``os.fsencode``), never re-encoded.

Every wait is bounded by ``--timeout`` (connect, and each reply), so a server
that never answers gives a clear error rather than a hung command.  Output is
flushed after each reply, for a person and for a pipe reader alike.

**Mistakes said in words.**  A message larger than the maximum frame size is
refused before anything is sent, with both sizes (the receiver would refuse
it, and the connection would die with "Broken pipe").  A server that closes
or stays silent right after our first message, or whose reply does not
decode, gets a hint that the framing may differ (:mod:`framekit.apps.hints`).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import BinaryIO, Iterator, Optional, TextIO

from ...addresses import parse_address
from ...codecs.interface import Codec
from ...errors import ConnectionClosed, FrameTooLarge, FramingError
from ...sync import connect
from ..errors import CommandError
from ..hints import COMPARE, decoding_hint, silence_hint
from .options import add_codec_arguments, add_tls_arguments, codec_from_args, ssl_context_from_args
from .progress import format_bytes

__all__ = ["add_arguments", "check_size", "read_lines", "run"]

_PROMPT = "> "


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``send``'s options to its parser."""
    parser.add_argument(
        "address", help="the server: tcp://HOST:PORT, tls://, unix:///PATH, udp://, unixgram://"
    )
    parser.add_argument(
        "messages",
        nargs="*",
        metavar="MESSAGE",
        help="messages to send, one frame each; without any, read stdin (one frame per line)",
    )
    parser.add_argument(
        "--raw", action="store_true", help="send all of stdin as one frame; write the reply as is"
    )
    parser.add_argument("--hex", action="store_true", help="print replies in hexadecimal")
    parser.add_argument(
        "--no-reply", action="store_true", help="only send; do not wait for replies"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="limit for connecting and for each reply (default 10; 0: no limit)",
    )
    add_codec_arguments(parser)
    add_tls_arguments(parser, server=False)


def read_lines(
    stream: BinaryIO, prompt: Optional[TextIO] = None, text: str = _PROMPT
) -> Iterator[bytes]:
    """Yield the lines of ``stream`` without their line ending.

    Args:
        stream: a binary input (stdin's buffer).
        prompt: where to write ``text`` before reading each line (a terminal),
            or ``None`` for no prompt.
        text: the prompt.
    """
    while True:
        if prompt is not None:
            prompt.write(text)
            prompt.flush()
        line = stream.readline()
        if not line:
            if prompt is not None:
                prompt.write("\n")
            return
        if line.endswith(b"\n"):
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        yield line


def run(args: argparse.Namespace) -> int:
    """Run ``framekit send``; 0 when every message got its reply."""
    if args.raw and args.messages:
        raise CommandError("--raw sends stdin; it cannot be combined with MESSAGE arguments")
    if args.timeout < 0:
        raise CommandError("--timeout must be 0 (no limit) or more")
    address = parse_address(args.address)
    codec = codec_from_args(args)
    context = ssl_context_from_args(args, address, server=False)
    timeout = args.timeout or None

    stdin = sys.stdin.buffer
    if args.messages:
        messages: Iterator[bytes] = iter([os.fsencode(m) for m in args.messages])
    elif args.raw:
        messages = iter([stdin.read()])
    else:
        interactive = sys.stdin.isatty()
        messages = read_lines(stdin, sys.stderr if interactive else None)

    conn = connect(address, codec, timeout=timeout, ssl=context)
    replies = 0
    with conn:
        for number, message in enumerate(messages, 1):
            check_size(codec, message, number)
            try:
                conn.send(message)
            except FrameTooLarge as exc:  # the codec's own encode-side check
                raise CommandError(_too_large(codec, len(message), number, exc)) from None
            if args.no_reply:
                continue
            first = replies == 0 and number == 1
            try:
                reply = conn.recv()
            except TimeoutError:
                what = f"no reply from {address} within {args.timeout:g} s (--timeout)"
                if first:
                    what += f"; if the server is waiting for the rest of a frame, {COMPARE}"
                raise CommandError(what) from None
            except (ConnectionClosed, ConnectionResetError):
                what = f"{address} closed the connection without replying"
                raise CommandError(silence_hint(what) if first else what) from None
            except FramingError as exc:
                hint = decoding_hint(exc, codec, first=replies == 0)
                raise CommandError(
                    f"bad reply from {address}: {exc}" + (f"; {hint}" if hint else "")
                ) from None
            replies += 1
            if not _write_reply(reply, args):
                return 0  # our reader went away: nothing left to do
    return 0


def check_size(codec: Codec, message: bytes, number: int = 1) -> None:
    """Refuse, in words, a message whose frame is above the codec's maximum.

    The wire size of the frame is compared with ``max_frame_size`` first (cheap,
    no copy of the payload); only a frame above it is shown to a fresh decoder,
    which has the last word (``max_frame_size`` counts the header for a length
    prefix, not the delimiter of a line).

    Raises:
        CommandError: the peer's decoder would refuse the frame.
    """
    limit = getattr(codec, "max_frame_size", None)
    if limit is None:
        return
    try:
        parts = codec.encode_parts(message)
    except FrameTooLarge as exc:
        raise CommandError(_too_large(codec, len(message), number, exc)) from None
    except ValueError:
        return  # some other problem: send() reports it
    if sum(memoryview(p).nbytes for p in parts) <= limit:
        return
    try:
        codec.decoder().feed(bytes(parts[0]))
    except FrameTooLarge as exc:
        raise CommandError(_too_large(codec, len(message), number, exc)) from None
    except FramingError:
        return


def _too_large(codec: Codec, size: int, number: int, exc: FrameTooLarge) -> str:
    limit = getattr(codec, "max_frame_size", None) or exc.max_frame_size
    return (
        f"message {number} is {format_bytes(size)} ({size} bytes): too large for the maximum "
        f"frame size, {format_bytes(limit)} ({limit} bytes, --max-frame-size); the receiver "
        "would refuse it, so nothing was sent. Raise --max-frame-size on both ends to send it"
    )


def _write_reply(reply: bytes, args: argparse.Namespace) -> bool:
    """Write ``reply`` to stdout; False if stdout was closed (a pipe reader quit)."""
    if args.hex:
        data = reply.hex().encode("ascii") + b"\n"
    elif args.raw:
        data = reply
    else:
        data = reply + b"\n"
    out = sys.stdout.buffer
    try:
        out.write(data)
        out.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null, so the interpreter's final flush is quiet too.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
        return False
    return True
