"""The tutorials' upper-case echo server, framed: every message comes back whole.

Run it, then talk to it with echo_client.py (or ``framekit send``)::

    python examples/echo_server.py tcp://127.0.0.1:5000
    python examples/echo_client.py tcp://127.0.0.1:5000

The tutorial version calls ``recv(1024)`` and answers whatever bytes arrived:
two messages sent together come back as one, and a long one comes back in
pieces.  Here the handler gets whole messages, one handler per client as
``socketserver`` does, and many clients are served at once.  Ctrl-C stops it.
"""

from __future__ import annotations

import sys
from typing import List, Optional

import framekit


class Upper(framekit.FrameHandler):
    """One instance per client, the shape of ``socketserver.BaseRequestHandler``."""

    def handle_frame(self, frame: bytes) -> bytes:
        return frame.upper()  # what we return goes back as one frame


def main(argv: Optional[List[str]] = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    address = args[0] if args else "tcp://127.0.0.1:5000"  # port 0: any free port
    with framekit.serve(address, Upper) as server:  # binds now; the with block shuts it down
        print(f"listening on {server.address}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as exc:
        # An ordinary mistake (a closed port, an address in use, a remote error, the
        # other end speaking another format) gets one line, not a traceback.
        sys.exit(f"error: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")
