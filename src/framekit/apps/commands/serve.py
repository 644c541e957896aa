"""``framekit serve``: the tutorials' echo server, with framing done right.

Design notes
------------
The socket tutorials' first server reads with ``recv(1024)`` and sends back
``data.upper()``: two messages that arrive together come back as one, and a
message split by TCP comes back in pieces.  This one answers frame by frame,
with the same codec options as every other subcommand, on every transport the
library has (TCP, TLS, Unix, UDP, unixgram).

It logs one line per event a server operator cares about: listening, each
client connecting and leaving, each bad client (a framing error ends that
client only; the library's server keeps the others going).  A bad client's
line says when its framing probably differs from ours (a length field that
is text, an absurd length, an error in its first frame; see
:mod:`framekit.apps.hints`).  For datagrams
there are no connections, so the first datagram from each peer is logged.

**Stopping.**  Ctrl-C (and SIGTERM, so ``kill`` and service managers stop it
the same way) raises ``KeyboardInterrupt`` in the main thread, which serves
nothing itself: it waits in :func:`stop_signals`, which a signal wakes
whichever thread the kernel delivered it to.  ``Server.shutdown()`` then
closes every client, joins the threads, and removes the Unix socket file.
Exit status 0: that is how a server is meant to stop.

**Defaults for a server on a network.**  An echo server faces whoever
connects, so its defaults bound what one client, or many, can hold: 1000
clients per worker (a thread each), a client silent for 5 minutes or slower
than a minute to send one frame is closed (``--idle-timeout``,
``--frame-timeout``), a TLS handshake has 10 seconds, and the clients' unread
and unfinished frames share a 256 MiB budget (``--max-buffered-bytes``).

**Workers.**  ``--workers N`` runs N processes, each with its own listening
socket bound to the same port with ``SO_REUSEPORT``: the kernel spreads new
connections over them, with no accept lock and no shared socket.  This process
is worker 1 (it binds first, so port 0 resolves to one port for all); the
others are ``multiprocessing`` spawned children that rebuild the codec and
TLS context from the same options.  If one dies, the rest are stopped and the
command fails: a silently shrunken pool is worse than a loud error.  A child
whose parent disappears (killed with SIGKILL) shuts itself down.  ``SO_REUSEPORT`` shares TCP
ports only in a useful way here: a Unix socket path cannot be bound twice, and
UDP "sharing" would split one peer's datagrams by hash, so those are refused.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
from multiprocessing.connection import wait
from typing import Any, Callable, Dict, Iterator, List, Optional

from ...addresses import Address, parse_address
from ...core.options import DEFAULT_MAX_BUFFERED_BYTES, FRAME_TIMEOUT, HANDSHAKE_TIMEOUT
from ...errors import FramingError
from ...sync import FrameHandler, Server, serve
from ..errors import CommandError, describe_error
from ..hints import decoding_hint
from ..logs import setup_logging
from .options import (
    add_codec_arguments,
    add_tls_arguments,
    codec_from_args,
    parse_size,
    peer_name,
    ssl_context_from_args,
)

__all__ = ["EchoHandler", "UpperHandler", "add_arguments", "run", "stop_signals"]

#: ``framekit serve`` faces whoever connects, so its defaults bound what a client
#: can hold: a thread per client, at most this many per worker...
DEFAULT_MAX_CONNECTIONS = 1000
#: ...and a client silent for this long is closed (the library's servers keep
#: idle connections by default, since many protocols keep them open on purpose).
DEFAULT_IDLE_TIMEOUT = 300.0

logger = logging.getLogger("framekit")

#: Datagram peers remembered for "first datagram from" log lines.
_MAX_REMEMBERED_PEERS = 4096
#: Seconds a worker has to stop after SIGINT before it is terminated.
_WORKER_STOP_TIMEOUT = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``serve``'s options to its parser."""
    parser.add_argument(
        "address",
        help="where to listen: tcp://HOST:PORT, tls://, unix:///PATH, udp://, unixgram://",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--upper", action="store_true", help="reply in upper case (the tutorials' server)"
    )
    mode.add_argument("--echo", action="store_true", help="reply with each frame as is (default)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes sharing the port with SO_REUSEPORT (TCP and TLS only; default 1)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help="clients served at once per worker (a thread each); more are turned away "
        f"(default {DEFAULT_MAX_CONNECTIONS})",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="SECONDS",
        help="close a client that sends nothing for this long "
        f"(default {DEFAULT_IDLE_TIMEOUT:g}; 0: never)",
    )
    parser.add_argument(
        "--frame-timeout",
        type=_seconds,
        default=FRAME_TIMEOUT,
        metavar="SECONDS",
        help="close a client whose frame, once begun, takes longer than this to arrive "
        f"(default {FRAME_TIMEOUT:g}; 0: never)",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=_seconds,
        default=HANDSHAKE_TIMEOUT,
        metavar="SECONDS",
        help=f"time a TLS client has for its handshake (default {HANDSHAKE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-buffered-bytes",
        type=parse_size,
        default=DEFAULT_MAX_BUFFERED_BYTES,
        metavar="SIZE",
        help="memory all clients may hold at once in unread and unfinished frames; a client "
        "that asks for more is closed (default 256MiB)",
    )
    add_codec_arguments(parser)
    add_tls_arguments(parser, server=True)


class EchoHandler(FrameHandler):
    """Sends every frame back as is; logs the client's arrival, departure and faults."""

    batch_replies = True  # it never switches codecs: one write per read

    def reply(self, frame: bytes) -> bytes:
        """The answer to ``frame``."""
        return frame

    def setup(self) -> None:
        self.address: Address = parse_address(self.server.address)
        self.frames = 0
        self._seen: Dict[Any, str] = {}
        if self.client_address is not None:  # a stream connection
            self.peer = peer_name(self.address, self.client_address)
            logger.info("%s connected", self.peer)

    def handle(self) -> None:
        try:
            super().handle()
        except FramingError as exc:
            hint = decoding_hint(exc, self.conn.codec, first=self.frames == 0)
            logger.warning(
                "bad client %s: %s; connection closed%s",
                self.peer,
                exc,
                f"; {hint}" if hint else "",
            )
        except (ConnectionError, TimeoutError) as exc:
            logger.warning("%s: connection lost: %s", self.peer, describe_error(exc))
        else:
            logger.info("%s disconnected after %d frame(s)", self.peer, self.frames)

    def handle_frame(self, frame: Any, address: Any = None) -> Any:
        self.frames += 1
        if address is not None and address not in self._seen:
            if len(self._seen) >= _MAX_REMEMBERED_PEERS:
                self._seen.clear()
            self._seen[address] = name = peer_name(self.address, address)
            logger.info("datagrams from %s", name)
        return self.reply(frame)


class UpperHandler(EchoHandler):
    """The tutorials' server: replies in upper case (UTF-8 aware, bytes left as they are)."""

    def reply(self, frame: bytes) -> bytes:
        try:
            return frame.decode("utf-8").upper().encode("utf-8")
        except UnicodeDecodeError:
            return frame.upper()


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):  # NaN too
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def _bind(args: argparse.Namespace, address: Address, *, reuse_port: bool) -> Server:
    stream = not address.is_datagram
    return serve(
        address,
        UpperHandler if args.upper else EchoHandler,
        codec_from_args(args),
        ssl=ssl_context_from_args(args, address, server=True),
        max_connections=args.max_connections if stream else None,
        reuse_port=reuse_port,
        idle_timeout=(args.idle_timeout or None) if stream else None,
        frame_timeout=(args.frame_timeout or None) if stream else None,
        handshake_timeout=args.handshake_timeout or None,
        max_buffered_bytes=args.max_buffered_bytes,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``framekit serve``: serve until Ctrl-C or SIGTERM; 0 after a clean stop."""
    address = parse_address(args.address)
    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    if args.max_connections is not None and args.max_connections < 1:
        raise CommandError("--max-connections must be at least 1")
    if args.workers > 1:
        _check_workers(address)
    codec_from_args(args)  # a bad option fails here, before anything is bound
    with stop_signals() as wait:
        server = _bind(args, address, reuse_port=args.workers > 1)
        try:
            server.start()
            mode = "upper case" if args.upper else "echo"
            if args.workers == 1:
                logger.info("listening on %s (%s); Ctrl-C to stop", server.address, mode)
                wait()
            else:
                _run_workers(server, args, mode, wait)
        except KeyboardInterrupt:
            logger.info("shutting down")
        finally:
            server.shutdown()
    return 0


# --- signals ------------------------------------------------------------------------


Waiter = Callable[..., List[Any]]


@contextlib.contextmanager
def stop_signals() -> Iterator[Waiter]:
    """Make Ctrl-C and SIGTERM interrupt a wait, whichever thread the kernel tells.

    A signal sent to a process is delivered to any one of its threads.  If it
    is not the main thread, the main thread's blocking call is not interrupted,
    and Python runs the handler (raising ``KeyboardInterrupt``) only when that
    call returns, which for a server waiting on its listening socket may be
    never.  So the main thread waits here instead, on the ``waitables`` *and*
    on a wakeup socket that the signal handler writes to from any thread
    (``signal.set_wakeup_fd``).  SIGTERM is made to raise ``KeyboardInterrupt``
    too, so ``kill`` and service managers stop a command as Ctrl-C does.

    Yields:
        ``wait(*waitables)``: blocks until one of them (anything
        ``multiprocessing.connection.wait`` takes: sockets, process sentinels)
        is ready and returns those, or raises ``KeyboardInterrupt``.  Outside
        the main thread it only waits for the waitables.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda *waitables: wait(list(waitables))
        return
    wakeup, wakeup_w = socket.socketpair()
    wakeup.setblocking(False)
    wakeup_w.setblocking(False)

    def interrupt(signum: int, frame: Optional[Any]) -> None:
        raise KeyboardInterrupt

    def wait_or_signal(*waitables: Any) -> List[Any]:
        while True:
            ready = wait([wakeup, *waitables])  # a pending handler raises on return
            if wakeup in ready:
                with contextlib.suppress(OSError):
                    wakeup.recv(512)
                ready.remove(wakeup)
            if ready:
                return ready

    previous_term = signal.signal(signal.SIGTERM, interrupt)
    # A process started in the background by a shell without job control
    # inherits SIGINT ignored; Ctrl-C (or kill -INT) must still stop us.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_fd = signal.set_wakeup_fd(wakeup_w.fileno(), warn_on_full_buffer=False)
    try:
        yield wait_or_signal
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
        wakeup.close()
        wakeup_w.close()


# --- workers ------------------------------------------------------------------------


def _check_workers(address: Address) -> None:
    if address.is_unix or address.is_datagram:
        raise CommandError(
            f"--workers needs a tcp:// or tls:// address, not {address.scheme}://: "
            "SO_REUSEPORT shares a TCP port between processes; a Unix socket path "
            "cannot be bound twice, and UDP datagrams would be split between workers"
        )
    if not hasattr(socket, "SO_REUSEPORT"):
        raise CommandError("--workers needs SO_REUSEPORT, which this platform does not have")


def _run_workers(server: Server, args: argparse.Namespace, mode: str, wait: Waiter) -> None:
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(
            target=_worker, args=(args, server.address, n), name=f"framekit-serve-{n}", daemon=True
        )
        for n in range(2, args.workers + 1)
    ]
    try:
        for child in children:
            child.start()
        logger.info(
            "worker 1 (pid %d) listening on %s (%s); Ctrl-C to stop",
            os.getpid(),
            server.address,
            mode,
        )
        wait(*[child.sentinel for child in children])  # returns when a worker dies
        dead = [child for child in children if child.exitcode is not None]
        raise CommandError(
            f"worker {dead[0].name.rsplit('-', 1)[-1]} exited with status {dead[0].exitcode}; "
            f"stopping all workers"
        )
    finally:
        _stop(children)


def _stop(children: List[Any]) -> None:
    for child in children:
        if child.pid is not None and child.is_alive():
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGINT)
    for child in children:
        if child.pid is not None:
            child.join(_WORKER_STOP_TIMEOUT)
            if child.is_alive():
                child.terminate()
                child.join(1.0)


def _worker(args: argparse.Namespace, url: str, number: int) -> None:
    """A spawned worker: bind ``url`` with SO_REUSEPORT and serve until told to stop.

    It stops on SIGINT or SIGTERM, and when worker 1 (its parent) is gone.
    """
    setup_logging("serve", args.debug)
    parent = multiprocessing.parent_process()
    with stop_signals() as wait:
        try:
            server = _bind(args, parse_address(url), reuse_port=True)
        except KeyboardInterrupt:
            return
        except Exception as exc:
            logger.error("worker %d: %s", number, describe_error(exc))
            raise SystemExit(1) from None
        try:
            server.start()
            logger.info("worker %d (pid %d) listening on %s", number, os.getpid(), server.address)
            wait(*([] if parent is None else [parent.sentinel]))
            logger.warning("worker %d: worker 1 is gone; shutting down", number)
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
