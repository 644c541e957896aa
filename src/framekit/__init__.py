"""framekit: message framing for sockets.

A sans-IO length-prefixed codec (Cython, with a pure-Python twin), blocking
and asyncio transports on top of it, and presets for real protocols.
"""

from . import serializers
from .codecs import presets
from .codecs.backend import BACKEND, LengthPrefixed, LengthPrefixedDecoder
from .codecs.delimited import Delimited
from .codecs.interface import Codec, CodecBase, Decoder, DecoderBase
from .codecs.netstring import Netstring
from .errors import (
    BudgetExceeded,
    ConnectionClosed,
    CorruptedFrame,
    FrameTooLarge,
    FramingError,
    IncompleteFrame,
    SerializationError,
)
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
    "BudgetExceeded",
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
