"""framekit.asyncio is a subpackage with a stated API, and it does not hide the stdlib's asyncio."""

from __future__ import annotations

import subprocess
import sys

import framekit.asyncio


def test_all_names_exist() -> None:
    for name in framekit.asyncio.__all__:
        assert getattr(framekit.asyncio, name) is not None, name
    for name in ("connect", "serve", "open_datagram", "Connection", "Server", "DatagramEndpoint"):
        assert name in framekit.asyncio.__all__


def test_imported_on_demand_and_stdlib_asyncio_intact() -> None:
    code = (
        "import sys, framekit\n"
        "assert 'framekit.asyncio' not in sys.modules, 'import framekit pulled in asyncio'\n"
        "import asyncio, framekit.asyncio, framekit.asyncio.connection as c\n"
        "assert c.asyncio is asyncio and asyncio.__file__.endswith('asyncio/__init__.py')\n"
        "assert framekit.asyncio is not asyncio\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
