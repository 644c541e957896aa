# cython: language_level=3, embedsignature=False, auto_pickle=False, binding=True
"""Cython twin of :mod:`framekit.codecs.length_prefixed`.

Design notes
------------
``framekit.codecs.length_prefixed`` is the specification; this module is the same algorithm in C
types, name for name: ``LengthPrefixed``/``LengthPrefixedDecoder``, the same
methods, the same private helpers (``_decode``, ``_reserve``, ``_append``,
``_consume_buffer``, ``_finish``), the same state fields.  Read the reference
for *what* happens; the notes here are only about *how* it is made fast.

* Lengths are held in C integers.  A fixed field is at most 8 bytes and a
  varint field at most 2**63 - 1 (larger is corrupt in both backends), so the
  field fits an ``int64_t``.  ``frame_length`` may not (field + adjustment +
  header), so the comparison with ``max_frame_size`` is rearranged to
  ``field > max - adjustment - header_end``, which cannot overflow, and an
  oversized frame's length is carried in a ``uint64_t``.
* The decode loop runs over a ``const unsigned char*``: the caller's bytes
  (``feed`` decodes straight out of them when nothing is buffered) or the
  decoder's own ``bytearray``.  Each frame is made with one
  ``PyBytes_FromStringAndSize`` (one copy) and appended to the result list.
* Errors are built by the shared factories in :mod:`framekit.codecs._limits`, on the
  failing path only, so both backends say exactly the same thing.
* A large frame is assembled in its final ``bytes`` object: it is allocated
  with ``PyBytes_FromStringAndSize(NULL, n)`` and written to before anyone
  else holds a reference, and ``get_buffer`` exports its unfilled tail through
  a ``_WritableSpan`` that keeps the bytes alive and counts its exports.  The
  frame the caller gets is the very object the socket wrote into, unless a
  view of it outlived its ``buffer_updated`` (views are released then): that
  caller gets a copy, so a ``bytes`` never changes once handed over.
* ``buffer_updated`` accepts at most what the last ``get_buffer`` offered, once,
  and the view is released then.  A count that does not match a real write
  can never expose uninitialised memory: a new buffer is zero-filled beyond
  the bytes copied into it (only when one is allocated, which a steady stream
  never does), and a frame assembled in place, allocated uninitialised, is
  zeroed part by part just before ``get_buffer`` offers that part (the pure
  twin's ``mmap`` is zero-filled by the system, page by page).  Offered
  memory holds zeros or earlier bytes of the same stream, the same in both
  backends.
* ``max_frames=-1`` costs one compare per frame (``PyList_GET_SIZE(frames) ==
  limit``), and the default is recognised by identity, not converted; the log
  ``detach`` needs costs a few field writes per call: a reference to
  ``feed``'s ``bytes`` (a non-``bytes`` input is copied, the part that is
  logged), and a buffer that is logged is not reused until the next call (the
  spare buffer takes its place).  ``_log_buf`` stays set to ``_buf`` between
  calls (an empty span logs nothing: ``_logged``), so a call does not take and
  drop a reference to it.
* To pay for that compare, the loop does less per frame than the reference:
  a skip can only begin where the loop returns, so it is finished once before
  the loop, and with a fixed field the header size, the cut and the bounds are
  the same for every frame, so they are worked out once per call.
* A call that only adds bytes to an unfinished frame begun in the buffer, too
  small to be assembled in place (``_unfinished``: the common case of small
  reads), does not run the decode loop to parse that frame's header again: it
  appends the bytes and writes the log the general path would write
  (``_log_unfinished``).  The state it leaves is the general path's, field for
  field; the pure twin has no such shortcut, and the agreement and ``detach``
  properties compare the two.
* The small helpers of every call (``_void_view``, ``_log_start``,
  ``_reserve``, ``_append``, ``_consume_buffer``, ``_finish``) are ``cdef
  inline`` and their rare branches are functions of their own, and a spent view
  is released through ``memoryview.release`` itself, not a method lookup.
* The docstrings are the pure twin's, and ``tests/test_codec_introspection.py``
  checks that they stay equal; the class docstrings start with a text
  signature so that ``inspect.signature`` works.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_FillInfo, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport (
    PyByteArray_AS_STRING,
    PyByteArray_FromStringAndSize,
    PyByteArray_GET_SIZE,
)
from cpython.list cimport PyList_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_Clear, PyErr_ExceptionMatches
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy, memmove, memset


cdef extern from "Python.h":
    PyObject* PyObject_CallOneArg(object callable, object arg)  # NULL: an error is set

import operator

from .codecs import _limits
from .codecs._limits import DEFAULT_MAX_FRAME_SIZE

__all__ = ["LengthPrefixed", "LengthPrefixedDecoder"]

cdef Py_ssize_t _READ_SIZE = _limits.DEFAULT_READ_SIZE
cdef int64_t _VARINT_MAX = _limits.VARINT_MAX_VALUE
# Sizes within +-2**62 leave room for any adjustment (an int32) in an int64.
cdef long long _SMALL = 1LL << 62
cdef Py_ssize_t _BUFFER_KEEP = _limits.BUFFER_KEEP
cdef Py_ssize_t _BUFFER_MIN = _limits.BUFFER_MIN
cdef Py_ssize_t _PY_SSIZE_T_MAX = (1 << 63) - 1
cdef bytearray _EMPTY = bytearray()
cdef object _release = memoryview.release
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


cdef object _NO_LIMIT = -1  # the default max_frames (CPython shares small ints)


cdef inline Py_ssize_t _frames_limit(object max_frames) except -2:
    """``max_frames`` as a C count (-1: no limit), checked as the pure twin does."""
    if max_frames is _NO_LIMIT:
        return -1
    return _frames_count(max_frames)


cdef Py_ssize_t _frames_count(object max_frames) except -2:
    cdef int overflow = 0
    cdef long long n
    if type(max_frames) is int:
        n = PyLong_AsLongLongAndOverflow(max_frames, &overflow)
        if overflow == 0 and n >= -1:
            return <Py_ssize_t>n
        if overflow > 0:
            return _PY_SSIZE_T_MAX
    n = min(_limits.check_max_frames(max_frames), _PY_SSIZE_T_MAX)
    return <Py_ssize_t>n


cdef inline Py_ssize_t _updated_count(object nbytes, Py_ssize_t offered) except -1:
    """The ``nbytes`` of ``buffer_updated``: an int, at most what was offered."""
    cdef int overflow = 0
    cdef long long n
    value = nbytes if type(nbytes) is int else operator.index(nbytes)
    n = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or not 0 <= n <= offered:
        raise _limits.offered_error(value, offered)
    return <Py_ssize_t>n


cdef object _as_bytes(object data):
    """A view of ``data`` as unsigned bytes; it must be C-contiguous (as the pure twin)."""
    view = memoryview(data)
    if not view.c_contiguous:
        raise _limits.contiguous_error()
    return view


cdef inline uint64_t _read_field(const unsigned char* p, int size, bint big) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    if big:
        if size == 4:
            return (<uint64_t>p[0] << 24) | (<uint64_t>p[1] << 16) | (<uint64_t>p[2] << 8) | p[3]
        if size == 2:
            return (<uint64_t>p[0] << 8) | p[1]
        for i in range(size):
            v = (v << 8) | p[i]
    else:
        if size == 4:
            return (<uint64_t>p[3] << 24) | (<uint64_t>p[2] << 16) | (<uint64_t>p[1] << 8) | p[0]
        if size == 2:
            return (<uint64_t>p[1] << 8) | p[0]
        for i in range(size - 1, -1, -1):
            v = (v << 8) | p[i]
    return v


cdef inline Py_ssize_t _nbytes(object payload) except -1:
    if type(payload) is bytes:
        return PyBytes_GET_SIZE(payload)
    return memoryview(payload).nbytes


cdef inline Py_ssize_t _copy_into(unsigned char* out, object payload) except -1:
    """Copy a bytes-like ``payload`` to ``out``; return its size."""
    cdef Py_buffer view
    cdef Py_ssize_t n
    if type(payload) is bytes:
        n = PyBytes_GET_SIZE(payload)
        memcpy(out, PyBytes_AS_STRING(payload), n)
        return n
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        memcpy(out, view.buf, view.len)
        return view.len
    finally:
        PyBuffer_Release(&view)


@cython.final
cdef class _WritableSpan:
    """Exports the unfilled tail of a large frame's ``bytes`` object, writable.

    ``get_buffer`` returns ``memoryview(span)`` so that the socket writes
    straight into the frame.  The span keeps the object alive for as long as a
    view of it exists, and counts its exports: when the frame is complete the
    decoder releases the views it handed out, and if one still holds the
    memory (a slice the caller kept) the caller gets a copy of the frame
    instead, so no ``bytes`` it receives can change under it.
    """

    def __cinit__(self, bytes owner):
        self._owner = owner
        self._offset = 0
        self._size = 0
        self._exports = 0

    def __getbuffer__(self, Py_buffer* view, int flags):
        PyBuffer_FillInfo(view, self, PyBytes_AS_STRING(self._owner) + self._offset,
                          self._size, 0, flags)
        self._exports += 1

    def __releasebuffer__(self, Py_buffer* view):
        self._exports -= 1


@cython.final
cdef class LengthPrefixed:
    """LengthPrefixed(length_size=4, *, byteorder='big', length_offset=0, length_adjustment=0, strip=None, max_frame_size=16777216, fail_fast=True, varint_max_bytes=10)
--

Length-prefixed framing with Netty's semantics (see the module notes).

    Args:
        length_size: width of the length field: 1, 2, 3, 4, 8 or ``"varint"``.
        byteorder: ``"big"`` or ``"little"``; ignored for varints.
        length_offset: bytes before the length field (a type byte, a magic...).
        length_adjustment: added to the field to get the bytes after the
            header (Netty's ``lengthAdjustment``).
        strip: bytes dropped from the front of each decoded frame (Netty's
            ``initialBytesToStrip``); ``None`` drops the whole header.
        max_frame_size: the largest adjusted frame, header included, that the
            decoder accepts (Netty's ``maxFrameLength``).
        fail_fast: raise ``FrameTooLarge`` as soon as the header is read
            rather than after the oversized frame was discarded.
        varint_max_bytes: longest varint length field accepted (1 to 10).

    Raises:
        ValueError, TypeError: on an invalid argument.
    """

    def __init__(
        self,
        length_size=4,
        *,
        byteorder="big",
        length_offset=0,
        length_adjustment=0,
        strip=None,
        max_frame_size=DEFAULT_MAX_FRAME_SIZE,
        fail_fast=True,
        varint_max_bytes=10,
    ):
        cfg = _limits.check_length_prefixed(
            length_size,
            byteorder,
            length_offset,
            length_adjustment,
            strip,
            max_frame_size,
            fail_fast,
            varint_max_bytes,
        )
        self._cfg = cfg
        self._size = cfg.length_size
        self._big = cfg.byteorder == "big"
        self._offset = cfg.length_offset
        self._adj = cfg.length_adjustment
        self._strip = cfg.strip
        self._max = cfg.max_frame_size
        self._fail_fast = cfg.fail_fast
        self._vmax = cfg.varint_max_bytes

    # -- configuration --------------------------------------------------------

    @property
    def length_size(self):
        return self._size or _limits.VARINT

    @property
    def byteorder(self):
        return self._cfg.byteorder

    @property
    def length_offset(self):
        return self._offset

    @property
    def length_adjustment(self):
        return self._adj

    @property
    def strip(self):
        return None if self._strip < 0 else self._strip

    @property
    def max_frame_size(self):
        return self._max

    @property
    def fail_fast(self):
        return self._fail_fast

    @property
    def varint_max_bytes(self):
        return self._vmax

    def __repr__(self):
        return (
            f"LengthPrefixed({self.length_size!r}, byteorder={self.byteorder!r}, "
            f"length_offset={self._offset}, length_adjustment={self._adj}, "
            f"strip={self.strip!r}, max_frame_size={self._max}, "
            f"fail_fast={self._fail_fast}, varint_max_bytes={self._vmax})"
        )

    # -- encoding -------------------------------------------------------------

    cdef Py_ssize_t _field_size(self, int64_t value) except -1:
        cdef int n = 1
        cdef uint64_t v
        if self._size == 0:
            if value < 0:
                raise _limits.encode_range_error(value, 0, self._vmax)
            v = <uint64_t>value
            while v >= 0x80:
                v >>= 7
                n += 1
            if n > self._vmax:
                raise _limits.encode_range_error(value, 0, self._vmax)
            return n
        if value < 0 or (self._size < 8 and (<uint64_t>value >> (8 * self._size)) != 0):
            raise _limits.encode_range_error(value, self._size, self._vmax)
        return self._size

    cdef Py_ssize_t _write_field(self, unsigned char* out, int64_t value) except -1:
        """Write the (already validated) field value at ``out``; return its size."""
        cdef uint64_t v = <uint64_t>value
        cdef int i, n = 0
        if self._size == 0:
            while v >= 0x80:
                out[n] = <unsigned char>((v & 0x7F) | 0x80)
                v >>= 7
                n += 1
            out[n] = <unsigned char>v
            return n + 1
        if self._big:
            for i in range(self._size - 1, -1, -1):
                out[i] = <unsigned char>(v & 0xFF)
                v >>= 8
        else:
            for i in range(self._size):
                out[i] = <unsigned char>(v & 0xFF)
                v >>= 8
        return self._size

    cdef bytes _header(self, int64_t value, object prefix, Py_ssize_t extra,
                       object maximum):
        """Return a bytes object holding the header for field ``value``, with
        ``extra`` bytes after it left for the caller to fill (the object is not
        shared until returned).  ``maximum``: the largest frame allowed, or
        None for the codec's."""
        cdef Py_ssize_t field_size, plen
        cdef bytes out
        cdef unsigned char* p
        plen = _nbytes(prefix)
        if plen != self._offset:
            raise _limits.prefix_error(plen, self._offset)
        field_size = self._field_size(value)
        self._check_size(value, plen + field_size, maximum)
        out = PyBytes_FromStringAndSize(NULL, plen + field_size + extra)
        p = <unsigned char*>PyBytes_AS_STRING(out)
        if plen:
            _copy_into(p, prefix)
        self._write_field(p + plen, value)
        return out

    cdef int _check_size(self, int64_t value, Py_ssize_t header, object maximum) except -1:
        """Refuse a frame (field ``value``, ``header`` bytes of header) above the maximum."""
        if maximum is None and -_SMALL < value < _SMALL:
            if value + self._adj + header > self._max:
                raise _limits.encode_too_large_error(value + self._adj + header, self._max)
            return 0
        limit = self._max if maximum is None else maximum
        frame_length = <object>value + self._adj + header
        if frame_length > limit:
            raise _limits.encode_too_large_error(frame_length, limit)
        return 0

    def header(self, payload_size, *, prefix=b"", max_frame_size=None):
        """Return the header (``prefix`` + length field) for a payload of that size.

        Send ``[header, payload]`` with one vectored call to avoid copying the
        payload.

        Args:
            payload_size: the bytes that will follow the header.
            prefix: the ``length_offset`` bytes before the length field.
            max_frame_size: the largest frame (header included) to allow for
                this header; ``None``: the codec's.  A caller streaming a frame
                larger than the codec's maximum raises it for that one header.

        Returns:
            The header, as ``bytes``.

        Raises:
            ValueError: ``prefix`` is not ``length_offset`` bytes long, or the
                field value (``payload_size - length_adjustment``) is negative
                or does not fit the field.
            FrameTooLarge: the frame would be larger than ``max_frame_size``
                (the decoder would refuse it).
        """
        cdef int overflow = 0
        cdef long long n
        cdef Py_ssize_t plen
        if max_frame_size is not None:
            max_frame_size = _limits.check_header_max(max_frame_size)
        if type(payload_size) is int:
            n = PyLong_AsLongLongAndOverflow(payload_size, &overflow)
            if not overflow and -_SMALL < n < _SMALL:
                return self._header(n - self._adj, prefix, 0, max_frame_size)
        # Huge (or odd) sizes: Python arithmetic, as the reference does.
        plen = _nbytes(prefix)
        if plen != self._offset:
            raise _limits.prefix_error(plen, self._offset)
        value = operator.index(payload_size) - self._adj
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise _limits.encode_range_error(value, self._size, self._vmax)
        return self._header(value, prefix, 0, max_frame_size)

    def encode(self, payload, *, prefix=b""):
        """Return one whole frame: ``prefix``, the length field, then ``payload``.

        Raises:
            ValueError: as :meth:`header`.
            FrameTooLarge: the frame is above ``max_frame_size``.
        """
        cdef Py_ssize_t n = _nbytes(payload)
        cdef bytes out = self._header(<int64_t>n - self._adj, prefix, n, None)
        _copy_into(<unsigned char*>PyBytes_AS_STRING(out) + PyBytes_GET_SIZE(out) - n, payload)
        return out

    def encode_many(self, payloads, *, prefix=b""):
        """Return the frames of all ``payloads`` in one buffer, for one ``sendall``.

        Raises:
            ValueError: as :meth:`header`.
            FrameTooLarge: a frame is above ``max_frame_size`` (nothing is returned).
        """
        cdef list items = list(payloads)
        cdef Py_ssize_t total = 0, n, plen, pos = 0, field_size
        cdef bytes out
        cdef unsigned char* p
        cdef object payload
        cdef int64_t value
        plen = _nbytes(prefix)
        if plen != self._offset:
            raise _limits.prefix_error(plen, self._offset)
        for payload in items:
            n = _nbytes(payload)
            field_size = self._field_size(<int64_t>n - self._adj)
            self._check_size(<int64_t>n - self._adj, plen + field_size, None)
            total += plen + field_size + n
        out = PyBytes_FromStringAndSize(NULL, total)
        p = <unsigned char*>PyBytes_AS_STRING(out)
        for payload in items:
            if plen:
                pos += _copy_into(p + pos, prefix)
            value = <int64_t>_nbytes(payload) - self._adj
            pos += self._write_field(p + pos, value)
            pos += _copy_into(p + pos, payload)
        return out

    def encode_parts(self, payload, *, prefix=b""):
        """Return ``(header, payload)`` for a vectored send (``socket.sendmsg``).

        Raises:
            ValueError: as :meth:`header`.
            FrameTooLarge: the frame is above ``max_frame_size``.
        """
        return self._header(<int64_t>_nbytes(payload) - self._adj, prefix, 0, None), payload

    # -- decoding -------------------------------------------------------------

    def decoder(self):
        """Return a new, independent decoder for one stream."""
        return LengthPrefixedDecoder(self)


@cython.final
cdef class LengthPrefixedDecoder:
    """LengthPrefixedDecoder(codec)
--

Incremental decoder for one stream; made by :meth:`LengthPrefixed.decoder`.

    Feed it bytes in pieces of any size; it returns each frame once complete.
    It has both optional capabilities of :mod:`framekit.codecs.interface`:
    switching (``max_frames``, :meth:`detach`) and streaming (``stream_*``).
    """

    def __init__(self, LengthPrefixed codec not None):
        self._size = codec._size
        self._big = codec._big
        self._offset = codec._offset
        self._adj = codec._adj
        self._strip = codec._strip
        self._max = codec._max
        self._fail_fast = codec._fail_fast
        self._vmax = codec._vmax
        self._buf = bytearray()
        self._spare = bytearray()
        self._start = 0
        self._end = 0
        self._need = -1
        self._undecoded = False
        self._held = False
        self._discard = 0
        self._too_long = 0
        self._broken = None
        self._detached = False
        self._offered = 0
        self._view = None
        self._frame = None
        self._frame_pos = 0
        self._frame_cut = 0
        self._frame_head = b""
        self._frame_from = 0
        self._frame_clean = 0
        self._last = 0
        self._rest_min = 1
        self._header_max = codec._offset + (codec._size or codec._vmax)
        self._direct_min = _limits.DIRECT_MIN
        self._direct_ratio = _limits.DIRECT_RATIO
        self._room_cap = _limits.ROOM_CAP
        self._span = None
        self._stream_limit = 0
        self._stream_left = 0
        self._stream_length = 0
        self._log_n = 0
        self._log_base = 0
        self._log_lost = False
        self._log_head = b""
        self._log_frame = None
        self._log_buf = None
        self._log_b0 = self._log_b1 = 0
        self._log_data = None
        self._log_d0 = self._log_d1 = 0

    @property
    def pending(self):
        """Bytes buffered that belong to no complete frame yet."""
        cdef Py_ssize_t held = self._end - self._start
        if self._frame is not None:
            held += self._frame_cut + self._frame_pos
        return held

    @property
    def stream_limit(self):
        """The largest frame (header included) that is held for streaming; 0: off."""
        return self._stream_limit

    @stream_limit.setter
    def stream_limit(self, value):
        self._stream_limit = _limits.check_stream_limit(value)

    @property
    def stream_remaining(self):
        """Payload bytes of the open stream not yet read; 0: not streaming."""
        return self._stream_left

    @property
    def stream_held(self):
        """Whether decoding stopped at the header of a frame held for streaming
        (above ``max_frame_size``, not above ``stream_limit``)."""
        return self._held

    # -- the decode loop ------------------------------------------------------

    cdef object _decode(self, const unsigned char* src, Py_ssize_t* ppos, Py_ssize_t end,
                        list frames, Py_ssize_t limit):
        cdef Py_ssize_t pos = ppos[0]
        cdef Py_ssize_t avail, header_end, cut, i, n
        cdef uint64_t field, b, flen, take
        cdef bint overflow, oversized
        cdef object err
        cdef int size = self._size
        cdef bint big = self._big
        cdef Py_ssize_t offset = self._offset
        cdef int64_t adj = self._adj
        cdef Py_ssize_t strip = self._strip
        cdef int64_t maximum = self._max
        # With a fixed field, every header has the same size, cut and bounds.
        cdef Py_ssize_t fixed_end = offset + size
        cdef Py_ssize_t fixed_cut = fixed_end if strip < 0 else strip
        cdef uint64_t fixed_extra = <uint64_t>(adj + fixed_end)
        cdef int64_t fixed_room = maximum - adj - fixed_end
        cdef int64_t neg_adj = -adj
        cdef uint64_t extra     # flen - field
        cdef int64_t room       # the largest field that is not oversized
        self._need = -1
        self._held = False
        self._undecoded = False
        # A skip only ever begins where the loop returns: finish it here, once.
        if self._discard:
            take = <uint64_t>(end - pos)
            if take > self._discard:
                take = self._discard
            pos += <Py_ssize_t>take
            self._discard -= take
            if self._discard:
                ppos[0] = pos
                return None
            if self._too_long:
                err = _limits.too_large_error(self._too_long, maximum, frames)
                self._too_long = 0
                self._undecoded = True
                ppos[0] = pos
                return err
        if PyList_GET_SIZE(frames) == limit:
            self._undecoded = True
            ppos[0] = pos
            return None
        while True:
            avail = end - pos
            if size:
                header_end = fixed_end
                if avail < header_end:
                    break
                field = _read_field(src + pos + offset, size, big)
                if size == 8 and (field >> 63):
                    ppos[0] = pos
                    return self._break(_limits.negative_length_error(<int64_t>field, frames))
                cut = fixed_cut
                extra = fixed_extra
                room = fixed_room
            else:
                i = pos + offset
                n = 0
                field = 0
                overflow = False
                while True:
                    if n == self._vmax:
                        ppos[0] = pos
                        return self._break(_limits.varint_error(self._vmax, frames))
                    if i + n >= end:
                        ppos[0] = pos
                        return None
                    b = src[i + n]
                    if n == 9:
                        overflow = (b & 0x7F) != 0
                    else:
                        field |= (b & 0x7F) << (7 * n)
                    n += 1
                    if b < 0x80:
                        break
                if overflow or field > <uint64_t>_VARINT_MAX:
                    ppos[0] = pos
                    return self._break(_limits.varint_overflow_error(frames))
                header_end = offset + n
                cut = header_end if strip < 0 else strip
                extra = <uint64_t>(adj + header_end)
                room = maximum - adj - header_end
            # field < 2**63 from here on.
            if <int64_t>field < neg_adj:
                ppos[0] = pos
                return self._break(_limits.too_short_error(
                    <object>field + adj + header_end, header_end, frames))
            # Modular arithmetic gives the true length: it lies in [header_end, 2**64).
            flen = field + extra
            oversized = <int64_t>field > room
            if oversized or <uint64_t>cut > flen:
                if <uint64_t>cut <= flen and flen <= <uint64_t>self._stream_limit:
                    # Held for streaming: stop at its header until stream_begin().
                    self._need = <int64_t>flen
                    self._held = self._undecoded = True
                    break
                if oversized:
                    err = _limits.too_large_error(flen, maximum, frames)
                else:
                    err = _limits.strip_error(flen, cut, frames)
                self._undecoded = True
                if <uint64_t>avail >= flen:
                    ppos[0] = pos + <Py_ssize_t>flen
                    return err
                self._discard = flen - <uint64_t>avail
                ppos[0] = end
                if oversized and not self._fail_fast:
                    self._too_long = flen
                    return None
                return err
            if <uint64_t>avail < flen:
                self._need = <int64_t>flen
                n = <Py_ssize_t>flen - cut
                if (n >= self._direct_min and avail >= cut
                        and <Py_ssize_t>flen - avail >= self._rest_min):
                    if n <= self._direct_ratio * avail:
                        self._begin_frame(src, pos, end, cut, n)
                        ppos[0] = end
                        return None
                break
            frames.append(PyBytes_FromStringAndSize(
                <const char*>src + pos + cut, <Py_ssize_t>flen - cut))
            pos += <Py_ssize_t>flen
            if PyList_GET_SIZE(frames) == limit:  # the one compare max_frames costs
                self._undecoded = True
                break
        ppos[0] = pos
        return None

    cdef int _begin_frame(self, const unsigned char* src, Py_ssize_t pos, Py_ssize_t end,
                          Py_ssize_t cut, Py_ssize_t payload) except -1:
        # The object is ours alone until the frame is complete, so it may be
        # written to; nothing hashes or shares it before then.  Its memory is
        # not initialised: get_buffer() zeroes each part before offering it.
        cdef Py_ssize_t n = end - pos - cut
        self._frame = PyBytes_FromStringAndSize(NULL, payload)
        memcpy(PyBytes_AS_STRING(self._frame), src + pos + cut, n)
        self._frame_pos = n
        self._frame_clean = n
        self._frame_cut = cut
        self._frame_head = PyBytes_FromStringAndSize(<const char*>src + pos, cut)
        self._frame_from = pos
        return 0

    cdef Py_ssize_t _fill_frame(self, const unsigned char* data, Py_ssize_t pos,
                                Py_ssize_t end) except -1:
        cdef Py_ssize_t take = min(PyBytes_GET_SIZE(self._frame) - self._frame_pos, end - pos)
        memcpy(PyBytes_AS_STRING(self._frame) + self._frame_pos, data + pos, take)
        self._frame_pos += take
        if self._frame_clean < self._frame_pos:
            self._frame_clean = self._frame_pos
        return pos + take

    cdef int _deliver_frame(self, list frames) except -1:
        cdef bytes frame = self._frame
        cdef Py_ssize_t size = PyBytes_GET_SIZE(frame)
        if self._span is not None:
            if self._span._exports:
                # A view of it outlived its update: hand over a copy.
                frame = PyBytes_FromStringAndSize(PyBytes_AS_STRING(frame), size)
            self._span = None
        frames.append(frame)
        self._last = size
        self._frame = None
        self._frame_head = b""
        self._need = -1
        return 0

    cdef object _break(self, object err):
        self._broken = str(err)
        return err

    cdef int _refuse(self) except -1:
        if self._detached:
            raise _limits.detached_error()
        if not self._log_lost:
            self._clear()
            self._log_lost = True
        raise _limits.broken_error(self._broken)

    cdef int _clear(self) except -1:
        self._buf = bytearray()
        self._spare = bytearray()
        self._start = self._end = 0
        self._frame = None
        self._span = None
        self._frame_head = b""
        self._need = -1
        self._discard = self._too_long = 0
        self._stream_left = 0
        self._log_drop()
        self._log_n = 0
        return 0

    # -- buffer management ----------------------------------------------------

    cdef inline int _reserve(self, Py_ssize_t room) except -1:
        if PyByteArray_GET_SIZE(self._buf) - self._end < room:
            self._make_room(room)
        return 0

    cdef int _make_room(self, Py_ssize_t room) except -1:
        cdef bytearray buf = self._buf
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(buf)
        cdef Py_ssize_t pending = self._end - self._start
        cdef Py_ssize_t want
        cdef bytearray new
        cdef char* base
        cdef bint compact
        base = PyByteArray_AS_STRING(buf)
        compact = size - pending >= room and self._start >= pending
        if compact and not self._logged(buf):
            memmove(base, base + self._start, pending)
        else:
            want = size if compact else max(2 * size, pending + room, _BUFFER_MIN)
            new = self._spare
            self._spare = _EMPTY
            if PyByteArray_GET_SIZE(new) < want:
                new = PyByteArray_FromStringAndSize(NULL, want)
                # Never hand out uninitialised memory (buffer_updated may be told
                # more bytes were written than were).
                memset(PyByteArray_AS_STRING(new) + pending, 0, want - pending)
            memcpy(PyByteArray_AS_STRING(new), base + self._start, pending)
            self._buf = new
        self._start = 0
        self._end = pending
        return 0

    cdef inline int _append(self, const unsigned char* data, Py_ssize_t n) except -1:
        if n <= 0:
            return 0
        self._reserve(n)
        memcpy(PyByteArray_AS_STRING(self._buf) + self._end, data, n)
        self._end += n
        return 0

    cdef inline object _consume_buffer(self, list frames, Py_ssize_t limit):
        cdef Py_ssize_t pos = self._start
        if self._log_buf is not self._buf:
            self._log_buf = self._buf
        self._log_b0 = pos
        err = self._decode(<const unsigned char*>PyByteArray_AS_STRING(self._buf),
                           &pos, self._end, frames, limit)
        self._log_b1 = self._frame_from if self._frame is not None else pos
        self._start = pos
        return err

    cdef inline int _void_view(self) except -1:
        self._offered = 0
        if self._view is not None:
            self._release_view()
        return 0

    cdef int _release_view(self) except -1:
        cdef object view = self._view
        cdef PyObject* result
        self._view = None
        result = PyObject_CallOneArg(_release, view)  # view.release()
        if result is NULL:
            if not PyErr_ExceptionMatches(BufferError):
                return -1
            PyErr_Clear()  # exported further by the caller: it stays
        Py_XDECREF(result)
        return 0

    cdef int _take(self, const unsigned char* data, Py_ssize_t end) except -1:
        cdef Py_ssize_t pos = 0
        if self._frame is not None and self._frame_pos < PyBytes_GET_SIZE(self._frame):
            pos = self._fill_frame(data, 0, end)
        if pos < end:
            self._append(data + pos, end - pos)
            self._undecoded = True
        return 0

    cdef inline int _log_start(self, object data) except -1:
        # _log_drop(), but _log_buf may stay: with nothing logged, it is free.
        if self._log_buf is not None and self._log_buf is not self._buf:
            self._log_unbuffer()
        self._log_b0 = self._log_b1 = self._log_d0 = self._log_d1 = 0
        if self._log_frame is not None:
            self._log_head = b""
            self._log_frame = None
        self._log_lost = False
        self._log_base = self._discard
        self._log_data = data
        return 0

    cdef int _log_drop(self) except -1:
        if self._log_buf is not None:
            self._log_unbuffer()
        self._log_b0 = self._log_b1 = self._log_d0 = self._log_d1 = 0
        self._log_head = b""
        self._log_frame = None
        self._log_data = None
        self._log_lost = False
        return 0

    cdef inline bint _unfinished(self, Py_ssize_t pending, Py_ssize_t n) noexcept:
        """Whether ``n`` more bytes leave the frame begun in the buffer (``pending``
        bytes of it) unfinished, and not one to assemble in place."""
        return (pending > 0 and 0 < n < self._need - pending and self._need < self._direct_min
                and not self._undecoded and not self._held)

    cdef inline int _log_unfinished(self) except -1:
        """Complete the log of a decode call that only added to that frame."""
        if self._log_buf is not self._buf:
            self._log_buf = self._buf
        self._log_b0 = self._log_b1 = self._start
        self._log_n = 0
        self._log_lost = self._log_base > 0
        return 0

    cdef inline bint _logged(self, bytearray buf) noexcept:
        return buf is self._log_buf and self._log_b1 > self._log_b0

    cdef int _log_unbuffer(self) except -1:
        cdef bytearray old = self._log_buf
        if old is not self._buf and PyByteArray_GET_SIZE(old) <= PyByteArray_GET_SIZE(self._buf):
            self._spare = old
        self._log_buf = None
        return 0

    cdef inline list _finish(self, list frames, object err, const unsigned char* data,
                             bint copy):
        self._log_n = PyList_GET_SIZE(frames)
        self._log_lost = self._log_base > 0 and self._log_n == 0
        if copy and self._log_d1 > self._log_d0:
            self._log_copy(data)
        if self._end == self._start:
            self._undecoded = False
            if PyByteArray_GET_SIZE(self._buf) > _BUFFER_KEEP:
                self._shrink()
        if err is not None:
            raise err
        return frames

    cdef int _log_copy(self, const unsigned char* data) except -1:
        self._log_data = PyBytes_FromStringAndSize(
            <const char*>data + self._log_d0, self._log_d1 - self._log_d0)
        self._log_d1 -= self._log_d0
        self._log_d0 = 0
        return 0

    cdef int _shrink(self) except -1:
        if self._log_buf is self._buf:
            self._log_buf = self._buf[self._log_b0:self._log_b1]
            self._log_b1 -= self._log_b0
            self._log_b0 = 0
        self._buf = bytearray()
        self._spare = bytearray()
        self._start = self._end = 0
        return 0

    cdef list _feed(self, object obj, const unsigned char* data, Py_ssize_t end,
                    Py_ssize_t limit, bint copy):
        cdef Py_ssize_t pos = 0, pending, want, take, skip
        cdef list frames
        cdef object err = None
        cdef bint held
        self._void_view()
        if limit == 0 or self._stream_left:
            self._take(data, end)
            return []
        if self._unfinished(self._end - self._start, end) and self._frame is None:
            # The bytes cannot finish the buffered frame: the state the general
            # path below would leave, without parsing that frame's header again.
            self._log_start(obj)
            self._rest_min = 1
            self._append(data, end)
            self._log_d0 = self._log_d1 = end
            self._log_unfinished()
            return []
        frames = []
        self._log_start(obj)
        self._rest_min = 1
        if self._frame is not None:
            pos = self._fill_frame(data, 0, end)
            if self._frame_pos == PyBytes_GET_SIZE(self._frame):
                self._log_head = self._frame_head
                self._deliver_frame(frames)
                self._log_frame = frames[PyList_GET_SIZE(frames) - 1]
        self._log_d0 = pos
        if self._frame is None and PyList_GET_SIZE(frames) != limit:
            if self._undecoded and self._end > self._start:
                self._append(data + pos, end - pos)
                pos = self._log_d0 = end
                err = self._consume_buffer(frames, limit)
            while self._end > self._start and pos < end:
                pending = self._end - self._start
                if self._need >= 0:
                    want = <Py_ssize_t>self._need - pending
                elif self._size:
                    want = self._offset + self._size - pending
                else:
                    want = max(self._offset + 1 - pending, 1)
                take = min(want, end - pos)
                self._append(data + pos, take)
                pos += take
                self._log_d0 = pos
                err = self._consume_buffer(frames, limit)
                if self._frame is not None:
                    pos = self._fill_frame(data, pos, end)
                    if self._frame_pos == PyBytes_GET_SIZE(self._frame):
                        self._deliver_frame(frames)
                        self._log_b1 = self._start
                if err is not None or self._undecoded:
                    break
            if (err is None and not self._undecoded and self._frame is None
                    and (pos < end or self._discard)):
                err = self._decode(data, &pos, end, frames, limit)
                self._log_d1 = self._frame_from if self._frame is not None else pos
            elif self._frame is not None:
                self._log_d1 = self._log_d0
            else:
                self._log_d1 = pos
            if pos < end and err is not None and self._discard:
                skip = <Py_ssize_t>min(self._discard, <uint64_t>(end - pos))
                self._discard -= skip
                pos += skip
                self._log_d1 = pos
            if pos < end:
                held = self._undecoded or err is not None
                self._append(data + pos, end - pos)
                self._undecoded = held
        else:
            self._log_d1 = pos
            if pos < end:
                self._append(data + pos, end - pos)
                self._undecoded = True
        return self._finish(frames, err, data, copy)

    # -- public API -----------------------------------------------------------

    def feed(self, data, max_frames=-1):
        """Add received bytes; return every frame they complete, in order.

        Args:
            data: the bytes received (any C-contiguous bytes-like object).
            max_frames: decode at most that many frames and hold every byte
                after the last one, undecoded, for a later call (``0``: only
                take the bytes); ``-1``: no limit.

        Returns:
            The frames, as ``bytes``.

        Raises:
            FrameTooLarge: a frame above ``max_frame_size``; its bytes are
                skipped and decoding can go on (call ``feed(b"")`` to decode
                complete frames already buffered behind it).
            CorruptedFrame: the stream is corrupt (see the module notes).
            Each error's ``.frames`` holds the frames decoded before it.
            BufferError: ``data`` is not C-contiguous.
            ValueError: the decoder was detached, or ``max_frames < -1``.
        """
        cdef Py_buffer view
        cdef Py_ssize_t limit
        if self._broken is not None or self._detached:
            self._refuse()
        limit = _frames_limit(max_frames)
        if type(data) is bytes:
            return self._feed(data, <const unsigned char*>PyBytes_AS_STRING(data),
                              PyBytes_GET_SIZE(data), limit, False)
        data = _as_bytes(data)
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            return self._feed(None, <const unsigned char*>view.buf, view.len, limit, True)
        finally:
            PyBuffer_Release(&view)

    def get_buffer(self, Py_ssize_t sizehint=-1):
        """Return writable space to receive into (``recv_into``).

        Report how much was written with :meth:`buffer_updated`.  The view is
        all the free space, at least ``sizehint`` bytes (64 KiB when
        ``sizehint <= 0``) and, between frames, room for one as large as the
        last (up to ``_limits.ROOM_CAP``); while a large frame is being
        assembled in place, the next part of that frame (the rest of it, or
        as much as has arrived, if that is more than ``sizehint``); while
        streaming, no more than the rest of the payload.  Pass a large
        ``sizehint`` (256 KiB) when each read is costly: fewer reads beat
        fewer copies.  The view is released by the next call that uses it
        up (``buffer_updated``, ``feed``, ``get_buffer``).

        Raises:
            CorruptedFrame: the decoder is broken.
            ValueError: the decoder was detached.
        """
        cdef Py_ssize_t room, pending, pos, n, rest, clean
        if self._broken is not None or self._detached:
            self._refuse()
        self._void_view()
        room = sizehint if sizehint > 0 else _READ_SIZE
        if self._frame is not None and self._frame_pos < PyBytes_GET_SIZE(self._frame):
            pos = self._frame_pos
            n = min(PyBytes_GET_SIZE(self._frame) - pos, max(room, self._frame_cut + pos))
            clean = max(self._frame_clean, pos)
            if clean < pos + n:
                memset(PyBytes_AS_STRING(self._frame) + clean, 0, pos + n - clean)
                self._frame_clean = pos + n
            if self._span is None:
                self._span = _WritableSpan(self._frame)
            self._span._offset = pos
            self._span._size = n
            view = memoryview(self._span)
        else:
            pending = self._end - self._start
            rest = -1
            if self._stream_left:
                rest = self._stream_left - min(pending, self._stream_left)
                room = min(room, rest)
            elif pending == 0:
                if not self._logged(self._buf):
                    self._start = self._end = 0
                room = max(room, self._header_max + min(self._last, self._room_cap))
            elif self._need > 0:
                room = max(room, min(<Py_ssize_t>self._need - pending, pending))
            self._reserve(room)
            n = PyByteArray_GET_SIZE(self._buf) - self._end
            if rest >= 0:
                n = min(n, rest)
                view = memoryview(self._buf)[self._end:self._end + n]
            else:
                view = memoryview(self._buf)[self._end:]
        self._offered = n
        self._view = view
        return view

    def buffer_updated(self, nbytes, max_frames=-1):
        """Account for ``nbytes`` written into the last :meth:`get_buffer` view.

        Args:
            nbytes: how many bytes were written at the start of the view.
            max_frames: as in :meth:`feed`.

        Returns:
            Every frame completed, as :meth:`feed`.

        Raises:
            ValueError: ``nbytes`` is more than the view offered (or that
                view was already used), or as :meth:`feed`.
            FramingError: as :meth:`feed`.
        """
        cdef list frames
        cdef Py_ssize_t limit, n, pending
        cdef object err
        if self._broken is not None or self._detached:
            self._refuse()
        limit = _frames_limit(max_frames)
        n = _updated_count(nbytes, self._offered)
        self._void_view()
        frames = []
        frame = self._frame
        if frame is not None and self._frame_pos < PyBytes_GET_SIZE(frame):
            self._frame_pos += n  # at most the view: its memory was zeroed
        else:
            pending = self._end - self._start
            self._end += n
            if limit == 0 or self._stream_left:
                self._undecoded = self._undecoded or n > 0
            elif self._unfinished(pending, n) and frame is None:
                # As _feed: the state the general path would leave.
                self._log_start(None)
                self._rest_min = self._direct_min
                self._log_unfinished()
                return frames
        if limit == 0 or self._stream_left:
            return frames
        self._log_start(None)
        if frame is not None and self._frame_pos == PyBytes_GET_SIZE(frame):
            self._log_head = self._frame_head
            self._deliver_frame(frames)
            self._log_frame = frames[PyList_GET_SIZE(frames) - 1]
        if (self._end > self._start and PyList_GET_SIZE(frames) != limit
                and self._frame is None):
            self._rest_min = self._direct_min
            err = self._consume_buffer(frames, limit)
            if frames:
                self._last = PyBytes_GET_SIZE(frames[PyList_GET_SIZE(frames) - 1])
            return self._finish(frames, err, NULL, False)
        return self._finish(frames, None, NULL, False)

    def eof(self):
        """Declare the end of the stream.

        Raises:
            IncompleteFrame: an unfinished frame is buffered (it says how many
                bytes were cut off), or a stream is open.
            FrameTooLarge: the stream ended while an oversized frame was being
                skipped and its error (``fail_fast=False``) was still owed.
            ValueError: the decoder was detached.
        """
        cdef uint64_t too_long
        cdef Py_ssize_t pending, to_come
        if self._detached:
            raise _limits.detached_error()
        if self._broken is not None:
            return
        if self._stream_left:
            to_come = self._stream_left - min(self._end - self._start, self._stream_left)
            raise _limits.incomplete_error(self._stream_length - to_come, self._stream_length)
        if self._too_long:
            too_long = self._too_long
            self._too_long = self._discard = 0
            raise _limits.too_large_error(too_long, self._max, [])
        pending = self.pending
        if pending:
            raise _limits.incomplete_error(pending, self._need)

    # -- switching ------------------------------------------------------------

    def detach(self, unused=0):
        """Stop for good and hand back the rest of the stream, as it was received.

        Args:
            unused: how many of the frames returned by the most recent decode
                call (its return value, or its error's ``.frames``) the caller
                did not use: their wire bytes come first.

        Returns:
            The wire bytes of those frames, then every byte received after
            them; whatever the decoder made of them is forgotten.

        Raises:
            ValueError: ``unused`` is negative or more than that call's frames,
                or the decoder cannot go back to that point (it is streaming,
                skipping a frame since before that call, or broken since before
                it), or it was already detached.
        """
        cdef Py_ssize_t pos, k
        cdef list parts
        if self._detached:
            raise _limits.detached_error()
        unused = operator.index(unused)
        if self._stream_left:
            raise _limits.detach_lost_error("a stream is open")
        if not 0 <= unused <= self._log_n:
            raise _limits.detach_error(unused, self._log_n)
        if self._log_lost:
            if self._broken is not None:
                raise _limits.detach_lost_error("broken before the most recent call")
            raise _limits.detach_lost_error("skipping a frame that began before that call")
        parts = []
        if self._log_frame is not None:
            parts += [self._log_head, self._log_frame]
        if self._log_buf is not None:
            parts.append(self._log_buf[self._log_b0:self._log_b1])
        if self._log_data is not None:
            parts.append(self._log_data[self._log_d0:self._log_d1])
        if self._frame is not None:
            parts += [self._frame_head, self._frame[:self._frame_pos]]
        held = self._buf[self._start:self._end]
        wire = b"".join(parts)
        pos = self._log_base
        for k in range(self._log_n - unused):
            pos += self._wire_length(wire, pos)
        out = wire[pos:] + held
        self._void_view()
        self._clear()
        self._detached = True
        return out

    cdef int _read_header(self, const unsigned char* src, Py_ssize_t pos, Py_ssize_t end,
                          uint64_t* flen, Py_ssize_t* hend) except -1:
        """Parse the header at ``src[pos:end]``: 1 and its length, 0 while it is
        incomplete; a corrupt header breaks the decoder and raises."""
        cdef Py_ssize_t offset = self._offset, header_end, n = 0
        cdef uint64_t field = 0, b
        cdef bint overflow = False
        if self._size:
            header_end = offset + self._size
            if end - pos < header_end:
                return 0
            field = _read_field(src + pos + offset, self._size, self._big)
            if self._size == 8 and (field >> 63):
                raise self._break(_limits.negative_length_error(<int64_t>field, []))
        else:
            while True:
                if n == self._vmax:
                    raise self._break(_limits.varint_error(self._vmax, []))
                if pos + offset + n >= end:
                    return 0
                b = src[pos + offset + n]
                if n == 9:
                    overflow = (b & 0x7F) != 0
                else:
                    field |= (b & 0x7F) << (7 * n)
                n += 1
                if b < 0x80:
                    break
            if overflow or field > <uint64_t>_VARINT_MAX:
                raise self._break(_limits.varint_overflow_error([]))
            header_end = offset + n
        if <int64_t>field < -self._adj:
            raise self._break(_limits.too_short_error(
                <object>field + self._adj + header_end, header_end, []))
        flen[0] = field + <uint64_t>(self._adj + header_end)
        hend[0] = header_end
        return 1

    cdef Py_ssize_t _wire_length(self, bytes wire, Py_ssize_t pos) except -1:
        cdef uint64_t flen = 0
        cdef Py_ssize_t hend = 0
        self._read_header(<const unsigned char*>PyBytes_AS_STRING(wire), pos,
                          PyBytes_GET_SIZE(wire), &flen, &hend)
        return <Py_ssize_t>flen

    # -- streaming ------------------------------------------------------------

    def stream_begin(self):
        """Start streaming the next frame: a held one, one being assembled, or
        one whose header is complete in the buffer.

        Returns:
            The payload's length (what :meth:`feed` would have returned, as a
            count), or ``-1`` while the next header is incomplete.

        Raises:
            FrameTooLarge: the frame is above ``max(stream_limit,
                max_frame_size)``; it is skipped, before a byte of its payload
                is read.
            CorruptedFrame: as :meth:`feed`.
            ValueError: a stream is already open, or the decoder was detached.
        """
        cdef uint64_t flen = 0, limit, take
        cdef Py_ssize_t hend = 0, cut, skip
        cdef bytes frame
        if self._broken is not None or self._detached:
            self._refuse()
        if self._stream_left:
            raise _limits.stream_open_error()
        self._void_view()
        if self._frame is not None:
            frame = self._frame
            rest = self._buf[self._start:self._end]
            self._buf = PyByteArray_FromStringAndSize(PyBytes_AS_STRING(frame), self._frame_pos)
            self._buf += rest
            self._spare = bytearray()
            self._start = 0
            self._end = PyByteArray_GET_SIZE(self._buf)
            self._frame = None
            self._span = None
            self._frame_head = b""
            return self._open_stream(self._frame_cut + PyBytes_GET_SIZE(frame),
                                     PyBytes_GET_SIZE(frame))
        if self._discard:
            skip = <Py_ssize_t>min(self._discard, <uint64_t>(self._end - self._start))
            self._start += skip
            self._discard -= skip
            self._log_lost = True
            if self._discard:
                return -1
            if self._too_long:
                take = self._too_long
                self._too_long = 0
                raise _limits.too_large_error(take, self._max, [])
        if not self._read_header(<const unsigned char*>PyByteArray_AS_STRING(self._buf),
                                 self._start, self._end, &flen, &hend):
            return -1
        cut = hend if self._strip < 0 else self._strip
        limit = <uint64_t>max(self._max, self._stream_limit)
        if <uint64_t>cut > flen or flen > limit:
            if <uint64_t>cut > flen:
                err = _limits.strip_error(flen, cut, [])
            elif self._stream_limit > self._max:
                err = _limits.stream_too_large_error(flen, limit)
            else:
                err = _limits.too_large_error(flen, self._max, [])
            take = min(<uint64_t>(self._end - self._start), flen)
            self._start += <Py_ssize_t>take
            self._discard = flen - take
            self._need = -1
            self._held = False
            self._undecoded = self._end > self._start
            self._log_lost = True
            raise err
        if self._end - self._start < cut:
            return -1
        self._start += cut
        return self._open_stream(<int64_t>flen, <int64_t>flen - cut)

    cdef object _open_stream(self, int64_t frame_length, int64_t payload):
        self._stream_length = frame_length
        self._stream_left = payload
        self._need = -1
        self._held = False
        self._undecoded = self._end - self._start > payload
        self._log_drop()
        self._log_n = 0
        self._log_base = 0
        return payload

    def stream_read(self, max_bytes):
        """Return and consume up to ``max_bytes`` buffered payload bytes.

        Returns:
            The bytes (``b""`` when none is buffered: receive more first).

        Raises:
            ValueError: no stream is open, or ``max_bytes`` is negative.
        """
        cdef Py_ssize_t n
        if self._broken is not None or self._detached:
            self._refuse()
        n = min(_limits.check_count("max_bytes", max_bytes), _PY_SSIZE_T_MAX)
        if not self._stream_left:
            raise _limits.no_stream_error("stream_read()")
        n = <Py_ssize_t>min(<int64_t>n, self._stream_left, <int64_t>(self._end - self._start))
        out = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(self._buf) + self._start, n)
        self._start += n
        self._stream_left -= n
        return out

    def stream_advance(self, nbytes):
        """Count ``nbytes`` payload bytes the caller took straight from the source.

        Raises:
            ValueError: no stream is open, payload bytes are still buffered
                (read them first), or ``nbytes`` is more than is still to come.
        """
        cdef int64_t buffered, to_come
        if self._broken is not None or self._detached:
            self._refuse()
        n = _limits.check_count("nbytes", nbytes)
        if not self._stream_left:
            raise _limits.no_stream_error("stream_advance()")
        buffered = min(<int64_t>(self._end - self._start), self._stream_left)
        to_come = self._stream_left - buffered
        if n > to_come or (n and buffered):
            raise _limits.stream_advance_error(n, buffered, to_come)
        self._void_view()
        self._stream_left -= <int64_t>n

    def stream_discard(self):
        """Drop the rest of the payload, buffered and still to come (no-op when
        no stream is open).

        Raises:
            ValueError: the decoder was detached.
        """
        cdef int64_t buffered
        if self._broken is not None or self._detached:
            self._refuse()
        if not self._stream_left:
            return
        self._void_view()
        buffered = min(<int64_t>(self._end - self._start), self._stream_left)
        self._start += <Py_ssize_t>buffered
        self._discard = <uint64_t>(self._stream_left - buffered)
        self._stream_left = 0
        if self._discard:
            self._log_lost = True
