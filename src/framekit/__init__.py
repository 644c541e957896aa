"""framekit: message framing for sockets.

Sans-IO codecs (length-prefixed, lines, delimiters, netstrings, fixed-length
frames; each in Cython, with a pure-Python twin), blocking and asyncio
transports on top of them, and presets for real protocols.
"""

from . import serializers
from .codecs import presets
from .codecs.backend import (
    BACKEND,
    Delimited,
    FixedLength,
    LengthPrefixed,
    LengthPrefixedDecoder,
    Lines,
    Netstring,
)
from .codecs.interface import Codec, CodecBase, Decoder, DecoderBase
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
    "FixedLength",
    "Lines",
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
