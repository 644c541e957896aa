"""An echo server in its own process, for the attack tests: ``python server_main.py CONFIG``.

CONFIG is JSON:

``kind``
    ``"blocking"`` (``framekit.serve``), ``"asyncio"`` or ``"uvloop"``
    (``framekit.asyncio.serve`` on that loop).
``address``
    where to listen (``tcp://127.0.0.1:0``, ``tls://localhost:0``...).
``kwargs``
    keyword arguments for ``serve()`` (``max_connections``, ``idle_timeout``...).
``certfile``
    a PEM file with the server's key and certificate chain, for TLS.
``nofile``
    a soft ``RLIMIT_NOFILE`` to set before serving.
``gc``
    false: ``gc.disable()`` before anything is made.
``tracked``
    true: the codec is ``LengthPrefixed`` behind a decoder that can be
    weakly referenced, so the ``stats`` command can count the live ones.
``compat``
    true: drop the ``kwargs`` this framekit's ``serve()`` does not take (to
    measure an older framekit that lacks a defence); they are named in the
    first line.  Off in the tests: an unknown argument fails the start.

The process writes one JSON line to stdout once it serves
(``{"address": ..., "dropped": [...]}``), logs (WARNING and above, every logger) to
stderr, and then answers commands read from stdin, one per line, with one
JSON line each: ``stats`` (live decoders, active connections, the bytes
the C allocator has handed out).  It shuts its
server down and exits when stdin ends.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import inspect
import json
import logging
import resource
import ssl
import sys
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional

import framekit


class TrackedDecoder:
    """A ``LengthPrefixed`` decoder behind a Python object that a weakref can follow.

    The Cython decoder cannot be weakly referenced; this one holds it, so it
    lives exactly as long as the connection's core keeps it.  It offers no
    optional capability (switching, streaming): the core does without them.
    """

    __slots__ = ("__weakref__", "_inner")

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @property
    def pending(self) -> int:
        return int(self._inner.pending)

    def feed(self, data: Any) -> List[bytes]:
        return list(self._inner.feed(data))

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        return memoryview(self._inner.get_buffer(sizehint))

    def buffer_updated(self, nbytes: int) -> List[bytes]:
        return list(self._inner.buffer_updated(nbytes))

    def eof(self) -> None:
        self._inner.eof()


class TrackedCodec(framekit.CodecBase):
    """``LengthPrefixed()`` whose decoders are counted in :data:`LIVE` while alive."""

    def __init__(self) -> None:
        self._lp = framekit.LengthPrefixed()

    def decoder(self) -> Any:
        decoder = TrackedDecoder(self._lp.decoder())
        LIVE.add(decoder)
        return decoder

    def encode(self, payload: Any, *, prefix: Any = b"") -> bytes:
        return bytes(self._lp.encode(payload))


#: The decoders of a TrackedCodec still alive.
LIVE: weakref.WeakSet[TrackedDecoder] = weakref.WeakSet()


def _echo_blocking(conn: Any) -> None:
    for frame in conn:
        conn.send(frame)


async def _echo_async(conn: Any) -> None:
    async for frame in conn:
        await conn.send(frame)


def _kwargs(serve: Callable[..., Any], config: Dict[str, Any]) -> Dict[str, Any]:
    kwargs = dict(config.get("kwargs", {}))
    if config.get("certfile"):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(config["certfile"])
        kwargs["ssl"] = context
    if config.get("tracked"):
        kwargs["codec"] = TrackedCodec()
    return kwargs


def _compat(serve: Callable[..., Any], kwargs: Dict[str, Any], config: Dict[str, Any]) -> List[str]:
    if not config.get("compat"):
        return []
    known = inspect.signature(serve).parameters
    dropped = [name for name in kwargs if name not in known]
    for name in dropped:
        del kwargs[name]
    return dropped


_MALLINFO2 = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2.split()]


def _malloc_in_use() -> Optional[int]:
    """Bytes the C allocator has handed out and not had back (glibc 2.33+), or None."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)


def _stats(active: Optional[int]) -> Dict[str, Any]:
    return {
        "decoders": len(LIVE),
        "active": active,
        "gc_enabled": gc.isenabled(),
        "malloc": _malloc_in_use(),
    }


def _announce(address: str, dropped: List[str]) -> None:
    sys.stdout.write(json.dumps({"address": address, "dropped": dropped}) + "\n")
    sys.stdout.flush()


def _answer(reply: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


def run_blocking(config: Dict[str, Any]) -> None:
    kwargs = _kwargs(framekit.serve, config)
    dropped = _compat(framekit.serve, kwargs, config)
    codec = kwargs.pop("codec", None)
    server = framekit.serve(config["address"], _echo_blocking, codec, **kwargs)

    def control() -> None:
        for line in sys.stdin:
            if line.strip() == "stats":
                _answer(_stats(getattr(server, "active_connections", None)))
        server.shutdown()

    _announce(server.address, dropped)
    threading.Thread(target=control, name="control", daemon=True).start()
    server.serve_forever()


def run_async(config: Dict[str, Any]) -> None:
    from framekit import asyncio as fa

    async def main() -> None:
        loop = asyncio.get_running_loop()
        kwargs = _kwargs(fa.serve, config)
        dropped = _compat(fa.serve, kwargs, config)
        codec = kwargs.pop("codec", None)
        server = await fa.serve(config["address"], _echo_async, codec, **kwargs)
        done = loop.create_future()

        async def stats() -> Dict[str, Any]:
            return _stats(getattr(server, "active_connections", None))

        def control() -> None:
            for line in sys.stdin:
                if line.strip() == "stats":
                    _answer(asyncio.run_coroutine_threadsafe(stats(), loop).result(10))
            loop.call_soon_threadsafe(done.set_result, None)

        _announce(server.address, dropped)
        threading.Thread(target=control, name="control", daemon=True).start()
        async with server:
            await done

    if config["kind"] == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def main(argv: List[str]) -> None:
    config = json.loads(argv[0])
    if not config.get("gc", True):
        gc.disable()
    if config.get("nofile"):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (config["nofile"], hard))
    # The root logger: asyncio's own accept errors are logged on "asyncio".
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if config["kind"] == "blocking":
        run_blocking(config)
    else:
        run_async(config)


if __name__ == "__main__":
    main(sys.argv[1:])
