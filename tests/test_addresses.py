"""parse_address: ports must be ASCII digits."""

from __future__ import annotations

import pytest

from framekit.addresses import parse_address


@pytest.mark.parametrize(
    "port",
    [
        "\N{SUPERSCRIPT TWO}",  # isdigit() but int() refuses it
        "\N{FULLWIDTH DIGIT ONE}\N{FULLWIDTH DIGIT TWO}\N{FULLWIDTH DIGIT THREE}",  # int() takes it
        "\N{ARABIC-INDIC DIGIT EIGHT}\N{ARABIC-INDIC DIGIT ZERO}",
    ],
    ids=["superscript", "fullwidth", "arabic-indic"],
)
@pytest.mark.parametrize("scheme", ["tcp", "udp", "tls"])
def test_non_ascii_digits_are_not_a_port(scheme: str, port: str) -> None:
    address = f"{scheme}://127.0.0.1:{port}"
    with pytest.raises(ValueError, match="invalid port") as info:
        parse_address(address)
    assert repr(port) in str(info.value)


def test_ascii_port_still_parses() -> None:
    assert parse_address("tcp://127.0.0.1:8080").port == 8080
