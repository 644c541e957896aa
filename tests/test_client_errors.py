"""A client's errors name the address, what failed and the likely cause, the same way on
every transport."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, Tuple

import pytest

import framekit
import framekit.asyncio as fa


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def blocking_connect(address: str, **kw: Any) -> Any:
    return framekit.connect(address, timeout=5, **kw)


def asyncio_connect(address: str, **kw: Any) -> Any:
    async def main() -> Any:
        conn = await fa.connect(address, **kw)
        await conn.close()

    return asyncio.run(main())


CONNECTS = {"blocking": blocking_connect, "asyncio": asyncio_connect}


@pytest.mark.parametrize("mode", sorted(CONNECTS))
def test_connection_refused_says_where_and_why(mode: str) -> None:
    address = f"tcp://127.0.0.1:{closed_port()}"
    with pytest.raises(ConnectionRefusedError) as info:
        CONNECTS[mode](address)
    assert str(info.value) == (
        f"[Errno 111] cannot connect to {address}: Connection refused "
        "(nothing is listening at that address)"
    )


@pytest.mark.parametrize("mode", sorted(CONNECTS))
def test_no_such_unix_socket(mode: str, sock_dir: str) -> None:
    address = f"unix://{sock_dir}/nobody.sock"
    with pytest.raises(FileNotFoundError, match=r"cannot connect to .*is the server running"):
        CONNECTS[mode](address)


@pytest.mark.parametrize("mode", sorted(CONNECTS))
def test_an_untrusted_certificate_says_so(
    mode: str, tls_contexts: Tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_ssl, _ = tls_contexts
    with framekit.serve("tls://localhost:0", lambda c: None, ssl=server_ssl) as server:
        server.start()
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            CONNECTS[mode](server.address)  # the default context does not trust the test CA
    message = str(info.value)
    assert f"cannot connect to {server.address}: TLS handshake failed" in message
    assert "not trusted" in message


def test_a_plain_client_of_a_tls_server_is_told_the_likely_cause(
    tls_contexts: Tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ssl, _ = tls_contexts
    with framekit.serve("tls://127.0.0.1:0", lambda c: c.recv(), ssl=server_ssl) as server:
        server.start()
        plain = server.address.replace("tls://", "tcp://")
        with framekit.connect(plain, timeout=5) as conn:
            conn.send(b"hello")  # not a ClientHello: the server gives up on us
            with pytest.raises((ConnectionResetError, framekit.ConnectionClosed)) as info:
                conn.recv()
    assert plain in str(info.value)
    assert "expects TLS (use tls://)" in str(info.value)


def test_a_client_turned_away_by_max_connections_is_told_the_likely_cause() -> None:
    def hold(conn: Any) -> None:
        conn.recv()

    with framekit.serve("tcp://127.0.0.1:0", hold, max_connections=1) as server:
        server.start()
        with (
            framekit.connect(server.address, timeout=5),
            framekit.connect(server.address, timeout=5) as second,
        ):
            second.send(b"x" * 100_000)  # unread by the server: often a reset, not a close
            with pytest.raises((ConnectionResetError, framekit.ConnectionClosed)) as info:
                second.recv()
    assert "at its max_connections" in str(info.value)
