"""The file-transfer protocol, sans IO: frames in, replies out, files on disk."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from typing import Any, List

import pytest

from framekit.apps import transfer
from framekit.apps.transfer import (
    ACK,
    CHUNK,
    END,
    ERROR,
    READY,
    FileInfo,
    IncomingFile,
    ProtocolError,
    Receiver,
    TransferError,
    check_name,
    decode_info,
    encode_ack,
    encode_error,
    encode_header,
    parse_reply,
)


def info_of(name: str, data: bytes) -> FileInfo:
    return FileInfo(name, len(data), hashlib.sha256(data).hexdigest())


def chunks(data: bytes, size: int) -> List[bytes]:
    return [CHUNK + data[i : i + size] for i in range(0, len(data), size)]


def listing(directory: Any) -> List[str]:
    return sorted(os.listdir(directory))


def send(receiver: Receiver, name: str, data: bytes, size: int = 7) -> List[bytes]:
    """Offer one file and stream it; return every reply."""
    replies = receiver.receive(encode_header(info_of(name, data)))
    for frame in chunks(data, size):
        replies += receiver.receive(frame)
    return replies + receiver.receive(END)


def reason(reply: bytes) -> str:
    kind, text = parse_reply(reply)
    assert kind == ERROR
    return str(text)


# --- names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.txt", ".hidden", "naïve 文件.bin", "x" * 255, "a..b"])
def test_safe_names_pass(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "/etc/passwd",
        "../evil",
        "a/b",
        "a\\b",
        "..\\evil",
        "C:evil",
        "a\0b",
        "line\nbreak",
        "\x1b[31mred",
        "x" * 256,
        "é" * 128,  # 256 bytes in UTF-8
        None,
        42,
    ],
)
def test_unsafe_names_are_refused(name: Any) -> None:
    with pytest.raises(TransferError):
        check_name(name)


# --- frames --------------------------------------------------------------------------


def test_header_and_ack_round_trip() -> None:
    info = info_of("résumé.pdf", b"data")
    assert encode_header(info)[:1] == b"H"
    assert decode_info(encode_header(info)) == info
    assert parse_reply(encode_ack(info)) == (ACK, info)
    assert parse_reply(READY) == (READY, None)
    assert parse_reply(encode_error("disk full")) == (ERROR, "disk full")


def test_error_text_from_the_peer_is_one_printable_line() -> None:
    assert parse_reply(encode_error("bad\nthing\x1b[2J")) == (ERROR, "bad thing [2J")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"name": 1, "size": 1, "sha256": "0" * 64}).encode(),
        json.dumps({"name": "a", "size": -1, "sha256": "0" * 64}).encode(),
        json.dumps({"name": "a", "size": True, "sha256": "0" * 64}).encode(),
        json.dumps({"name": "a", "size": 1.5, "sha256": "0" * 64}).encode(),
        json.dumps({"name": "a", "size": 1, "sha256": "0" * 63}).encode(),
        json.dumps({"name": "a", "size": 1, "sha256": "G" * 64}).encode(),
        b'{"name": "' + b"a" * 5000 + b'"}',
        b"\xff\xfe",
    ],
)
def test_malformed_headers_are_protocol_errors(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_info(b"H" + body)


@pytest.mark.parametrize("frame", [b"", b"Z", b"Rx", b"X[]", b'X{"error": 3}'])
def test_malformed_replies_are_protocol_errors(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_reply(frame)


# --- the receiver -----------------------------------------------------------------------


def test_receives_several_files_in_one_session(tmp_path: Any) -> None:
    receiver = Receiver(str(tmp_path))
    files = {"a.bin": os.urandom(1000), "b.txt": b"hello\n", "empty": b""}
    for name, data in files.items():
        replies = send(receiver, name, data, size=64)
        assert replies == [READY, encode_ack(info_of(name, data))]
        assert receiver.current is None
    assert listing(tmp_path) == sorted(files)
    for name, data in files.items():
        assert (tmp_path / name).read_bytes() == data
    assert receiver.completed == [info_of(n, d) for n, d in files.items()]
    assert receiver.failures == []


def test_nothing_appears_under_the_name_before_the_end(tmp_path: Any) -> None:
    receiver = Receiver(str(tmp_path))
    data = b"0123456789"
    receiver.receive(encode_header(info_of("f", data)))
    receiver.receive(CHUNK + data)
    assert "f" not in listing(tmp_path)
    assert len(listing(tmp_path)) == 1  # the temporary file
    assert receiver.current == info_of("f", data)
    assert receiver.received == 10
    receiver.receive(END)
    assert listing(tmp_path) == ["f"]


def test_new_files_get_the_usual_mode(tmp_path: Any) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    send(Receiver(str(tmp_path)), "f", b"x")
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o666 & ~umask


def test_digest_mismatch_is_refused_and_leaves_nothing(tmp_path: Any) -> None:
    receiver = Receiver(str(tmp_path))
    lie = FileInfo("f", 4, hashlib.sha256(b"good").hexdigest())
    assert receiver.receive(encode_header(lie)) == [READY]
    assert receiver.receive(CHUNK + b"evil") == []
    (reply,) = receiver.receive(END)
    assert "sha256 mismatch" in reason(reply)
    assert listing(tmp_path) == []
    assert len(receiver.failures) == 1
    # The session goes on.
    assert send(receiver, "g", b"ok")[-1][:1] == ACK


def test_short_file_is_refused(tmp_path: Any) -> None:
    receiver = Receiver(str(tmp_path))
    receiver.receive(encode_header(info_of("f", b"12345")))
    receiver.receive(CHUNK + b"123")
    (reply,) = receiver.receive(END)
    assert "size mismatch" in reason(reply)
    assert listing(tmp_path) == []


def test_excess_data_is_refused_at_once_and_the_rest_dropped(tmp_path: Any) -> None:
    receiver = Receiver(str(tmp_path))
    receiver.receive(encode_header(info_of("f", b"123")))
    (reply,) = receiver.receive(CHUNK + b"12345")
    assert "more data" in reason(reply)
    assert listing(tmp_path) == []
    assert receiver.receive(CHUNK + b"more") == []  # dropped until the end frame
    assert receiver.receive(END) == []  # the one reply for this file was sent
    assert send(receiver, "g", b"ok")[-1][:1] == ACK
    assert listing(tmp_path) == ["g"]


def test_existing_file_is_refused_before_any_data(tmp_path: Any) -> None:
    (tmp_path / "f").write_bytes(b"keep me")
    receiver = Receiver(str(tmp_path))
    (reply,) = receiver.receive(encode_header(info_of("f", b"new")))
    assert "file exists" in reason(reply) and "--force" in reason(reply)
    assert receiver.current is None  # no chunks are expected for a refused file
    assert (tmp_path / "f").read_bytes() == b"keep me"


def test_force_overwrites(tmp_path: Any) -> None:
    (tmp_path / "f").write_bytes(b"old")
    replies = send(Receiver(str(tmp_path), force=True), "f", b"new")
    assert replies[-1][:1] == ACK
    assert (tmp_path / "f").read_bytes() == b"new"


def test_a_directory_is_never_replaced(tmp_path: Any) -> None:
    (tmp_path / "d").mkdir()
    (reply,) = Receiver(str(tmp_path), force=True).receive(encode_header(info_of("d", b"x")))
    assert "directory" in reason(reply)
    assert (tmp_path / "d").is_dir()


def test_a_file_that_appears_meanwhile_is_not_clobbered(tmp_path: Any) -> None:
    receiver = Receiver(str(tmp_path))
    receiver.receive(encode_header(info_of("f", b"new")))
    receiver.receive(CHUNK + b"new")
    (tmp_path / "f").write_bytes(b"theirs")  # created by someone else mid-transfer
    (reply,) = receiver.receive(END)
    assert "file exists" in reason(reply)
    assert (tmp_path / "f").read_bytes() == b"theirs"
    assert listing(tmp_path) == ["f"]


@pytest.mark.parametrize("name", ["../evil", "/tmp/evil", "a/b", "..", "bad\x07"])
def test_unsafe_names_are_refused_by_the_receiver(tmp_path: Any, name: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    receiver = Receiver(str(out))
    (reply,) = receiver.receive(encode_header(FileInfo(name, 1, "0" * 64)))
    assert reason(reply)
    assert receiver.current is None
    assert listing(tmp_path) == ["out"] and listing(out) == []


class FullDisk(IncomingFile):
    """Writes fail with ENOSPC after ``room`` bytes, as on a full disk."""

    room = 10

    def write(self, data: memoryview) -> None:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        super().write(data)


def test_full_disk_fails_the_file_and_keeps_the_session(tmp_path: Any) -> None:
    def opener(directory: str, name: str, force: bool) -> IncomingFile:
        return FullDisk(directory, name, force=force)

    receiver = Receiver(str(tmp_path), opener=opener)
    data = os.urandom(100)
    receiver.receive(encode_header(info_of("big", data)))
    assert receiver.receive(CHUNK + data[:8]) == []
    (reply,) = receiver.receive(CHUNK + data[8:50])
    assert reason(reply) == "cannot write big: no space left on device"
    assert listing(tmp_path) == []  # the temporary file is gone too
    assert receiver.receive(CHUNK + data[50:]) == []
    assert receiver.receive(END) == []
    assert send(receiver, "small", b"fits")[-1][:1] == ACK
    assert receiver.failures == ["cannot write big: no space left on device"]


def test_not_enough_space_is_refused_before_any_data(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Usage:
        free = 100

    monkeypatch.setattr(transfer.shutil, "disk_usage", lambda path: Usage)
    (reply,) = Receiver(str(tmp_path)).receive(encode_header(FileInfo("f", 101, "0" * 64)))
    assert "not enough space" in reason(reply)
    assert listing(tmp_path) == []


def test_connection_lost_mid_file_leaves_nothing(tmp_path: Any) -> None:
    receiver = Receiver(str(tmp_path))
    receiver.receive(encode_header(info_of("f", b"0123456789")))
    receiver.receive(CHUNK + b"01234")
    receiver.connection_lost()
    assert listing(tmp_path) == []
    assert receiver.failures == ["f: connection closed after 5 of 10 bytes; nothing was written"]
    receiver.connection_lost()  # idempotent
    assert len(receiver.failures) == 1


def test_connection_lost_between_files_is_no_failure(tmp_path: Any) -> None:
    receiver = Receiver(str(tmp_path))
    send(receiver, "f", b"x")
    receiver.connection_lost()
    assert receiver.failures == [] and listing(tmp_path) == ["f"]


@pytest.mark.parametrize(
    "frames",
    [
        [CHUNK + b"x"],  # data before any header
        [END],
        [b"Q"],
        [b""],
        [END + b"x"],
        [encode_header(info_of("f", b"12")), CHUNK + b"1", encode_header(info_of("g", b"1"))],
        [encode_header(info_of("f", b"12")), CHUNK + b"1", b"?"],
    ],
)
def test_protocol_errors_end_the_session_and_clean_up(tmp_path: Any, frames: List[bytes]) -> None:
    receiver = Receiver(str(tmp_path))
    with pytest.raises(ProtocolError) as caught:
        for frame in frames:
            receiver.receive(frame)
    assert caught.value.reply[:1] == ERROR
    receiver.connection_lost()
    assert listing(tmp_path) == []
    assert receiver.failures
