"""The upper-case echo server again, with asyncio: one task per client.

    python examples/echo_server_asyncio.py tcp://127.0.0.1:5000

Same framing, same addresses, same clients as echo_server.py; ``async for``
yields whole frames.
"""

from __future__ import annotations

import asyncio
import sys
from typing import List, Optional

import framekit.asyncio


async def upper(conn: framekit.asyncio.Connection) -> None:
    async for frame in conn:  # until the client closes
        await conn.send(frame.upper())


async def serve(address: str) -> None:
    async with await framekit.asyncio.serve(address, upper) as server:
        print(f"listening on {server.address}", flush=True)
        await server.serve_forever()


def main(argv: Optional[List[str]] = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        asyncio.run(serve(args[0] if args else "tcp://127.0.0.1:5000"))
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
