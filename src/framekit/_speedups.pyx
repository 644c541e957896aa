# cython: language_level=3
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
* ``buffer_updated`` accepts at most what the last ``get_buffer`` offered, once:
  counts that do not match a real write can neither expose uninitialised
  memory of a frame being assembled nor move an offset out of bounds.
* The buffer is a ``bytearray`` so that ``get_buffer`` can hand out an ordinary
  memoryview that keeps its memory alive; it is never resized in place (an
  exported view forbids that), only compacted with ``memmove`` or replaced.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_FillInfo, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy, memmove

import operator

from .codecs import _limits
from .codecs._limits import DEFAULT_MAX_FRAME_SIZE

__all__ = ["LengthPrefixed", "LengthPrefixedDecoder"]

cdef Py_ssize_t _READ_SIZE = _limits.DEFAULT_READ_SIZE
cdef int64_t _VARINT_MAX = _limits.VARINT_MAX_VALUE
# Sizes within +-2**62 leave room for any adjustment (an int32) in an int64.
cdef long long _SMALL = 1LL << 62
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


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
        self._exports = 0

    def __getbuffer__(self, Py_buffer* view, int flags):
        PyBuffer_FillInfo(view, self, PyBytes_AS_STRING(self._owner) + self._offset,
                          PyBytes_GET_SIZE(self._owner) - self._offset, 0, flags)
        self._exports += 1

    def __releasebuffer__(self, Py_buffer* view):
        self._exports -= 1


@cython.final
cdef class LengthPrefixed:
    """Length-prefixed framing with Netty's semantics.

    The Cython twin of :class:`framekit.codecs.length_prefixed.LengthPrefixed`; see it for
    the arguments and the semantics.
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

    cdef bytes _header(self, int64_t value, object prefix, Py_ssize_t extra):
        """Return a bytes object holding the header for field ``value``, with
        ``extra`` bytes after it left for the caller to fill (the object is not
        shared until returned)."""
        cdef Py_ssize_t field_size, plen
        cdef bytes out
        cdef unsigned char* p
        plen = _nbytes(prefix)
        if plen != self._offset:
            raise _limits.prefix_error(plen, self._offset)
        field_size = self._field_size(value)
        out = PyBytes_FromStringAndSize(NULL, plen + field_size + extra)
        p = <unsigned char*>PyBytes_AS_STRING(out)
        if plen:
            _copy_into(p, prefix)
        self._write_field(p + plen, value)
        return out

    def header(self, payload_size, *, prefix=b""):
        """Return the header (``prefix`` + length field) for a payload of that size."""
        cdef int overflow = 0
        cdef long long n
        if type(payload_size) is int:
            n = PyLong_AsLongLongAndOverflow(payload_size, &overflow)
            if not overflow and -_SMALL < n < _SMALL:
                return self._header(n - self._adj, prefix, 0)
        # Huge (or odd) sizes: Python arithmetic, as the reference does.
        value = operator.index(payload_size) - self._adj
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise _limits.encode_range_error(value, self._size, self._vmax)
        return self._header(value, prefix, 0)

    def encode(self, payload, *, prefix=b""):
        """Return one whole frame: ``prefix``, the length field, then ``payload``."""
        cdef Py_ssize_t n = _nbytes(payload)
        cdef bytes out = self._header(<int64_t>n - self._adj, prefix, n)
        _copy_into(<unsigned char*>PyBytes_AS_STRING(out) + PyBytes_GET_SIZE(out) - n, payload)
        return out

    def encode_many(self, payloads, *, prefix=b""):
        """Return the frames of all ``payloads`` in one buffer, for one ``sendall``."""
        cdef list items = list(payloads)
        cdef Py_ssize_t total = 0, n, plen, pos = 0
        cdef bytes out
        cdef unsigned char* p
        cdef object payload
        cdef int64_t value
        plen = _nbytes(prefix)
        if plen != self._offset:
            raise _limits.prefix_error(plen, self._offset)
        for payload in items:
            n = _nbytes(payload)
            total += plen + self._field_size(<int64_t>n - self._adj) + n
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
        """Return ``(header, payload)`` for a vectored send (``socket.sendmsg``)."""
        return self._header(<int64_t>_nbytes(payload) - self._adj, prefix, 0), payload

    # -- decoding -------------------------------------------------------------

    def decoder(self):
        """Return a new, independent decoder for one stream."""
        return LengthPrefixedDecoder(self)


@cython.final
cdef class LengthPrefixedDecoder:
    """Incremental decoder for one stream; made by :meth:`LengthPrefixed.decoder`."""

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
        self._start = 0
        self._end = 0
        self._need = -1
        self._discard = 0
        self._too_long = 0
        self._broken = None
        self._offered = 0
        self._frame = None
        self._frame_pos = 0
        self._frame_cut = 0
        self._last = 0
        self._rest_min = 1
        self._header_max = codec._offset + (codec._size or codec._vmax)
        self._direct_min = _limits.DIRECT_MIN
        self._direct_ratio = _limits.DIRECT_RATIO
        self._room_cap = _limits.ROOM_CAP
        self._span = None
        self._views = []

    @property
    def pending(self):
        """Bytes buffered that belong to no complete frame yet."""
        if self._frame is not None:
            return self._frame_cut + self._frame_pos
        return self._end - self._start

    # -- the decode loop ------------------------------------------------------

    cdef object _decode(self, const unsigned char* src, Py_ssize_t* ppos, Py_ssize_t end,
                        list frames):
        cdef Py_ssize_t pos = ppos[0]
        cdef Py_ssize_t avail, header_end, cut, i, n
        cdef uint64_t field, b, flen, take
        cdef bint overflow
        cdef object err
        cdef int size = self._size
        cdef Py_ssize_t offset = self._offset
        cdef int64_t adj = self._adj
        cdef int64_t maximum = self._max
        self._need = -1
        while True:
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
                    ppos[0] = pos
                    return err
            avail = end - pos
            if size:
                header_end = offset + size
                if avail < header_end:
                    break
                field = _read_field(src + pos + offset, size, self._big)
                if size == 8 and (field >> 63):
                    ppos[0] = pos
                    return self._break(_limits.negative_length_error(<int64_t>field, frames))
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
            # field < 2**63 from here on.
            if <int64_t>field < -adj:
                ppos[0] = pos
                return self._break(_limits.too_short_error(
                    <object>field + adj + header_end, header_end, frames))
            # Modular arithmetic gives the true length: it lies in [header_end, 2**64).
            flen = field + <uint64_t>(adj + header_end)
            cut = header_end if self._strip < 0 else self._strip
            if <int64_t>field > maximum - adj - header_end or <uint64_t>cut > flen:
                if <int64_t>field > maximum - adj - header_end:
                    err = _limits.too_large_error(flen, maximum, frames)
                else:
                    err = _limits.strip_error(flen, cut, frames)
                if <uint64_t>avail >= flen:
                    ppos[0] = pos + <Py_ssize_t>flen
                    return err
                self._discard = flen - <uint64_t>avail
                ppos[0] = end
                if <int64_t>field > maximum - adj - header_end and not self._fail_fast:
                    self._too_long = flen
                    return None
                return err
            if <uint64_t>avail < flen:
                self._need = <int64_t>flen
                n = <Py_ssize_t>flen - cut
                if (n >= self._direct_min and avail >= cut
                        and <Py_ssize_t>flen - avail >= self._rest_min):
                    if n <= self._direct_ratio * avail:
                        self._begin_frame(src + pos + cut, avail - cut, n, cut)
                        ppos[0] = end
                        return None
                break
            frames.append(PyBytes_FromStringAndSize(
                <const char*>src + pos + cut, <Py_ssize_t>flen - cut))
            pos += <Py_ssize_t>flen
        ppos[0] = pos
        return None

    cdef int _begin_frame(self, const unsigned char* head, Py_ssize_t n, Py_ssize_t payload,
                          Py_ssize_t cut) except -1:
        # The object is ours alone until the frame is complete, so it may be
        # written to; nothing hashes or shares it before then.
        self._frame = PyBytes_FromStringAndSize(NULL, payload)
        memcpy(PyBytes_AS_STRING(self._frame), head, n)
        self._frame_pos = n
        self._frame_cut = cut
        return 0

    cdef Py_ssize_t _fill_frame(self, const unsigned char* data, Py_ssize_t pos, Py_ssize_t end,
                                list frames) except -1:
        cdef Py_ssize_t take = min(PyBytes_GET_SIZE(self._frame) - self._frame_pos, end - pos)
        memcpy(PyBytes_AS_STRING(self._frame) + self._frame_pos, data + pos, take)
        self._frame_pos += take
        self._end_frame(frames)
        return pos + take

    cdef int _end_frame(self, list frames) except -1:
        cdef bytes frame = self._frame
        cdef Py_ssize_t size = PyBytes_GET_SIZE(frame)
        if self._frame_pos == size:
            if self._span is not None:
                self._release_views()
                if self._span._exports:
                    # A view of it outlived its update: hand over a copy.
                    frame = PyBytes_FromStringAndSize(PyBytes_AS_STRING(frame), size)
                self._span = None
            frames.append(frame)
            self._last = size
            self._frame = None
            self._need = -1
        return 0

    cdef int _release_views(self) except -1:
        """Release the views of the frame handed out since the last update; a
        view that is itself exported (a slice kept by the caller) stays."""
        cdef object view
        for view in self._views:
            try:
                view.release()
            except BufferError:
                pass
        self._views = []
        return 0

    cdef object _break(self, object err):
        self._broken = str(err)
        return err

    # -- buffer management ----------------------------------------------------

    cdef int _reserve(self, Py_ssize_t room) except -1:
        cdef Py_ssize_t size = len(self._buf)
        cdef Py_ssize_t pending = self._end - self._start
        cdef bytearray new
        cdef char* base
        if size - self._end >= room:
            return 0
        base = PyByteArray_AS_STRING(self._buf)
        if size - pending >= room and self._start >= pending:
            memmove(base, base + self._start, pending)
        else:
            new = PyByteArray_FromStringAndSize(NULL, max(2 * size, pending + room))
            memcpy(PyByteArray_AS_STRING(new), base + self._start, pending)
            self._buf = new
        self._start = 0
        self._end = pending
        return 0

    cdef int _append(self, const unsigned char* data, Py_ssize_t n) except -1:
        if n <= 0:
            return 0
        self._reserve(n)
        memcpy(PyByteArray_AS_STRING(self._buf) + self._end, data, n)
        self._end += n
        return 0

    cdef object _consume_buffer(self, list frames):
        cdef Py_ssize_t pos = self._start
        err = self._decode(<const unsigned char*>PyByteArray_AS_STRING(self._buf),
                           &pos, self._end, frames)
        if pos >= self._end:
            pos = self._end = 0
        self._start = pos
        return err

    cdef list _finish(self, list frames, object err):
        if err is None:
            return frames
        if self._broken is not None:
            self._start = self._end = 0
            self._frame = None
            self._span = None
            self._views = []
            self._need = -1
            self._discard = self._too_long = 0
        raise err

    cdef list _feed(self, const unsigned char* data, Py_ssize_t end):
        cdef Py_ssize_t pos = 0, pending, want, take, skip
        cdef list frames = []
        cdef object err
        self._offered = 0
        self._rest_min = 1
        if self._frame is not None:
            pos = self._fill_frame(data, pos, end, frames)
        while self._end > self._start and pos < end:
            pending = self._end - self._start
            if self._need >= 0:
                want = <Py_ssize_t>self._need - pending
            elif self._size:
                want = self._offset + self._size - pending
            else:
                want = max(self._offset + 1 - pending, 1)
            if want > 0:
                take = min(want, end - pos)
                self._append(data + pos, take)
                pos += take
            err = self._consume_buffer(frames)
            if self._frame is not None:
                pos = self._fill_frame(data, pos, end, frames)
            if err is not None:
                if self._broken is None and pos < end:
                    skip = <Py_ssize_t>min(self._discard, <uint64_t>(end - pos))
                    self._discard -= skip
                    self._append(data + pos + skip, end - pos - skip)
                return self._finish(frames, err)
        if pos < end or self._discard:
            err = self._decode(data, &pos, end, frames)
            if pos < end:
                self._append(data + pos, end - pos)
            if err is not None:
                return self._finish(frames, err)
        elif end == 0 and self._end > self._start:
            return self._finish(frames, self._consume_buffer(frames))
        return frames

    # -- public API -----------------------------------------------------------

    def feed(self, data):
        """Add received bytes; return every frame they complete, in order."""
        cdef Py_buffer view
        if self._broken is not None:
            raise _limits.broken_error(self._broken)
        if type(data) is bytes:
            return self._feed(<const unsigned char*>PyBytes_AS_STRING(data),
                              PyBytes_GET_SIZE(data))
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            return self._feed(<const unsigned char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def get_buffer(self, Py_ssize_t sizehint=-1):
        """Return writable space to receive into (``recv_into``)."""
        cdef Py_ssize_t room, pending
        if self._broken is not None:
            raise _limits.broken_error(self._broken)
        if self._frame is not None:
            if self._span is None:
                self._span = _WritableSpan(self._frame)
            self._span._offset = self._frame_pos
            view = memoryview(self._span)
            self._views.append(view)
            self._offered = PyBytes_GET_SIZE(self._frame) - self._frame_pos
            return view
        pending = self._end - self._start
        room = sizehint if sizehint > 0 else _READ_SIZE
        if pending == 0:
            self._start = self._end = 0
            room = max(room, self._header_max + min(self._last, self._room_cap))
        if self._need > 0:
            room = max(room, min(<Py_ssize_t>self._need - pending, pending))
        self._reserve(room)
        self._offered = len(self._buf) - self._end
        return memoryview(self._buf)[self._end:]

    def buffer_updated(self, Py_ssize_t nbytes):
        """Account for ``nbytes`` written into the last :meth:`get_buffer` view."""
        cdef list frames
        if self._broken is not None:
            raise _limits.broken_error(self._broken)
        if not 0 <= nbytes <= self._offered:
            raise ValueError(
                f"buffer_updated({nbytes}): only {self._offered} bytes were offered by get_buffer()"
            )
        self._offered = 0  # one view, one update
        frames = []
        if self._frame is not None:
            self._frame_pos += nbytes  # at most the frame's rest: that was the view
            self._end_frame(frames)
            if self._span is not None:
                self._release_views()
            return frames
        self._end += nbytes
        self._rest_min = self._direct_min
        self._finish(frames, self._consume_buffer(frames))
        if frames:
            self._last = len(frames[-1])
        return frames

    def eof(self):
        """Declare the end of the stream; raise if a frame was cut off."""
        cdef uint64_t too_long
        cdef Py_ssize_t pending
        if self._too_long:
            too_long = self._too_long
            self._too_long = self._discard = 0
            raise _limits.too_large_error(too_long, self._max, [])
        pending = self.pending
        if pending:
            raise _limits.incomplete_error(pending, self._need)
