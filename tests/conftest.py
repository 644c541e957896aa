"""Shared fixtures: every codec test runs on both backends."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any, Callable

import pytest

from framekit.codecs import length_prefixed as _codec_py

try:
    from framekit import _speedups
except ImportError:  # pragma: no cover - exercised when the build was skipped
    _speedups = None  # type: ignore[assignment]

REQUIRE_EXTENSION = os.environ.get("FRAMEKIT_REQUIRE_EXTENSION", "") not in ("", "0")

BACKENDS = [pytest.param(_codec_py, id="python")]
BACKENDS.append(
    pytest.param(
        _speedups,
        id="cython",
        marks=pytest.mark.skipif(_speedups is None, reason="framekit._speedups was not built"),
    )
)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> ModuleType:
    """The codec module under test: the pure reference or ``framekit._speedups``."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def LP(backend: ModuleType) -> Callable[..., Any]:
    """The ``LengthPrefixed`` class of the backend under test."""
    return backend.LengthPrefixed  # type: ignore[no-any-return]


#: The pure-Python line, delimiter, netstring and fixed-length codecs, gathered
#: in one namespace that has the same names as ``framekit._speedups_text``.
from types import SimpleNamespace  # noqa: E402

from framekit.codecs import delimited as _delimited_py  # noqa: E402
from framekit.codecs import fixed_length as _fixed_length_py  # noqa: E402
from framekit.codecs import lines as _lines_py  # noqa: E402
from framekit.codecs import netstring as _netstring_py  # noqa: E402

TEXT_PY = SimpleNamespace(
    **{
        name: getattr(module, name)
        for module in (_lines_py, _delimited_py, _netstring_py, _fixed_length_py)
        for name in module.__all__
    }
)
try:
    from framekit import _speedups_text
except ImportError:  # pragma: no cover - exercised when the build was skipped
    _speedups_text = None  # type: ignore[assignment]

#: Both backends of the text codecs, for ``@pytest.mark.parametrize("text", TEXT_BACKENDS)``
#: (a parameter, not a fixture, so that hypothesis tests can take it too).
TEXT_BACKENDS = [
    pytest.param(TEXT_PY, id="python"),
    pytest.param(
        _speedups_text,
        id="cython",
        marks=pytest.mark.skipif(
            _speedups_text is None, reason="framekit._speedups_text was not built"
        ),
    ),
]


def reload_codec_selector() -> ModuleType:
    import framekit.codecs.backend

    return importlib.reload(framekit.codecs.backend)


# --- network fixtures shared by the transport tests ---------------------------

import contextlib  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import tempfile  # noqa: E402
from typing import Iterator, List, Tuple  # noqa: E402


def ipv6_available() -> bool:
    """Whether ``::1`` can be bound here (some containers have no IPv6)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not ipv6_available(), reason="::1 is not available here")

#: Real protocol messages for the ``prefix=`` tests (presets with a type byte):
#: a PostgreSQL simple Query ('Q', Int32 length counting itself, query, NUL)...
PG_QUERY = b"Q\x00\x00\x00\x0dSELECT 1\x00"
#: ...and an MQTT PUBLISH to "a/b", QoS 0 (type 3, remaining length 8, topic, payload).
MQTT_PUBLISH = b"\x30\x08\x00\x03a/bhey"


@pytest.fixture
def sock_dir() -> Iterator[str]:
    """A short temporary directory for Unix sockets (paths are limited to ~108 bytes)."""
    path = tempfile.mkdtemp(prefix="fk-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


#: Someone alive at a Unix socket path, as :func:`live_unix_socket` makes them.
LIVE_UNIX_SOCKETS = ["stream", "datagram", "connected datagram", "full backlog"]


@contextlib.contextmanager
def live_unix_socket(path: str, kind: str) -> Iterator[socket.socket]:
    """A live socket bound to ``path`` that a server must not take over.

    Probing it with a connect does not fail with ``ECONNREFUSED`` but, by kind
    and the probe's socket type: success, ``EPROTOTYPE`` (the other socket
    type), ``EPERM`` (a datagram socket connected elsewhere) or ``EAGAIN``.
    """
    datagram = kind in ("datagram", "connected datagram")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM)
    clients: List[socket.socket] = []
    with sock, contextlib.ExitStack() as stack:
        sock.bind(path)
        if kind == "connected datagram":
            peer = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
            peer.bind("")
            sock.connect(peer.getsockname())
        elif kind == "stream":
            sock.listen(8)
        elif kind == "full backlog":
            sock.listen(0)
            while len(clients) < 100:  # connect until the backlog refuses (EAGAIN)
                client = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
                client.setblocking(False)
                clients.append(client)
                try:
                    client.connect(path)
                except BlockingIOError:
                    break
        yield sock


@pytest.fixture(scope="session")
def tls_contexts() -> Tuple[ssl.SSLContext, ssl.SSLContext]:
    """``(server_context, client_context)`` from a CA made for the test run.

    The server certificate is valid for ``localhost``, ``127.0.0.1`` and ``::1``;
    the client context trusts only the test CA and verifies host names.
    """
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client)
    return server, client
