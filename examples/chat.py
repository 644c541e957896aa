"""A chat room: several clients, and every message goes to all the others.

Start the room, then join it from several terminals::

    python examples/chat.py serve tcp://127.0.0.1:5001
    python examples/chat.py join tcp://127.0.0.1:5001 alice
    python examples/chat.py join tcp://127.0.0.1:5001 bob

This is the tutorials' several-terminal demo.  Their version breaks as soon as
two lines arrive together or one arrives in pieces; here every line is one
frame.  The server runs one thread per member (``framekit.serve`` with a plain
function as handler), and ``send`` on a connection is thread-safe, so any
member's thread may write to any other member.
"""

from __future__ import annotations

import socket
import sys
import threading
from typing import Dict, List, Optional

import framekit


class Room:
    """The members, by connection, and the broadcast."""

    def __init__(self) -> None:
        self.members: Dict[framekit.FramedSocket, str] = {}
        self.lock = threading.Lock()

    def broadcast(self, text: str, sender: Optional[framekit.FramedSocket] = None) -> None:
        with self.lock:
            others = [conn for conn in self.members if conn is not sender]
        self.send_to(others, text)

    @staticmethod
    def send_to(conns: List[framekit.FramedSocket], text: str) -> None:
        for conn in conns:
            try:
                conn.send(text.encode())
            except OSError:
                pass  # that member is leaving: its own thread cleans up

    def handle(self, conn: framekit.FramedSocket) -> None:
        """One member, in its own thread: the first frame is the name, then messages."""
        name = conn.recv().decode(errors="replace")
        with self.lock:  # who was here and who joins: one step, so nobody is told twice
            others = list(self.members)
            here = ", ".join(self.members.values()) or "nobody yet"
            self.members[conn] = name
        self.send_to(others, f"* {name} joined")
        conn.send(f"* welcome {name}; here: {here}".encode())
        try:
            for frame in conn:  # until the member leaves
                self.broadcast(f"{name}: {frame.decode(errors='replace')}", sender=conn)
        finally:
            with self.lock:
                del self.members[conn]
            self.broadcast(f"* {name} left")


def serve(address: str) -> framekit.Server:
    """Bind a chat room at ``address``; call ``serve_forever()`` or ``start()`` on it."""
    return framekit.serve(address, Room().handle)


def join(address: str, name: str) -> None:
    """Send stdin's lines to the room and print what the others say, until EOF."""
    with framekit.connect(address) as conn:
        conn.send(name.encode())
        printer = threading.Thread(target=print_messages, args=(conn,))
        printer.start()
        for line in sys.stdin:
            conn.send(line.rstrip("\n").encode())
        conn.socket.shutdown(socket.SHUT_WR)  # we are done; the room says goodbye
        printer.join()


def print_messages(conn: framekit.FramedSocket) -> None:
    for frame in conn:  # ends when the room closes our connection
        print(frame.decode(errors="replace"), flush=True)


def main(argv: Optional[List[str]] = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"] and len(args) == 2:
        with serve(args[1]) as server:
            print(f"listening on {server.address}", flush=True)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
    elif args[:1] == ["join"] and len(args) == 3:
        join(args[1], args[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except (OSError, framekit.FramingError) as exc:
        # An ordinary mistake (a closed port, an address in use, a remote error, the
        # other end speaking another format) gets one line, not a traceback.
        sys.exit(f"error: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")
