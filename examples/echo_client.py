"""The tutorials' interactive client: type a line, get the server's answer.

    python examples/echo_client.py tcp://127.0.0.1:5000

Each line is sent as one frame and each answer is read as one frame, so a long
answer is never cut at 1024 bytes and two answers never run together.  Type
``bye`` (or Ctrl-D) to quit.  It works in a pipe too::

    printf 'hello\\nworld\\n' | python examples/echo_client.py tcp://127.0.0.1:5000
"""

from __future__ import annotations

import sys
from typing import List, Optional

import framekit


def main(argv: Optional[List[str]] = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    address = args[0] if args else "tcp://127.0.0.1:5000"
    prompt = "-> " if sys.stdin.isatty() else ""
    with framekit.connect(address, timeout=10) as conn:
        while True:
            try:
                message = input(prompt)
            except EOFError:
                break
            if message.strip().lower() == "bye":
                break
            conn.send(message.encode())
            print(conn.recv().decode(errors="replace"))  # one whole answer


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except (OSError, framekit.FramingError) as exc:
        # An ordinary mistake (a closed port, an address in use, a remote error, the
        # other end speaking another format) gets one line, not a traceback.
        sys.exit(f"error: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")
