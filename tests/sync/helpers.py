"""Plain helpers for the blocking transport tests (fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import Any, Callable, Iterator, List, Tuple

import framekit
from framekit.codecs.interface import CodecBase, DecoderBase

#: Every blocking call in these tests gives up after this long.
TIMEOUT = 5.0


class LogWatcher(logging.Handler):
    """Collects the ``framekit`` logger's records and waits for one to appear."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: List[logging.LogRecord] = []
        self._cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._cond:
            self.records.append(record)
            self._cond.notify_all()

    def find(self, text: str, level: int = logging.WARNING) -> List[logging.LogRecord]:
        with self._cond:
            return [r for r in self.records if r.levelno >= level and text in r.getMessage()]

    def wait_for(self, text: str, level: int = logging.WARNING) -> logging.LogRecord:
        """The first record at ``level`` or above whose message contains ``text``."""
        with self._cond:
            found = self._cond.wait_for(lambda: self.find(text, level), TIMEOUT)
        assert found, f"no log record containing {text!r}; got {self.messages()}"
        return found[0]

    def messages(self, level: int = logging.DEBUG) -> List[str]:
        with self._cond:
            return [r.getMessage() for r in self.records if r.levelno >= level]


def tcp_pair(host: str = "127.0.0.1") -> Tuple[socket.socket, socket.socket]:
    """Two connected TCP sockets over loopback, with the test timeout."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, 0), family=family) as listener:
        a = socket.create_connection(listener.getsockname()[:2], timeout=TIMEOUT)
        b, _ = listener.accept()
    b.settimeout(TIMEOUT)
    return a, b


def unix_pair() -> Tuple[socket.socket, socket.socket]:
    """Two connected Unix stream sockets, with the test timeout."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a.settimeout(TIMEOUT)
    b.settimeout(TIMEOUT)
    return a, b


def start_thread(target: Callable[..., Any], *args: Any) -> threading.Thread:
    """Start ``target`` in a daemon thread (finish with :func:`join`)."""
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def join(thread: threading.Thread) -> None:
    thread.join(TIMEOUT)
    assert not thread.is_alive(), "helper thread did not finish"


@contextlib.contextmanager
def running(address: Any, handler: Any, codec: Any = None, **kwargs: Any) -> Iterator[Any]:
    """A started :func:`framekit.serve` server, shut down on exit."""
    with framekit.serve(address, handler, codec, **kwargs) as server:
        server.start()
        yield server


def connect_to(server: Any, codec: Any = None, **kwargs: Any) -> Any:
    """``framekit.connect`` to a test server, with the test timeout."""
    return framekit.connect(server.address, codec, timeout=TIMEOUT, **kwargs)


def echo(conn: Any) -> None:
    """A callable handler: send every frame back."""
    for frame in conn:
        conn.send(frame)


class LineDecoder(DecoderBase):
    """A codec of the test's own: newline-terminated frames (no escaping)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: Any) -> List[bytes]:
        self._buf += data
        *frames, rest = bytes(self._buf).split(b"\n")
        self._buf = bytearray(rest)
        return frames

    def eof(self) -> None:
        if self._buf:
            raise framekit.IncompleteFrame("unterminated line", pending=len(self._buf))


class LineCodec(CodecBase):
    def decoder(self) -> LineDecoder:
        return LineDecoder()

    def encode(self, payload: Any) -> bytes:
        return bytes(payload) + b"\n"
