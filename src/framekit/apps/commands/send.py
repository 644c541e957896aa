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
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import BinaryIO, Iterator, Optional, TextIO

from ...addresses import parse_address
from ...errors import ConnectionClosed
from ...sync import connect
from ..errors import CommandError
from .options import add_codec_arguments, add_tls_arguments, codec_from_args, ssl_context_from_args

__all__ = ["add_arguments", "read_lines", "run"]

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
    with conn:
        for message in messages:
            conn.send(message)
            if args.no_reply:
                continue
            try:
                reply = conn.recv()
            except TimeoutError:
                raise CommandError(
                    f"no reply from {address} within {args.timeout:g} s (--timeout)"
                ) from None
            except ConnectionClosed:
                raise CommandError(f"{address} closed the connection without replying") from None
            if not _write_reply(reply, args):
                return 0  # our reader went away: nothing left to do
    return 0


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
