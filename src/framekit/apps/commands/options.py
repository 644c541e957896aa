"""What every ``framekit`` subcommand shares: codec and TLS options, peer names.

Design notes
------------
Both ends of a connection must agree on the framing, so every subcommand takes
the same codec options, spelled as the library's keywords (which are Netty's
names, see the README): ``--length-size``, ``--byteorder``,
``--length-offset``, ``--length-adjustment``, ``--strip``,
``--max-frame-size``; or ``--codec lines|netstring`` for the other framings; or
``--preset NAME`` for a known protocol (``--max-frame-size`` may change its
limit).  :func:`codec_from_args` turns them into one
:class:`framekit.codecs.interface.Codec`, and refuses contradictory combinations (a
preset *and* a length size) rather than silently preferring one.

A preset such as ``postgres`` keeps the header in decoded frames (``strip=0``),
and one such as ``postgres-startup`` keeps a header with no offset at all;
:class:`MessageCodec` maps those too, so what is received can be sent back.

Options are ``None`` unless given, so "given" and "default" can be told apart;
the defaults are the library's.

A length offset (a type byte or a magic before the length field, as in the
``mqtt``, ``postgres`` and ``grpc`` presets) has to come from somewhere when a
message is sent.  The command line treats those bytes as part of the message,
in both directions: a message is *the bytes before the length field, then the
body*.  :class:`MessageCodec` does that mapping on top of the codec, so that an
echo server with ``--preset postgres`` echoes ``Q`` messages as ``Q`` messages.
Only the command line needs it; library users pass ``prefix=`` themselves.
"""

from __future__ import annotations

import argparse
import itertools
import re
import ssl
from typing import Any, Iterable, List, Optional, Sequence

import framekit

from ...addresses import Address, address_from_sockaddr
from ...codecs.interface import Buffer, Codec, Decoder
from ...codecs.presets import get_preset
from ...errors import FramingError
from ..errors import describe_error

__all__ = [
    "CODECS",
    "MessageCodec",
    "add_codec_arguments",
    "add_tls_arguments",
    "codec_from_args",
    "parse_size",
    "peer_name",
    "ssl_context_from_args",
]

#: ``--codec`` choices.
CODECS = ("length", "lines", "netstring")

#: Options that only make sense for ``--codec length``: (dest, flag).
_LENGTH_OPTIONS = (
    ("length_size", "--length-size"),
    ("byteorder", "--byteorder"),
    ("length_offset", "--length-offset"),
    ("length_adjustment", "--length-adjustment"),
    ("strip", "--strip"),
)

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """Parse a byte count: ``4096``, ``64K``, ``16MiB``, ``1G`` (units are powers of 1024).

    Raises:
        argparse.ArgumentTypeError: not a size.
    """
    match = _SIZE_RE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (examples: 4096, 64K, 16MiB)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def _length_size(text: str) -> Any:
    if text == "varint":
        return text
    if text in ("1", "2", "3", "4", "8"):
        return int(text)
    raise argparse.ArgumentTypeError(f"invalid length size {text!r} (1, 2, 3, 4, 8 or varint)")


def add_codec_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the framing options to a subcommand's parser."""
    group = parser.add_argument_group(
        "framing", "How messages are framed; both ends must agree (default: 4-byte big-endian)."
    )
    group.add_argument(
        "--codec",
        choices=CODECS,
        help="length: a length prefix (default); lines: ending in \\n or \\r\\n (sent with \\n); "
        "netstring: 5:hello,",
    )
    group.add_argument(
        "--preset",
        metavar="NAME",
        help="a known protocol's framing (e.g. protobuf-delimited, mqtt, postgres, kafka)",
    )
    group.add_argument(
        "--length-size",
        type=_length_size,
        metavar="N",
        help="length field: 1, 2, 3, 4 (default) or 8 bytes, or varint (Netty lengthFieldLength)",
    )
    group.add_argument(
        "--byteorder", choices=("big", "little"), help="of the length field (default big)"
    )
    group.add_argument(
        "--length-offset",
        type=int,
        metavar="N",
        help="bytes before the length field, sent as the message's first N bytes "
        "(Netty lengthFieldOffset)",
    )
    group.add_argument(
        "--length-adjustment",
        type=int,
        metavar="N",
        help="added to the length field to get the bytes after it (Netty lengthAdjustment)",
    )
    group.add_argument(
        "--strip",
        type=int,
        metavar="N",
        help="bytes dropped from each received frame; default the whole header "
        "(Netty initialBytesToStrip)",
    )
    group.add_argument(
        "--max-frame-size",
        type=parse_size,
        metavar="SIZE",
        help="largest frame accepted, e.g. 64K or 16MiB (default 16MiB; Netty maxFrameLength)",
    )


def _given(args: argparse.Namespace, options: Iterable[tuple[str, str]]) -> List[str]:
    return [flag for dest, flag in options if getattr(args, dest, None) is not None]


def codec_from_args(args: argparse.Namespace) -> Codec:
    """Build the codec the framing options describe.

    Returns:
        A codec; when frames have a length offset, a :class:`MessageCodec`
        around it.

    Raises:
        ValueError: unknown preset, options that contradict each other, or
            values the codec refuses; the message is one line.
    """
    preset = getattr(args, "preset", None)
    kind = getattr(args, "codec", None)
    max_size = getattr(args, "max_frame_size", None)
    length_given = _given(args, _LENGTH_OPTIONS)
    sized: dict[str, Any] = {} if max_size is None else {"max_frame_size": max_size}
    if preset is not None:
        conflicts = _given(args, (("codec", "--codec"),)) + length_given
        if conflicts:
            raise ValueError(
                f"--preset sets the framing; it cannot be combined with {', '.join(conflicts)}"
            )
        return MessageCodec.wrap(get_preset(preset, **sized))
    if kind in ("lines", "netstring"):
        if length_given:
            raise ValueError(f"{', '.join(length_given)} only apply to --codec length")
        if kind == "lines":
            return (
                framekit.Lines() if max_size is None else framekit.Lines(max_line_length=max_size)
            )
        return framekit.Netstring(**sized)
    kwargs: dict[str, Any] = dict(sized)
    for dest, _flag in _LENGTH_OPTIONS[1:]:
        value = getattr(args, dest, None)
        if value is not None:
            kwargs[dest] = value
    length_size = getattr(args, "length_size", None)
    try:
        codec = framekit.LengthPrefixed(4 if length_size is None else length_size, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid framing options: {exc}") from None
    return MessageCodec.wrap(codec, explicit_strip=getattr(args, "strip", None) is not None)


# --- messages with bytes before the length field ------------------------------


def _varint_size(frame: bytes, start: int) -> int:
    end = start
    while end < len(frame) and frame[end] & 0x80:
        end += 1
    return end + 1 - start


class MessageCodec:
    """A length-prefixed codec whose messages include the bytes before the length field.

    With ``length_offset = N``, ``encode(message)`` writes ``message[:N]``, the
    length field, then ``message[N:]``.  With ``rebuild``, a decoded frame is
    returned the same way, as the ``N`` prefix bytes followed by the body (the
    length field removed), so what is received can be sent back unchanged;
    without it, frames are returned as the codec strips them.

    Use :meth:`wrap`, which returns the codec itself when no mapping is needed.
    """

    def __init__(self, codec: Any, *, rebuild: bool = True) -> None:
        self.offset: int = codec.length_offset
        self._encoder = codec
        self._rebuild = rebuild
        if rebuild and codec.strip is None:  # keep the header, to give the prefix back
            codec = type(codec)(
                codec.length_size,
                byteorder=codec.byteorder,
                length_offset=codec.length_offset,
                length_adjustment=codec.length_adjustment,
                strip=0,
                max_frame_size=codec.max_frame_size,
                fail_fast=codec.fail_fast,
                varint_max_bytes=codec.varint_max_bytes,
            )
        self._decoding = codec
        self._field_size = codec.length_size if isinstance(codec.length_size, int) else 0

    @classmethod
    def wrap(cls, codec: Any, *, explicit_strip: bool = False) -> Codec:
        """Return ``codec`` itself, or a :class:`MessageCodec` if messages and frames differ.

        They differ when there is a length offset (the prefix comes from the
        message), or when a preset keeps the header (``strip=0``) that the
        message must not show.  With ``explicit_strip`` (``--strip`` given),
        frames are shown as stripped.
        """
        offset = getattr(codec, "length_offset", 0)
        strip = getattr(codec, "strip", None)
        rebuild = not explicit_strip and (strip == 0 or (strip is None and offset > 0))
        if offset or rebuild:
            return cls(codec, rebuild=rebuild)
        return codec  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"MessageCodec({self._encoder!r})"

    @property
    def max_frame_size(self) -> int:
        """The wrapped codec's ``max_frame_size``."""
        return self._encoder.max_frame_size  # type: ignore[no-any-return]

    @property
    def codec(self) -> Any:
        """The wrapped codec, as configured (for ``framekit explain`` and error hints)."""
        return self._encoder

    def _split(self, message: Buffer) -> tuple[Buffer, Buffer]:
        if len(message) < self.offset:
            raise ValueError(
                f"each message must start with the {self.offset} bytes that go before the "
                f"length field (--length-offset); got a {len(message)}-byte message"
            )
        view = memoryview(message)
        return view[: self.offset], view[self.offset :]

    def encode(self, payload: Buffer, *, prefix: Buffer = b"") -> bytes:
        prefix, body = self._split(bytes(prefix) + payload if prefix else payload)
        return self._encoder.encode(body, prefix=prefix)  # type: ignore[no-any-return]

    def encode_many(self, payloads: Iterable[Buffer], *, prefix: Buffer = b"") -> bytes:
        return b"".join([self.encode(p, prefix=prefix) for p in payloads])

    def encode_parts(self, payload: Buffer, *, prefix: Buffer = b"") -> Sequence[Buffer]:
        prefix, body = self._split(bytes(prefix) + payload if prefix else payload)
        return self._encoder.encode_parts(body, prefix=prefix)  # type: ignore[no-any-return]

    def decoder(self) -> Decoder:
        return _MessageDecoder(self, self._decoding.decoder())

    def message(self, frame: bytes) -> bytes:
        """Turn a decoded frame (header kept) back into a message."""
        if not self._rebuild:
            return frame
        n = self.offset
        field = self._field_size or _varint_size(frame, n)
        return frame[:n] + frame[n + field :]


class _MessageDecoder:
    def __init__(self, codec: MessageCodec, decoder: Decoder) -> None:
        self._codec = codec
        self._decoder = decoder

    @property
    def pending(self) -> int:
        return self._decoder.pending

    def _messages(self, frames: List[bytes]) -> List[bytes]:
        return [self._codec.message(f) for f in frames]

    def feed(self, data: Buffer) -> List[bytes]:
        try:
            return self._messages(self._decoder.feed(data))
        except FramingError as exc:
            exc.frames = self._messages(exc.frames)
            raise

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        return self._decoder.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> List[bytes]:
        try:
            return self._messages(self._decoder.buffer_updated(nbytes))
        except FramingError as exc:
            exc.frames = self._messages(exc.frames)
            raise

    def eof(self) -> None:
        self._decoder.eof()


# --- TLS ----------------------------------------------------------------------------


def add_tls_arguments(parser: argparse.ArgumentParser, *, server: bool) -> None:
    """Add the options a ``tls://`` address needs: a certificate for a server,
    a CA file (optional) for a client."""
    group = parser.add_argument_group("TLS", "For tls:// addresses.")
    if server:
        group.add_argument("--certfile", metavar="PEM", help="server certificate (chain)")
        group.add_argument(
            "--keyfile", metavar="PEM", help="private key, if not in the certificate file"
        )
    else:
        group.add_argument(
            "--cafile",
            metavar="PEM",
            help="trust these CA certificates instead of the system's",
        )


def ssl_context_from_args(
    args: argparse.Namespace, address: Address, *, server: bool
) -> Optional[ssl.SSLContext]:
    """Return the TLS context for ``address``, or ``None`` if it is not ``tls://``.

    Raises:
        ValueError: a TLS option for an address that is not ``tls://``, a
            ``tls://`` server without ``--certfile``, or a certificate, key or
            CA file that cannot be loaded.
    """
    names = ("certfile", "keyfile") if server else ("cafile",)
    given = [f"--{n}" for n in names if getattr(args, n, None)]
    if not address.is_tls:
        if given:
            raise ValueError(f"{', '.join(given)} only apply to tls:// addresses")
        return None
    if server:
        if not args.certfile:
            raise ValueError("a tls:// server needs --certfile (and --keyfile)")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        files = [args.certfile] + ([args.keyfile] if args.keyfile else [])
        try:
            context.load_cert_chain(args.certfile, args.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load {' and '.join(files)}: {describe_error(exc)}") from None
        return context
    try:
        return ssl.create_default_context(cafile=args.cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load --cafile {args.cafile}: {describe_error(exc)}") from None


# --- log lines ------------------------------------------------------------------

_unnamed = itertools.count(1)


def peer_name(address: Address, peer: Any) -> str:
    """A short name for a client in log lines: ``127.0.0.1:50312``, ``unix client #3``.

    Unix stream clients are usually unnamed (their address is ``""``), so they
    are numbered in the order they are first named.
    """
    if address.is_unix:
        path = peer.decode(errors="replace") if isinstance(peer, bytes) else peer
        return path.replace("\0", "@") if path else f"unix client #{next(_unnamed)}"
    try:
        url = address_from_sockaddr("tcp", peer).url()
    except (TypeError, IndexError, ValueError):
        return repr(peer)
    return url[len("tcp://") :]
