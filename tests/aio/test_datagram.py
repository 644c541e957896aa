"""framekit.asyncio datagram endpoints: UDP and Unix datagrams, malformed input, packing."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from typing import Any, Callable, Iterator, List

import pytest

import framekit
import framekit.asyncio as fa
from framekit.addresses import parse_address
from framekit.codecs.presets import PRESET_ARGS
from framekit.serializers import JSON

from ..conftest import MQTT_PUBLISH, ipv6_available
from .conftest import Runner, abstract_name
from .helpers import WAIT, Lines, echo_datagrams, wait_until

pytestmark = pytest.mark.network

DATAGRAM_FAMILIES = ["udp", "udp6", "unixgram", "unixgram-abstract"]


@pytest.fixture(params=DATAGRAM_FAMILIES)
def dgram_address(request: pytest.FixtureRequest, sock_dir: str) -> Iterator[str]:
    """Where to bind a datagram endpoint, for each family in turn."""
    if request.param == "udp":
        yield "udp://127.0.0.1:0"
    elif request.param == "udp6":
        if not ipv6_available():
            pytest.skip("::1 is not available here")
        yield "udp://[::1]:0"
    elif request.param == "unixgram":
        yield f"unixgram://{sock_dir}/d.sock"
    else:
        yield abstract_name("unixgram")


def raw_socket(address: str) -> socket.socket:
    """A plain non-blocking datagram socket connected to ``address`` (bound, for replies)."""
    addr = parse_address(address)
    if addr.is_unix:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind("")  # autobind, so the endpoint can reply
    else:
        family = socket.AF_INET6 if ":" in (addr.host or "") else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.connect(addr.sockaddr)
    sock.setblocking(False)
    return sock


async def raw_recv(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.sock_recv(sock, 70000), WAIT)


def test_echo_every_family(run: Runner, LP: Callable[..., Any], dgram_address: str) -> None:
    codec = LP(2)

    async def main() -> None:
        async with await fa.serve(dgram_address, echo_datagrams, codec) as server:
            assert ":0" not in server.address
            client = await fa.connect(server.address, codec)
            assert isinstance(client, fa.DatagramEndpoint)
            async with client:
                await client.send(b"hello")
                assert await asyncio.wait_for(client.recv(), WAIT) == b"hello"
                await client.send_many([b"a", b"", b"bc"])
                got = [await asyncio.wait_for(client.recv(), WAIT) for _ in range(3)]
                assert got == [b"a", b"", b"bc"]
                await client.sendto(b"by url", server.address)
                frame, sender = await asyncio.wait_for(client.recvfrom(), WAIT)
                assert frame == b"by url"
                assert sender == client.remote_address
                assert repr(client).startswith("<framekit.asyncio.DatagramEndpoint open")
            assert client.closed

    run(main())


# name -> bytes of a datagram that does not parse into whole frames (LP(2, max_frame_size=64))
MALFORMED = {
    "trailing bytes": lambda c: c.encode(b"ok") + b"\x00",
    "frame cut short": lambda c: c.encode(b"truncated")[:-3],
    "header only": lambda c: b"\x00",
    "oversized frame": lambda c: framekit.LengthPrefixed(2).encode(b"x" * 100),
    "longer than max_datagram_size": lambda c: c.encode_many([b"y" * 60] * 3),
}


@pytest.mark.parametrize("scheme", ["udp", "unixgram"])
def test_malformed_datagrams(
    run: Runner, LP: Callable[..., Any], scheme: str, sock_dir: str
) -> None:
    codec = LP(2, max_frame_size=64)
    local = "udp://127.0.0.1:0" if scheme == "udp" else f"unixgram://{sock_dir}/m.sock"

    async def main() -> None:
        endpoint = await fa.open_datagram(local, codec=codec, max_datagram_size=150)
        async with endpoint:
            bound = framekit.addresses.address_from_sockaddr(scheme, endpoint.local_address)
            with raw_socket(bound.url()) as raw:
                for name, make in MALFORMED.items():
                    raw.send(make(codec))
                    raw.send(codec.encode_many([name.encode(), b"next"]))
                    with pytest.raises(framekit.CorruptedFrame) as info:
                        await asyncio.wait_for(endpoint.recv(), WAIT)
                    error = info.value
                    assert error.frames == []
                    sender = raw.getsockname()
                    assert error.address == sender, name
                    if name != "longer than max_datagram_size":
                        assert isinstance(error.__cause__, framekit.FramingError), name
                    # ...and the endpoint goes on with the next datagram.
                    assert await asyncio.wait_for(endpoint.recvfrom(), WAIT) == (
                        name.encode(),
                        sender,
                    )
                    assert await asyncio.wait_for(endpoint.recv(), WAIT) == b"next"

    run(main())


def test_send_many_packs_datagrams(run: Runner, LP: Callable[..., Any]) -> None:
    codec = LP(2)
    payloads = [b"%03d" % i + b"." * 97 for i in range(100)]  # 102-byte frames

    async def main() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind(("127.0.0.1", 0))
            raw.setblocking(False)
            target = f"udp://127.0.0.1:{raw.getsockname()[1]}"
            ep = await fa.open_datagram(remote=target, codec=codec, max_datagram_size=1000)
            async with ep:
                await ep.send_many(payloads)
                datagrams = [await raw_recv(raw) for _ in range(12)]  # 9 frames fit in 1000 bytes
            assert all(len(d) <= 1000 for d in datagrams)
            assert [len(d) for d in datagrams[:-1]] == [9 * 102] * 11
            frames: List[bytes] = []
            for datagram in datagrams:
                decoder = codec.decoder()
                frames += decoder.feed(datagram)
                decoder.eof()
            assert frames == payloads

    run(main())


def test_frame_too_large_for_a_datagram(run: Runner, LP: Callable[..., Any]) -> None:
    codec = LP(2)

    async def main() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind(("127.0.0.1", 0))
            raw.setblocking(False)
            target = f"udp://127.0.0.1:{raw.getsockname()[1]}"
            ep = await fa.open_datagram(remote=target, codec=codec, max_datagram_size=100)
            async with ep:
                with pytest.raises(framekit.FrameTooLarge, match="does not fit one datagram"):
                    await ep.send(b"x" * 99)  # 101 bytes with its header
                with pytest.raises(framekit.FrameTooLarge):
                    await ep.send_many([b"small", b"x" * 200])  # nothing is sent
                await ep.send(b"x" * 98)
                assert await raw_recv(raw) == codec.encode(b"x" * 98)

    run(main())


def test_serializer(run: Runner, LP: Callable[..., Any]) -> None:
    codec = LP(4)

    async def main() -> None:
        async with await fa.serve("udp://127.0.0.1:0", echo_datagrams, codec) as server:
            client = await fa.connect(server.address, codec, serializer=JSON)
            async with client:
                await client.send({"a": [1, 2]})
                assert await asyncio.wait_for(client.recv(), WAIT) == {"a": [1, 2]}
                client.serializer = None
                await client.send(b"\xff not json")
                client.serializer = JSON
                await client.send(None)
                with pytest.raises(framekit.SerializationError) as info:
                    await asyncio.wait_for(client.recv(), WAIT)
                assert info.value.frame == b"\xff not json"
                assert await asyncio.wait_for(client.recv(), WAIT) is None

    run(main())


def test_unconnected_endpoint_needs_an_address(run: Runner) -> None:
    async def main() -> None:
        async with await fa.open_datagram("udp://127.0.0.1:0") as ep:
            assert ep.remote_address is None
            with pytest.raises(OSError) as info:
                await ep.send(b"where to?")
            assert info.value.errno == errno.EDESTADDRREQ

    run(main())


def test_socket_errors_are_raised_and_the_endpoint_goes_on(
    run: Runner, LP: Callable[..., Any]
) -> None:
    codec = LP(2)

    async def main() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gone:
            gone.bind(("127.0.0.1", 0))
            port = gone.getsockname()[1]
        async with await fa.connect(f"udp://127.0.0.1:{port}", codec) as client:
            assert isinstance(client, fa.DatagramEndpoint)
            for _ in range(3):  # the ICMP error comes back after a send
                await client.send(b"anyone?")
                try:
                    await asyncio.wait_for(client.recv(), 0.5)
                except ConnectionRefusedError:
                    break
            else:
                pytest.fail("no ConnectionRefusedError")
            await client.send(b"still usable")  # no exception: the endpoint goes on
            assert not client.closed

    run(main())


def test_unread_datagrams_are_dropped_beyond_the_bound(run: Runner, LP: Callable[..., Any]) -> None:
    codec = LP(2)

    async def main() -> None:
        endpoint = await fa.open_datagram("udp://127.0.0.1:0", codec=codec, max_queued_frames=4)
        async with endpoint:
            port = endpoint.local_address[1]
            with raw_socket(f"udp://127.0.0.1:{port}") as raw:
                for i in range(40):
                    raw.send(codec.encode(b"%d" % i))
                await wait_until(lambda: endpoint.dropped > 0, "datagrams were dropped")
                await wait_until(
                    lambda: endpoint.queued_frames + endpoint.dropped == 40, "all 40 arrived"
                )
                assert endpoint.queued_frames == 5  # the bound, plus the one that crossed it
                got = [await asyncio.wait_for(endpoint.recv(), WAIT) for _ in range(5)]
                assert got == [b"0", b"1", b"2", b"3", b"4"]
                raw.send(codec.encode(b"room again"))
                assert await asyncio.wait_for(endpoint.recv(), WAIT) == b"room again"

    run(main())


def test_close(run: Runner, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "c.sock")

    async def main() -> None:
        endpoint = await fa.open_datagram(f"unixgram://{path}")
        assert os.stat(path).st_mode & 0o777 == 0o600
        waiting = asyncio.ensure_future(endpoint.recv())
        await asyncio.sleep(0)
        await endpoint.close()
        assert not os.path.exists(path)
        with pytest.raises(framekit.ConnectionClosed):
            await asyncio.wait_for(waiting, WAIT)
        assert [frame async for frame in endpoint] == []
        with pytest.raises(framekit.ConnectionClosed):
            await endpoint.sendto(b"x", f"unixgram://{path}")
        await endpoint.close()  # twice is fine

    run(main())


def test_datagram_server_lifetime(run: Runner, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "srv.sock")

    async def once(endpoint: Any) -> None:
        frame, sender = await endpoint.recvfrom()
        await endpoint.sendto(frame, sender)

    async def main() -> None:
        # Closing the server ends the handler and removes the socket file.
        server = await fa.serve(f"unixgram://{path}", echo_datagrams)
        assert len(server.connections) == 1
        server.close()
        await asyncio.wait_for(server.wait_closed(), WAIT)
        assert not os.path.exists(path)
        # A handler that returns closes its server.
        server = await fa.serve(f"unixgram://{path}", once)
        async with await fa.connect(server.address) as client:
            await client.send(b"once")
            assert await asyncio.wait_for(client.recv(), WAIT) == b"once"
        await asyncio.wait_for(server.wait_closed(), WAIT)
        assert not server.is_serving()

    run(main())


def test_mqtt_packets_with_prefix(run: Runner, LP: Callable[..., Any], dgram_address: str) -> None:
    codec = LP(**PRESET_ARGS["mqtt"])

    async def broker(endpoint: Any) -> None:
        while True:
            packet, sender = await endpoint.recvfrom()
            if packet[:1] == b"\xc0":  # PINGREQ -> PINGRESP
                await endpoint.sendto(b"", sender, prefix=b"\xd0")
            else:  # PUBLISH (a 1-byte remaining length): back to the sender
                await endpoint.send_many([packet[2:]], sender, prefix=packet[:1])

    async def main() -> None:
        server = await fa.serve(dgram_address, broker, codec)
        async with server, await fa.connect(server.address, codec, max_datagram_size=12) as client:
            await client.send(b"", prefix=b"\xc0")
            assert await asyncio.wait_for(client.recv(), WAIT) == b"\xd0\x00"
            await client.sendto(b"\x00\x03a/bhey", server.address, prefix=b"\x30")
            assert await asyncio.wait_for(client.recv(), WAIT) == MQTT_PUBLISH
            # two datagrams (10 + 2 bytes, then 2): the broker answers each frame
            await client.send_many([b"\x00\x03a/bhey", b"", b""], prefix=b"\x30")
            got = [await asyncio.wait_for(client.recv(), WAIT) for _ in range(3)]
            assert sorted(got) == sorted([MQTT_PUBLISH, b"\x30\x00", b"\x30\x00"])

    run(main())


def test_prefix_for_a_codec_without_it(run: Runner) -> None:
    """None calls the codec as before; a prefix is the codec's own TypeError."""

    async def main() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind(("127.0.0.1", 0))
            raw.setblocking(False)
            target = f"udp://127.0.0.1:{raw.getsockname()[1]}"
            async with await fa.open_datagram(remote=target, codec=Lines()) as ep:
                await ep.send(b"plain", prefix=None)
                await ep.send_many([b"one", b"two"], prefix=None)
                assert [await raw_recv(raw) for _ in range(2)] == [b"plain\n", b"one\ntwo\n"]
                with pytest.raises(TypeError, match="prefix"):
                    await ep.send(b"x", prefix=b"Q")
                with pytest.raises(TypeError, match="prefix"):
                    await ep.sendto(b"x", target, prefix=b"Q")
                with pytest.raises(TypeError, match="prefix"):
                    await ep.send_many([b"x"], prefix=b"Q")

    run(main())


# -- a datagram server outlives its peers' errors ----------------------------------------


def test_bad_datagrams_do_not_stop_a_server(
    run: Runner,
    LP: Callable[..., Any],
    dgram_address: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A malformed datagram, a frame that does not deserialize, and a reply to a
    peer that is gone each end the handler's recvfrom() with an error: the server
    logs it, calls the handler again, and a good client is still answered (one
    bad datagram used to close the server)."""
    caplog.set_level(logging.WARNING, logger="framekit")
    codec = LP(2)

    async def main() -> None:
        async with await fa.serve(dgram_address, echo_datagrams, codec, serializer=JSON) as server:
            with raw_socket(server.address) as raw:
                raw.send(b"\x00\x09garbage")  # the length says 9, 7 bytes follow
                raw.send(codec.encode(b"\xff not json"))
                sender = raw.getsockname()
                restarts = 2
                if parse_address(server.address).is_unix:
                    # The reply to this one fails (the sender is gone): error_received.
                    raw.send(codec.encode(b'"bye"'))
                    restarts = 3
            await wait_until(
                lambda: caplog.text.count("handler restarted") == restarts, "the restarts"
            )
            async with await fa.connect(server.address, codec, serializer=JSON) as client:
                await client.send({"still": "served"})
                assert await asyncio.wait_for(client.recv(), WAIT) == {"still": "served"}
            assert server.is_serving()
        warnings = [r.getMessage() for r in caplog.records if "handler restarted" in r.message]
        assert "CorruptedFrame" in warnings[0] and "SerializationError" in warnings[1]
        if restarts == 3:
            assert "Error" in warnings[2], warnings  # ConnectionRefusedError, FileNotFoundError
        if isinstance(sender, tuple):  # an IP peer; an autobound Unix name is logged too
            assert f":{sender[1]}" in warnings[0]
        assert all("\n" not in w for w in warnings)

    run(main())


def test_handler_errors_of_its_own_still_close_a_datagram_server(run: Runner) -> None:
    async def broken(endpoint: Any) -> None:
        await endpoint.recvfrom()
        raise framekit.CorruptedFrame("not from a peer")  # not what recvfrom() raised

    async def main() -> None:
        server = await fa.serve("udp://127.0.0.1:0", broken)
        async with await fa.connect(server.address) as client:
            await client.send(b"x")
            await asyncio.wait_for(server.wait_closed(), WAIT)
        assert not server.is_serving()

    run(main())


# -- closing with a Unix datagram peer that does not read ------------------------------


async def fill_until_blocked(endpoint: Any, address: Any = None) -> None:
    """Send 1000-byte datagrams until flow control holds the sender."""
    for _ in range(10000):
        try:
            await asyncio.wait_for(endpoint.sendto(b"x" * 1000, address), 0.05)
        except asyncio.TimeoutError:
            break
    assert endpoint.transport.get_write_buffer_size() > 0


def test_close_gives_up_on_a_peer_that_does_not_read(run: Runner, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "deaf.sock")

    async def main() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as deaf:
            deaf.bind(path)  # alive, never reads
            # close(timeout=...) aborts once the timeout is up.
            endpoint = await fa.open_datagram(remote=f"unixgram://{path}")
            await fill_until_blocked(endpoint, f"unixgram://{path}")
            await asyncio.wait_for(endpoint.close(timeout=0.2), WAIT)
            assert endpoint._protocol.lost.done()
            while True:  # make room again
                try:
                    deaf.recv(2000, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
            # A cancelled close() aborts (it used to leave the transport open).
            endpoint = await fa.open_datagram(remote=f"unixgram://{path}")
            await fill_until_blocked(endpoint, f"unixgram://{path}")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(endpoint.close(), 0.2)
            await wait_until(lambda: endpoint._protocol.lost.done(), "the endpoint was aborted")

    run(main())


def test_datagram_server_closes_despite_a_peer_that_does_not_read(
    run: Runner, sock_dir: str
) -> None:
    path = os.path.join(sock_dir, "deaf.sock")

    async def main() -> None:
        flooded = asyncio.Event()

        async def flood(endpoint: Any) -> None:
            _, sender = await endpoint.recvfrom()
            await fill_until_blocked(endpoint, sender)
            flooded.set()
            await endpoint.recvfrom()

        server = await fa.serve(f"unixgram://{sock_dir}/srv.sock", flood)
        server._close_timeout = 0.2
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as deaf:
            deaf.bind(path)
            deaf.connect(parse_address(server.address).sockaddr)
            deaf.send(framekit.LengthPrefixed().encode(b"flood me"))
            await asyncio.wait_for(flooded.wait(), WAIT)
            server.close()
            await asyncio.wait_for(server.wait_closed(), WAIT)
            endpoint = server._endpoint
            assert endpoint is not None and endpoint._protocol.lost.done()

    run(main())
