"""Fixtures for the attack tests: TLS certificate files for a server in another process."""

from __future__ import annotations

import os
from typing import Iterator, Tuple

import pytest

from .helpers import fd_limit_for


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Tuple[str, str]:
    """``(certfile, cafile)``: the server's key and chain for ``localhost`` and
    ``127.0.0.1``, and the CA a client trusts, as PEM files."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    path = tmp_path_factory.mktemp("tls")
    certfile, cafile = os.path.join(path, "server.pem"), os.path.join(path, "ca.pem")
    cert.private_key_and_cert_chain_pem.write_to_path(certfile)
    ca.cert_pem.write_to_path(cafile)
    return certfile, cafile


@pytest.fixture(autouse=True)
def descriptors() -> Iterator[None]:
    """Room in this process for the attacks' sockets."""
    fd_limit_for(1200)
    yield
