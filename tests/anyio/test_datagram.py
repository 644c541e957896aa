"""framekit.anyio datagram endpoints and servers (UDP, Unix datagrams), on both backends."""

from __future__ import annotations

import socket
from typing import Any

import anyio
import pytest

import framekit
import framekit.anyio as fan
from framekit.serializers import JSON

from .conftest import Runner, abstract_name
from .helpers import WAIT, echo_datagrams

pytestmark = pytest.mark.network

ADDRESSES = ["udp", "unixgram", "unixgram-abstract"]


def _address(kind: str, sock_dir: str) -> str:
    if kind == "udp":
        return "udp://127.0.0.1:0"
    if kind == "unixgram":
        return f"unixgram://{sock_dir}/d.sock"
    return abstract_name("unixgram")


@pytest.mark.parametrize("kind", ADDRESSES)
def test_echo(run: Runner, kind: str, sock_dir: str) -> None:
    async def main() -> None:
        server = await fan.serve(_address(kind, sock_dir), echo_datagrams, serializer=JSON)
        async with server:
            endpoint = await fan.connect(server.address, serializer=JSON)
            assert isinstance(endpoint, fan.DatagramEndpoint)
            async with endpoint:
                await endpoint.send({"n": 1})
                with anyio.fail_after(WAIT):
                    assert await endpoint.recv() == {"n": 1}
                    await endpoint.send_many([[i] for i in range(50)])  # packed
                    assert [await endpoint.recv() for _ in range(50)] == [[i] for i in range(50)]
                    message, sender = await _recvfrom_after(endpoint, "x")
                assert message == "x" and sender is not None

    run(main)


async def _recvfrom_after(endpoint: Any, message: Any) -> Any:
    await endpoint.send(message)
    return await endpoint.recvfrom()


def test_bad_datagrams_are_refused_whole_and_the_handler_goes_on(
    run: Runner, sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    codec = framekit.LengthPrefixed(4)

    async def main() -> None:
        path = f"{sock_dir}/d.sock"
        server = await fan.serve(f"unixgram://{path}", echo_datagrams, max_datagram_size=100)
        async with server:
            endpoint = await fan.connect(server.address)
            assert isinstance(endpoint, fan.DatagramEndpoint)
            async with endpoint:
                raw = endpoint.socket
                raw.send(b"\x00\x00\x00\x09cut")  # malformed: restarts the handler
                raw.send(codec.encode(b"y" * 150))  # larger than max_datagram_size
                await endpoint.send(b"still served")
                with anyio.fail_after(WAIT):
                    assert await endpoint.recv() == b"still served"
        assert caplog.text.count("handler restarted") == 2
        assert "larger than max_datagram_size" in caplog.text

    run(main)


def test_recvfrom_raises_for_the_bad_datagram_and_goes_on(run: Runner) -> None:
    async def main() -> None:
        endpoint = await fan.open_datagram("udp://127.0.0.1:0")
        async with endpoint:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
                peer.bind(("127.0.0.1", 0))
                peer.sendto(b"\x00\x00\x00\x05ab", endpoint.local_address)
                peer.sendto(framekit.LengthPrefixed().encode(b"good"), endpoint.local_address)
                with anyio.fail_after(WAIT):
                    with pytest.raises(framekit.CorruptedFrame) as info:
                        await endpoint.recvfrom()
                    assert info.value.address == peer.getsockname()
                    assert endpoint.last_receive_error is info.value
                    assert await endpoint.recvfrom() == (b"good", peer.getsockname())
            with anyio.move_on_after(0.05) as scope:  # a cancelled recv() loses nothing
                await endpoint.recv()
            assert scope.cancelled_caught
        with pytest.raises(framekit.ConnectionClosed):
            await endpoint.recv()
        with pytest.raises(framekit.ConnectionClosed):
            await endpoint.sendto(b"x", "udp://127.0.0.1:9")

    run(main)


def test_a_refused_port_is_the_next_receive_s_error(run: Runner) -> None:
    async def main() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        endpoint = await fan.connect(f"udp://127.0.0.1:{port}")
        async with endpoint:
            await endpoint.send(b"anyone?")
            with anyio.fail_after(WAIT), pytest.raises(ConnectionRefusedError):
                await endpoint.recv()

    run(main)
