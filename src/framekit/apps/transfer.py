"""File transfer over frames: the message format, name safety, and the receiver.

Design notes
------------
The tutorials' file sender writes the file and closes the socket; the receiver
writes whatever arrives until EOF.  Nothing says how big the file was, whether
it arrived whole, or what it should be called, and a dropped connection leaves
a truncated file under its final name.  Here every file is announced, streamed
in bounded chunks, and verified before it gets its name.

This module is sans-IO with respect to the network: frames in, reply frames
out.  It never touches a socket, so the CLI (:mod:`framekit.apps.commands.files`) and
any other driver, blocking or asyncio, share it, and tests drive it with plain
``bytes``.  It does touch the filesystem, through :class:`IncomingFile`, which a
test can replace (for instance with a writer that reports a full disk).

Every frame starts with one type byte (an ASCII letter, so a capture reads
well)::

    sender -> receiver                      receiver -> sender
    H {"name","size","sha256"}  header      R                    ready: send the data
    C <bytes>                   chunk       A {"name","size","sha256"}  acknowledgement
    E                           end         X {"error"}          refusal or failure

One file goes like this: ``H``, then the receiver answers ``R`` (or ``X``: bad
name, file exists, no room), then ``C``... ``E``, and the receiver answers
exactly one more frame: ``A`` with the digest *it* computed, or ``X``.  That
``X`` may come before ``E`` (a write failed); the receiver then drops chunks
until ``E`` so the stream stays in step, and a sender may stop early.  Several
files follow each other on one connection; the sender ends the session by
closing it between files.

A chunk carries at most :data:`CHUNK_SIZE` (1 MiB) of data, so the memory both
ends need is bounded by one chunk, whatever the file size: a 1 GiB file is never
held in memory.  The receiver hashes data as it writes it.

Files are written to a temporary file in the target directory (so the final
rename stays on one filesystem and is atomic), fsynced, and only renamed to
their name after the size and sha256 match; the directory is fsynced after
the rename, so the name survives a crash too.  Without ``force`` the rename is
a ``link()`` (it fails if the name appeared meanwhile) and never clobbers; on a
filesystem without hard links it is an exclusive create of the name followed
by a rename over that placeholder.  A
failed or interrupted transfer removes its temporary file: nothing is ever left
under the final name.

Names are the sender's choice, so they are untrusted: absolute paths, ``..``,
path separators, NUL and control characters (which could rewrite a terminal
through a log line) are refused.

**Stale temporary files.**  A receiver killed with SIGKILL (or a power cut)
cannot remove its temporary file, ``.NAME.XXXXXXXX.part``.  Every temporary
file is locked (``flock``) by the receiver that writes it, for as long as it
exists, and the kernel drops that lock when the process dies, however it
dies.  :func:`remove_stale_parts` (``recv-file`` calls it at start) removes
the files of that exact pattern that no process holds locked: those of a dead
receiver, never those of another receiver writing to the same directory right
now.  To close the gap between creating a file and locking it, a receiver
holds a shared lock on the directory itself during those two steps, and the
cleanup an exclusive one while it looks.  Where ``flock`` does not exist
(Windows), only files untouched for :data:`STALE_AGE` seconds are removed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import ntpath
import os
import re
import secrets
import shutil
import stat
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ACK",
    "CHUNK",
    "CHUNK_SIZE",
    "END",
    "ERROR",
    "HEADER",
    "READY",
    "FileInfo",
    "IncomingFile",
    "ProtocolError",
    "Receiver",
    "TransferError",
    "check_name",
    "decode_info",
    "encode_ack",
    "encode_error",
    "encode_header",
    "parse_reply",
    "remove_stale_parts",
]

logger = logging.getLogger("framekit")

#: Most data bytes in one chunk frame.
CHUNK_SIZE = 1024 * 1024
#: Type bytes, one per frame kind.
HEADER = b"H"
READY = b"R"
CHUNK = b"C"
END = b"E"
ACK = b"A"
ERROR = b"X"

_MAX_NAME_BYTES = 255  # NAME_MAX on every common filesystem
_MAX_INFO_BYTES = 4096  # a header is a name, a size and a digest
_HEX = frozenset("0123456789abcdef")
#: Invisible or reordering characters refused in names even where ``isprintable()``
#: would not catch them: zero-width and bidi marks, bidi embeddings, overrides
#: and isolates, and the byte order mark.
_INVISIBLE = frozenset(
    [chr(c) for c in range(0x200B, 0x2010)]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\ufeff"]
)
#: Bytes of a received file's name kept in its temporary name (``.NAME.RANDOM.part``).
_TEMP_NAME_BYTES = 200
#: The temporary names this module makes, and only those.
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.part$", re.DOTALL)
#: Without ``flock``: seconds since a temporary file last changed before it counts as stale.
STALE_AGE = 24 * 3600


class TransferError(Exception):
    """A file could not be transferred; the message is a one-line reason."""


class ProtocolError(TransferError):
    """The peer broke the protocol; the connection cannot go on.

    Attributes:
        reply: the frame to send the peer before closing (an ``X`` frame).
    """

    reply: bytes

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.reply = encode_error(message)


@dataclass(frozen=True)
class FileInfo:
    """What a header announces and an acknowledgement confirms.

    Attributes:
        name: the file name (no directory part).
        size: the size in bytes.
        sha256: the SHA-256 digest of the content, lower-case hex.
    """

    name: str
    size: int
    sha256: str


def check_name(name: object) -> str:
    """Return ``name`` if it is safe as a file name in the target directory.

    Raises:
        TransferError: it is empty, too long, ``.`` or ``..``, absolute, or holds
            a path separator, a drive, or a character that is not printable
            (controls, C1 controls, line and paragraph separators, format
            characters) or invisible (zero-width, bidi controls, BOM).
    """
    if not isinstance(name, str) or not name:
        raise TransferError(f"invalid file name {name!r}: it must be a non-empty string")
    if name in (".", ".."):
        raise TransferError(f"invalid file name {name!r}")
    if "/" in name or "\\" in name or os.sep in name or (os.altsep and os.altsep in name):
        raise TransferError(f"unsafe file name {name!r}: path separators are not allowed")
    if ntpath.splitdrive(name)[0] or os.path.isabs(name):
        raise TransferError(f"unsafe file name {name!r}: absolute paths are not allowed")
    if any(not c.isprintable() or c in _INVISIBLE for c in name):
        raise TransferError(
            f"unsafe file name {name!r}: control, format and bidi characters are not allowed"
        )
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise TransferError(f"invalid file name {name!r}: not valid UTF-8") from None
    if len(encoded) > _MAX_NAME_BYTES:
        raise TransferError(f"file name too long ({len(encoded)} bytes, at most 255)")
    return name


# --- frames ------------------------------------------------------------------


def _info_body(info: FileInfo) -> bytes:
    obj = {"name": info.name, "size": info.size, "sha256": info.sha256}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_header(info: FileInfo) -> bytes:
    """Return the ``H`` frame that announces ``info``."""
    return HEADER + _info_body(info)


def encode_ack(info: FileInfo) -> bytes:
    """Return the ``A`` frame that confirms ``info`` (digest computed by the receiver)."""
    return ACK + _info_body(info)


def encode_error(reason: str) -> bytes:
    """Return the ``X`` frame that carries a one-line ``reason``."""
    return ERROR + json.dumps({"error": reason}, ensure_ascii=False).encode("utf-8")


def _json_body(frame: bytes, what: str) -> Any:
    body = frame[1:]
    if len(body) > _MAX_INFO_BYTES:
        raise ProtocolError(f"{what} frame too large ({len(body)} bytes)")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"malformed {what} frame: not JSON") from None


def decode_info(frame: bytes, what: str = "header") -> FileInfo:
    """Parse the JSON body of an ``H`` or ``A`` frame.

    Raises:
        ProtocolError: the body is not an object with a string ``name``, an
            integer ``size`` >= 0 and a 64-digit lower-case hex ``sha256``.
    """
    obj = _json_body(frame, what)
    if not isinstance(obj, dict):
        raise ProtocolError(f"malformed {what} frame: not a JSON object")
    name, size, digest = obj.get("name"), obj.get("size"), obj.get("sha256")
    if not isinstance(name, str):
        raise ProtocolError(f"malformed {what} frame: 'name' must be a string")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ProtocolError(f"malformed {what} frame: 'size' must be an integer >= 0")
    if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX:
        raise ProtocolError(f"malformed {what} frame: 'sha256' must be 64 lower-case hex digits")
    return FileInfo(name, size, digest)


def parse_reply(frame: bytes) -> tuple[bytes, Any]:
    """Parse a receiver's reply.

    Returns:
        ``(READY, None)``, ``(ACK, FileInfo)`` or ``(ERROR, reason)``.

    Raises:
        ProtocolError: the frame is none of those.
    """
    kind = frame[:1]
    if kind == READY and len(frame) == 1:
        return READY, None
    if kind == ACK:
        return ACK, decode_info(frame, "acknowledgement")
    if kind == ERROR:
        obj = _json_body(frame, "error")
        reason = obj.get("error") if isinstance(obj, dict) else None
        if not isinstance(reason, str):
            raise ProtocolError("malformed error frame: no 'error' string")
        # One line, no terminal control characters: the text comes from the peer.
        return ERROR, "".join(c if c.isprintable() else " " for c in reason)
    raise ProtocolError(f"unexpected reply frame {frame[:16]!r} from the receiver")


# --- the receiving side -----------------------------------------------------------


class IncomingFile:
    """A file being received: a temporary file in ``directory`` until :meth:`commit`.

    Args:
        directory: where the file goes.
        name: its final name (already checked with :func:`check_name`).
        force: replace an existing file of that name.

    Raises:
        OSError: the temporary file cannot be created.
    """

    def __init__(self, directory: str, name: str, *, force: bool = False) -> None:
        self.path = os.path.join(directory, name)
        self.force = force
        # Not mkstemp: its files are 0600, and a received file should get the
        # usual mode (0666 less the umask), as any new file does.
        stem = _shorten(name, _TEMP_NAME_BYTES)
        with _directory_lock(directory, exclusive=False):  # see remove_stale_parts
            for _attempt in range(100):
                self.temp_path = os.path.join(directory, f".{stem}.{secrets.token_hex(4)}.part")
                try:
                    fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                except FileExistsError:
                    continue
                break
            else:  # pragma: no cover - 100 collisions of 32 random bits
                raise FileExistsError(errno.EEXIST, "cannot create a temporary file", directory)
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # ours until closed: not stale
        self._file = os.fdopen(fd, "wb", buffering=0)

    def write(self, data: memoryview) -> None:
        """Append ``data``.  Raises ``OSError`` (``ENOSPC`` on a full disk...)."""
        while data:
            written = self._file.write(data)
            if not written:  # pragma: no cover - raw files write or raise
                raise OSError(errno.EIO, "short write")
            data = data[written:]

    def commit(self) -> None:
        """Flush to disk and give the file its final name.

        Raises:
            FileExistsError: the name exists and ``force`` is false.
            OSError: syncing or renaming failed (the temporary file is then removed).
        """
        try:
            os.fsync(self._file.fileno())
            self._file.close()
            if self.force:
                os.replace(self.temp_path, self.path)
            else:
                self._link()
        except BaseException:
            self.discard()
            raise
        _sync_directory(os.path.dirname(self.path))

    def _link(self) -> None:
        """Give the file its name without ever replacing one that exists."""
        try:
            os.link(self.temp_path, self.path)  # atomic: fails if the name exists
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            # No hard links here (FAT, some network filesystems...): claim the
            # name with an exclusive create, then move the file over that
            # placeholder, which is ours.  Best effort: a file that appears
            # under the name between the two steps cannot, as it could not
            # with link(); only something that deletes our placeholder and
            # puts its own in its place in that instant would be replaced.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            os.close(fd)
            try:
                os.replace(self.temp_path, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
                raise
        else:
            os.unlink(self.temp_path)

    def discard(self) -> None:
        """Close and remove the temporary file (idempotent)."""
        self._file.close()
        try:
            os.unlink(self.temp_path)
        except FileNotFoundError:
            pass


@contextlib.contextmanager
def _directory_lock(directory: str, *, exclusive: bool) -> Iterator[None]:
    """Hold a ``flock`` on ``directory`` (nothing where there is none, or it cannot be had)."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError:  # a filesystem without locks: no worse than before
            pass
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_stale_parts(directory: str) -> List[str]:
    """Remove the temporary files that interrupted transfers left in ``directory``.

    Only names of the form ``.NAME.XXXXXXXX.part`` (eight hex digits) are
    considered, and only those no live receiver holds locked (see the module
    notes); without ``flock``, those untouched for :data:`STALE_AGE` seconds.

    Returns:
        The names removed.
    """
    removed: List[str] = []
    with _directory_lock(directory, exclusive=True):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return removed
        for name in names:
            if _TEMP_NAME.match(name) and _stale(os.path.join(directory, name)):
                try:
                    os.unlink(os.path.join(directory, name))
                except OSError:
                    continue
                removed.append(name)
    return removed


def _stale(path: str) -> bool:
    try:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(path, flags)
    except OSError:  # gone, a symlink, unreadable: not ours to judge
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        if fcntl is None:  # pragma: no cover - Windows
            return time.time() - os.fstat(fd).st_mtime > STALE_AGE
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live receiver holds it
        return True
    finally:
        os.close(fd)


#: ``link()`` errors that mean "no hard links on this filesystem".
_NO_LINKS = frozenset(
    e for e in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS) if e
)


def _sync_directory(directory: str) -> None:
    """Make a rename or link in ``directory`` durable (best effort: not every OS can)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


def _shorten(name: str, limit: int) -> str:
    """``name`` cut to at most ``limit`` bytes of UTF-8, on a character boundary."""
    return name.encode("utf-8")[:limit].decode("utf-8", "ignore")


Opener = Callable[[str, str, bool], IncomingFile]


def _open_incoming(directory: str, name: str, force: bool) -> IncomingFile:
    return IncomingFile(directory, name, force=force)


def _exists(name: str) -> str:
    return f"{name}: file exists (use --force to overwrite)"


def _describe_os_error(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else str(exc)


class Receiver:
    """The receiving end of a session, frame by frame.

    Feed it every frame that arrives with :meth:`receive` and send back the
    frames it returns; call :meth:`connection_lost` when the stream ends.

    Args:
        directory: where received files go (must exist).
        force: overwrite existing files.
        opener: ``opener(directory, name, force) -> IncomingFile`` (tests inject
            failing writers here).

    Attributes:
        current: the file being received, or ``None`` between files.
        received: data bytes of ``current`` received so far.
        completed: files received and verified, in order.
        failures: one-line reasons, one per failed file.
    """

    def __init__(
        self, directory: str, *, force: bool = False, opener: Optional[Opener] = None
    ) -> None:
        self.directory = directory
        self.force = force
        self._opener: Opener = opener or _open_incoming
        self.current: Optional[FileInfo] = None
        self.received = 0
        self.completed: List[FileInfo] = []
        self.failures: List[str] = []
        self._file: Optional[IncomingFile] = None
        self._hash: Any = None
        self._discarding = False  # after an X reply: drop chunks until E

    def receive(self, frame: bytes) -> List[bytes]:
        """Handle one frame from the sender.

        Returns:
            The frames to send back, in order (often none).

        Raises:
            ProtocolError: the sender broke the protocol; send ``exc.reply``
                and close.  Any partial file has been removed.
        """
        kind = frame[:1]
        try:
            if kind == CHUNK:
                return self._chunk(frame)
            if kind == END and len(frame) == 1:
                return self._end()
            if kind == HEADER:
                return self._header(frame)
            raise ProtocolError(f"unexpected frame {frame[:16]!r} from the sender")
        except ProtocolError as exc:
            self._abort(str(exc))
            self._reset()  # counted once: connection_lost() must not fail the file again
            raise

    def connection_lost(self, reason: str = "connection closed") -> None:
        """The stream ended: a file still in progress failed and is removed.

        Args:
            reason: how it ended, for the failure's message.
        """
        if self.current is not None and not self._discarding:
            self._abort(
                f"{self.current.name}: {reason} after {self.received} of "
                f"{self.current.size} bytes; nothing was written"
            )
        self._reset()

    # --- states ---------------------------------------------------------------

    def _header(self, frame: bytes) -> List[bytes]:
        if self.current is not None:
            raise ProtocolError(f"a new header arrived before the end of {self.current.name}")
        info = decode_info(frame)
        try:
            check_name(info.name)
            self._check_room(info)
            self._file = self._opener(self.directory, info.name, self.force)
        except TransferError as exc:
            return [self._fail(str(exc), discard=False)]
        except OSError as exc:
            return [self._fail(f"{info.name}: {_describe_os_error(exc)}", discard=False)]
        self.current = info
        self.received = 0
        self._hash = hashlib.sha256()
        self._discarding = False
        return [READY]

    def _check_room(self, info: FileInfo) -> None:
        path = os.path.join(self.directory, info.name)
        if os.path.isdir(path):
            raise TransferError(f"{info.name}: a directory of that name exists")
        if not self.force and os.path.lexists(path):
            raise TransferError(_exists(info.name))
        free = shutil.disk_usage(self.directory).free
        if info.size > free:
            raise TransferError(
                f"{info.name}: not enough space: {info.size} bytes needed, {free} free"
            )

    def _chunk(self, frame: bytes) -> List[bytes]:
        if self.current is None:
            raise ProtocolError("a data chunk arrived before any header")
        if self._discarding:
            return []
        info, data = self.current, memoryview(frame)[1:]
        if self.received + len(data) > info.size:
            return [self._fail(f"{info.name}: more data than the {info.size} bytes announced")]
        assert self._file is not None
        try:
            self._file.write(data)
        except OSError as exc:
            return [self._fail(f"cannot write {info.name}: {_describe_os_error(exc)}")]
        self._hash.update(data)
        self.received += len(data)
        return []

    def _end(self) -> List[bytes]:
        info = self.current
        if info is None:
            raise ProtocolError("an end frame arrived before any header")
        if self._discarding:  # the X reply was sent already
            self._reset()
            return []
        digest = self._hash.hexdigest()
        if self.received != info.size:
            return self._finish_failed(
                f"{info.name}: size mismatch: {info.size} bytes announced, {self.received} received"
            )
        if digest != info.sha256:
            return self._finish_failed(
                f"{info.name}: sha256 mismatch: announced {info.sha256}, received data has {digest}"
            )
        assert self._file is not None
        try:
            self._file.commit()
        except FileExistsError:
            return self._finish_failed(_exists(info.name))
        except OSError as exc:
            return self._finish_failed(f"cannot save {info.name}: {_describe_os_error(exc)}")
        self._file = None
        done = FileInfo(info.name, self.received, digest)
        self.completed.append(done)
        logger.info("received %s (%d bytes, sha256 %s)", done.name, done.size, done.sha256)
        self._reset()
        return [encode_ack(done)]

    # --- failure paths -------------------------------------------------------

    def _fail(self, reason: str, *, discard: bool = True) -> bytes:
        """Record a failed file, remove its temporary file, and return the X frame.

        With ``discard``, the file's remaining chunks are dropped until its end frame.
        """
        self._abort(reason)
        if discard:
            self._discarding = True
        return encode_error(reason)

    def _finish_failed(self, reason: str) -> List[bytes]:
        reply = self._fail(reason, discard=False)
        self._reset()
        return [reply]

    def _abort(self, reason: str) -> None:
        if self._file is not None:
            self._file.discard()
            self._file = None
        self.failures.append(reason)
        logger.error("%s", reason)

    def _reset(self) -> None:
        if self._file is not None:
            self._file.discard()
            self._file = None
        self.current = None
        self.received = 0
        self._hash = None
        self._discarding = False
