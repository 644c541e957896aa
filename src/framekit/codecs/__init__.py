"""The codecs: sans-IO framings, bytes in, frames out.

Design notes
------------
Every framing framekit ships sits here, with what they share:

* :mod:`.interface`: the ``Codec``/``Decoder`` protocols every transport uses
  (and their optional capabilities: switching, streaming), and the bases a
  user's codec builds on;
* :mod:`._limits`: defaults, argument checks and every error message, written
  once for both backends;
* the pure-Python references, each the specification of its codec:
  :mod:`.length_prefixed`, :mod:`.delimited`, :mod:`.netstring`.  Their Cython
  twins mirror them name for name; ``framekit._speedups`` (the length-prefixed
  one) lives at ``src/framekit/_speedups.pyx``;
* :mod:`.backend`: the one selector that picks the Cython twin or the pure
  reference (``FRAMEKIT_PURE_PYTHON``, ``BACKEND``);
* :mod:`.presets`: the framings of real protocols.

Nothing here touches a socket or knows the connection layer above it.
"""
