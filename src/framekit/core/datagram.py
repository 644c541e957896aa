"""Datagram framing rules shared by the blocking and asyncio datagram transports.

Design notes
------------
``framekit.DatagramSocket`` and ``framekit.asyncio.DatagramEndpoint`` send the
same datagrams, so what decides their bytes is written once, here:

* a frame is checked against ``max_datagram_size`` when it is encoded, so a
  frame that cannot fit one datagram raises ``FrameTooLarge`` before anything
  is sent (a datagram socket would fail with ``EMSGSIZE``, or the peer would
  see a truncated datagram);
* ``send_many`` packs consecutive frames, in order, into as few datagrams as
  ``max_datagram_size`` allows;
* a destination may be a socket address, an :class:`~framekit.addresses.Address`
  or an address URL.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional

from ..addresses import SCHEMES, Address, parse_address
from ..codecs.interface import Codec
from ..errors import FrameTooLarge
from ..serializers import Serializer, dumps

__all__ = ["encode_datagram", "pack_datagrams", "sockaddr_of"]


def encode_datagram(
    codec: Codec,
    serializer: Optional[Serializer],
    payload: Any,
    prefix: Optional[bytes],
    max_datagram_size: int,
) -> bytes:
    """One frame for a datagram: serialized, encoded (with ``prefix=`` if given).

    Raises:
        FrameTooLarge: the frame is larger than ``max_datagram_size``.
        SerializationError, ValueError: the payload cannot be framed.
        TypeError: ``prefix`` for a codec whose ``encode`` does not take it.
    """
    if serializer is not None:
        payload = dumps(serializer, payload)
    frame = (
        codec.encode(payload) if prefix is None else codec.encode(payload, prefix=prefix)  # type: ignore[call-arg]
    )
    if len(frame) > max_datagram_size:
        raise FrameTooLarge(
            f"a frame of {len(frame)} bytes does not fit one datagram "
            f"(max_datagram_size={max_datagram_size})",
            frame_length=len(frame),
            max_frame_size=max_datagram_size,
        )
    return frame


def pack_datagrams(frames: Iterable[bytes], max_datagram_size: int) -> List[bytes]:
    """Join consecutive frames into as few datagrams as ``max_datagram_size`` allows.

    Each frame must fit one datagram (:func:`encode_datagram` checked it).
    """
    datagrams: List[bytes] = []
    group: List[bytes] = []
    size = 0
    for frame in frames:
        if group and size + len(frame) > max_datagram_size:
            datagrams.append(b"".join(group))
            group, size = [], 0
        group.append(frame)
        size += len(frame)
    if group:
        datagrams.append(b"".join(group))
    return datagrams


def sockaddr_of(address: Any) -> Any:
    """A URL or :class:`Address` becomes a socket address; anything else is one."""
    if isinstance(address, Address):
        return address.sockaddr
    if isinstance(address, str) and address.partition(":")[0].lower() in SCHEMES:
        return parse_address(address).sockaddr
    return address
