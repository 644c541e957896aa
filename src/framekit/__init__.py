"""framekit: message framing for sockets.

A sans-IO length-prefixed codec (Cython, with a pure-Python twin), blocking
and asyncio transports on top of it, and presets for real protocols.
"""

from . import presets, serializers
from .codec import BACKEND, LengthPrefixed, LengthPrefixedDecoder
from .delimited import Delimited
from .errors import (
    ConnectionClosed,
    CorruptedFrame,
    FrameTooLarge,
    FramingError,
    IncompleteFrame,
    SerializationError,
)
from .interface import Codec, CodecBase, Decoder, DecoderBase
from .netstring import Netstring
from .sync import DatagramSocket, FramedSocket, FrameHandler, Server, connect, serve

__version__ = "0.1.0"

__all__ = [
    "BACKEND",
    "Codec",
    "CodecBase",
    "Decoder",
    "DecoderBase",
    "Delimited",
    "Netstring",
    "serializers",
    "ConnectionClosed",
    "CorruptedFrame",
    "FrameTooLarge",
    "FramingError",
    "IncompleteFrame",
    "LengthPrefixed",
    "LengthPrefixedDecoder",
    "SerializationError",
    "DatagramSocket",
    "FrameHandler",
    "FramedSocket",
    "Server",
    "connect",
    "serve",
    "__version__",
    "presets",
]
