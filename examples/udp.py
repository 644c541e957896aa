"""Frames over UDP: a datagram carries whole frames, and a damaged one is refused.

    python examples/udp.py serve udp://127.0.0.1:5002
    python examples/udp.py send udp://127.0.0.1:5002 hello world

A datagram arrives whole or not at all, but it can still be truncated (a
buffer too small) or hold garbage.  framekit checks that each datagram is
exactly a sequence of whole frames: anything else raises CorruptedFrame (with
the sender's address) and the socket stays usable.  ``send_many`` packs several
frames into one datagram.
"""

from __future__ import annotations

import sys
from typing import Any, List, Optional

import framekit


def handle(frame: bytes, sender: Any) -> bytes:
    """A datagram server calls this for every frame; the reply goes back to the sender."""
    return frame.upper()


def send(address: str, messages: List[str]) -> List[bytes]:
    """Send the messages in one datagram and return the replies (one datagram each)."""
    with framekit.connect(address, timeout=2) as conn:  # UDP: replies may be lost
        conn.send_many([m.encode() for m in messages])
        return [conn.recv() for _ in messages]


def main(argv: Optional[List[str]] = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[0] not in ("serve", "send"):
        sys.exit(__doc__)
    if args[0] == "serve":
        with framekit.serve(args[1], handle) as server:
            print(f"listening on {server.address}", flush=True)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
    else:
        for reply in send(args[1], args[2:]):
            print(reply.decode(errors="replace"))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except (OSError, framekit.FramingError) as exc:
        # An ordinary mistake (a closed port, an address in use, a remote error, the
        # other end speaking another format) gets one line, not a traceback.
        sys.exit(f"error: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")
