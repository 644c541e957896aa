"""The receiving side of the file protocol: names, temporary files, failures, saving.

Regression tests for :mod:`framekit.apps.transfer` found through ``recv-file``;
the protocol's own tests are in ``tests/test_transfer.py``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
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
    ProtocolError,
    Receiver,
    TransferError,
    check_name,
    encode_header,
)


def info_of(name: str, data: bytes) -> FileInfo:
    return FileInfo(name, len(data), hashlib.sha256(data).hexdigest())


def send(receiver: Receiver, name: str, data: bytes) -> List[bytes]:
    """Offer one file and stream it in one chunk; return every reply."""
    replies = receiver.receive(encode_header(info_of(name, data)))
    replies += receiver.receive(CHUNK + data)
    return replies + receiver.receive(END)


@pytest.mark.parametrize(
    "char",
    [
        "\x9b",  # C1 CSI: a terminal escape on its own
        "\x85",  # C1 next line
        "\u202e",  # right-to-left override: "evil\u202etxt.exe"
        "\u202a",
        "\u2066",  # bidi isolates
        "\u2069",
        "\u200b",  # zero-width space
        "\u200d",  # zero-width joiner
        "\u200f",  # right-to-left mark
        "\ufeff",  # byte order mark
        "\u2028",  # line separator
        "\u2029",  # paragraph separator
        "\u00ad",  # soft hyphen (a format character)
    ],
)
def test_invisible_and_control_characters_are_refused(char: str) -> None:
    with pytest.raises(TransferError, match="not allowed"):
        check_name(f"evil{char}txt.exe")


@pytest.mark.parametrize("name", ["a b.txt", "naïve 文件.bin", "emoji 🎉", "x" * 255])
def test_printable_names_still_pass(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("char", ["é", "文", "🎉"])
def test_any_name_check_name_accepts_can_be_saved(tmp_path: Any, char: str) -> None:
    # A legal name of up to 255 bytes: its temporary name must fit NAME_MAX too.
    name = char * (255 // len(char.encode("utf-8")))
    assert check_name(name) == name
    receiver = Receiver(str(tmp_path))
    assert send(receiver, name, b"data")[-1][:1] == ACK
    assert receiver.failures == []
    assert os.listdir(tmp_path) == [name]
    assert (tmp_path / name).read_bytes() == b"data"


def test_a_protocol_error_mid_file_is_one_failure(tmp_path: Any) -> None:
    receiver = Receiver(str(tmp_path))
    assert receiver.receive(encode_header(info_of("a", b"xyz"))) == [READY]
    assert receiver.receive(CHUNK + b"x") == []
    with pytest.raises(ProtocolError):
        receiver.receive(encode_header(info_of("b", b"q")))
    receiver.connection_lost("connection closed")
    assert len(receiver.failures) == 1, receiver.failures
    assert "new header arrived before the end of a" in receiver.failures[0]
    assert receiver.current is None
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "code",
    sorted({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}),
    ids=errno.errorcode.get,
)
def test_saving_without_hard_links(tmp_path: Any, monkeypatch: Any, code: int) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(transfer.os, "link", no_links)
    receiver = Receiver(str(tmp_path))
    assert send(receiver, "f", b"content")[-1][:1] == ACK
    assert os.listdir(tmp_path) == ["f"]
    assert (tmp_path / "f").read_bytes() == b"content"
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == 0o666 & ~_umask()


def test_saving_without_hard_links_never_clobbers(tmp_path: Any, monkeypatch: Any) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(transfer.os, "link", no_links)
    receiver = Receiver(str(tmp_path))
    assert receiver.receive(encode_header(info_of("f", b"new"))) == [READY]
    receiver.receive(CHUNK + b"new")
    (tmp_path / "f").write_bytes(b"precious")  # appears before the end
    (reply,) = receiver.receive(END)
    assert reply[:1] == ERROR and b"file exists" in reply
    assert os.listdir(tmp_path) == ["f"]
    assert (tmp_path / "f").read_bytes() == b"precious"


@pytest.mark.parametrize("force", [False, True])
def test_the_directory_is_synced_after_the_rename(
    tmp_path: Any, monkeypatch: Any, force: bool
) -> None:
    synced: List[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        mode = os.fstat(fd).st_mode
        synced.append("dir" if stat.S_ISDIR(mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(transfer.os, "fsync", fsync)
    receiver = Receiver(str(tmp_path), force=force)
    assert send(receiver, "f", b"content")[-1][:1] == ACK
    assert synced == ["file", "dir"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
