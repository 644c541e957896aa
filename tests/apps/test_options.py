"""The codec options every subcommand shares, and how messages map onto frames."""

from __future__ import annotations

import argparse
import ssl
from typing import Any, Callable, List

import pytest

import framekit
from framekit.addresses import parse_address
from framekit.apps.cli import main
from framekit.apps.commands.options import (
    MessageCodec,
    add_codec_arguments,
    add_tls_arguments,
    codec_from_args,
    parse_size,
    peer_name,
    ssl_context_from_args,
)
from framekit.codecs.presets import PRESET_ARGS

from .conftest import error_lines


def parse(*argv: str, server: bool = False) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_codec_arguments(parser)
    add_tls_arguments(parser, server=server)
    return parser.parse_args(argv)


@pytest.fixture
def build(LP: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``codec_from_args`` with the backend under test."""
    monkeypatch.setattr(framekit, "LengthPrefixed", LP)
    return lambda *argv: codec_from_args(parse(*argv))


def decode_split(codec: Any, wire: bytes) -> List[bytes]:
    """Decode ``wire`` fed one byte at a time, then through get_buffer/buffer_updated."""
    decoder = codec.decoder()
    out = [m for i in range(len(wire)) for m in decoder.feed(wire[i : i + 1])]
    decoder.eof()
    decoder = codec.decoder()
    buf = decoder.get_buffer(len(wire))
    buf[: len(wire)] = wire
    del buf
    assert decoder.buffer_updated(len(wire)) == out
    return out


@pytest.mark.parametrize(
    ("text", "n"),
    [("4096", 4096), ("64K", 65536), ("64k", 65536), ("16MiB", 16 << 20), ("1G", 1 << 30)],
)
def test_parse_size(text: str, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "-1", "1.5M", "12X", "M"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(text)


def test_default_is_a_four_byte_big_endian_length(build: Callable[..., Any], LP: Any) -> None:
    codec = build()
    assert isinstance(codec, LP)
    assert codec.encode(b"hi") == b"\0\0\0\x02hi"


def test_options_map_to_the_codec_keywords(build: Callable[..., Any], LP: Any) -> None:
    codec = build(
        "--length-size", "2", "--byteorder", "little", "--length-adjustment", "-2",
        "--strip", "0", "--max-frame-size", "64K",
    )  # fmt: skip
    assert isinstance(codec, LP)
    assert (codec.length_size, codec.byteorder, codec.length_adjustment) == (2, "little", -2)
    assert (codec.strip, codec.max_frame_size) == (0, 65536)
    assert codec.encode(b"hi") == b"\x04\x00hi"
    assert build("--length-size", "varint").encode(b"x" * 200)[:2] == b"\xc8\x01"


def test_lines_and_netstring(build: Callable[..., Any]) -> None:
    lines = build("--codec", "lines", "--max-frame-size", "100")
    assert isinstance(lines, framekit.Lines)
    assert lines.encode(b"hi") == b"hi\n"
    assert lines.max_line_length == lines.max_frame_size == 100
    assert lines.decoder().feed(b"crlf\r\nlf\n") == [b"crlf", b"lf"]
    assert build("--codec", "lines").max_line_length == 16 * 1024 * 1024
    netstring = build("--codec", "netstring")
    assert isinstance(netstring, framekit.Netstring)
    assert netstring.encode(b"hi") == b"2:hi,"


def test_preset_and_its_limit(build: Callable[..., Any]) -> None:
    kafka = build("--preset", "kafka")
    assert kafka is framekit.codecs.presets.KAFKA
    assert build("--preset", "KAFKA", "--max-frame-size", "1M").max_frame_size == 1 << 20


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--preset", "nope"], ["unknown preset", "kafka"]),
        (["--preset", "kafka", "--length-size", "2"], ["--preset", "--length-size"]),
        (["--preset", "kafka", "--codec", "length"], ["--codec"]),
        (["--codec", "lines", "--byteorder", "little"], ["--byteorder", "--codec length"]),
        (["--length-size", "4", "--max-frame-size", "2"], ["invalid framing options"]),
        (["--length-offset", "-1"], ["invalid framing options", "length_offset"]),
    ],
)
def test_bad_combinations_are_one_clear_error(
    build: Callable[..., Any], argv: List[str], words: List[str]
) -> None:
    with pytest.raises(ValueError) as caught:
        build(*argv)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_unknown_preset_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "--preset", "nope", "tcp://127.0.0.1:9", "x"]) == 1
    err = capsys.readouterr().err
    assert error_lines(err) == err.splitlines()
    assert len(err.splitlines()) == 1
    assert "unknown preset 'nope'" in err and "Traceback" not in err


def test_bad_option_values_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("--length-size", "5")
    assert caught.value.code == 2
    assert "invalid length size" in capsys.readouterr().err


# --- messages with a prefix before the length field -----------------------------------


def test_length_offset_takes_the_prefix_from_the_message(build: Callable[..., Any]) -> None:
    codec = build("--length-offset", "1")
    assert isinstance(codec, MessageCodec)
    wire = codec.encode(b"Thello") + b"".join(map(bytes, codec.encode_parts(b"U")))
    assert wire == b"T\0\0\0\x05hello" + b"U\0\0\0\0"
    assert codec.encode_many([b"Thello", b"U"]) == wire
    assert decode_split(codec, wire) == [b"Thello", b"U"]


def test_explicit_strip_shows_frames_as_stripped(build: Callable[..., Any]) -> None:
    codec = build("--length-offset", "1", "--strip", "0")
    wire = codec.encode(b"Thello")
    assert decode_split(codec, wire) == [wire]
    assert build("--strip", "2").decoder().feed(b"\0\0\0\x03abc") == [b"\0\x03abc"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("mqtt", b"\x30" + b"t" * 300),  # a PUBLISH, varint of 2 bytes
        ("postgres", b"Qselect 1\0"),
        ("grpc", b"\x00" + b"\x08\x96\x01"),
        ("postgres-startup", b"\x00\x03\x00\x00user\0me\0\0"),
        ("kafka", b"request"),
    ],
)
def test_presets_that_keep_the_header_echo_whole_messages(
    LP: Any, name: str, message: bytes
) -> None:
    preset = LP(**PRESET_ARGS[name])
    codec = MessageCodec.wrap(preset)
    offset = preset.length_offset
    wire = codec.encode(message)
    assert wire == preset.encode(message[offset:], prefix=message[:offset])
    assert decode_split(codec, wire + wire) == [message, message]


def test_a_message_shorter_than_the_prefix_is_refused(build: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="start with the 2 bytes"):
        build("--length-offset", "2").encode(b"x")


def test_frames_carried_by_an_error_are_mapped_too(build: Callable[..., Any]) -> None:
    codec = build("--length-offset", "1", "--max-frame-size", "16")
    wire = codec.encode(b"Tok") + b"T\0\0\0\xff"
    with pytest.raises(framekit.FrameTooLarge) as caught:
        codec.decoder().feed(wire)
    assert caught.value.frames == [b"Tok"]


# --- TLS and peers ------------------------------------------------------------------------


def test_tls_options_only_for_tls_addresses() -> None:
    tcp = parse_address("tcp://127.0.0.1:1")
    assert ssl_context_from_args(parse(), tcp, server=False) is None
    with pytest.raises(ValueError, match="--cafile only apply to tls://"):
        ssl_context_from_args(parse("--cafile", "ca.pem"), tcp, server=False)
    tls = parse_address("tls://localhost:1")
    with pytest.raises(ValueError, match="needs --certfile"):
        ssl_context_from_args(parse(server=True), tls, server=True)
    client = ssl_context_from_args(parse(), tls, server=False)
    assert isinstance(client, ssl.SSLContext) and client.verify_mode == ssl.CERT_REQUIRED


def test_tls_server_context_from_files(tmp_path: Any) -> None:
    trustme = pytest.importorskip("trustme")
    cert = trustme.CA().issue_cert("localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(keyfile))
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    args = parse("--certfile", str(certfile), "--keyfile", str(keyfile), server=True)
    context = ssl_context_from_args(args, parse_address("tls://localhost:0"), server=True)
    assert isinstance(context, ssl.SSLContext)


def test_peer_names() -> None:
    tcp = parse_address("tcp://127.0.0.1:1")
    assert peer_name(tcp, ("127.0.0.1", 5000)) == "127.0.0.1:5000"
    assert peer_name(tcp, ("::1", 5000, 0, 0)) == "[::1]:5000"
    unix = parse_address("unix:///tmp/x.sock")
    first, second = peer_name(unix, ""), peer_name(unix, "")
    assert first.startswith("unix client #") and first != second
    assert peer_name(unix, b"\0abstract") == "@abstract"
