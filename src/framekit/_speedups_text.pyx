# cython: language_level=3
"""Cython twin of :mod:`framekit.codecs.lines`, ``delimited``, ``netstring`` and ``fixed_length``.

Design notes
------------
The pure-Python modules are the specification, and :mod:`framekit.codecs._splitter`
their shared base; this module is the same algorithms in C types, name for
name: ``Splitter`` and its ``_decode``, ``_reserve``, ``_append``,
``_append_held``, ``_begin``, ``_retain``, ``_run_held``, ``_run_bytes``,
``_finish``; each codec and decoder with the same methods and state fields.
Read the references for *what* happens; the notes here are only about *how*
it is made fast.

* Each ``_decode`` runs over a ``const unsigned char*``: the caller's
  ``bytes`` (when nothing is held) or the decoder's own ``bytearray``, which is
  never resized while a pointer into it is in use.  Lines are found with
  ``memchr``; a delimiter with ``memchr`` of its first byte and ``memcmp`` of
  the rest; a netstring's length is parsed in a ``uint64_t`` (it has at most
  19 digits there, fewer than ``max_frame_size``'s plus one).
* Each frame is made with one ``PyBytes_FromStringAndSize`` (one copy) and
  appended to the result list; where it ends goes to a C array (``_ends``),
  grown by doubling, for ``detach``: 8 bytes per frame of the most recent call
  (a fraction of what the frames themselves cost the caller), and an array
  grown past 8192 entries is freed when the next call begins.
* ``_decode`` hands a framing error back in ``_err`` rather than raising it,
  so that the caller can first record where decoding stopped.  Errors are
  built by the shared factories in :mod:`framekit.codecs._limits`, on the
  failing path only, so both backends say exactly the same thing.
* New buffers are zero-filled: ``buffer_updated`` with a count larger than
  what was really written can only expose earlier bytes of the stream, never
  uninitialised memory.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcmp, memcpy, memmove

import operator

from .codecs import _limits
from .codecs._limits import DEFAULT_MAX_FRAME_SIZE
from .errors import CorruptedFrame

__all__ = [
    "Lines",
    "LinesDecoder",
    "Delimited",
    "DelimitedDecoder",
    "Netstring",
    "NetstringDecoder",
    "FixedLength",
    "FixedLengthDecoder",
]

cdef Py_ssize_t _READ_SIZE = _limits.DEFAULT_READ_SIZE
cdef Py_ssize_t _SPARE_MAX = 4 * _limits.DEFAULT_READ_SIZE
cdef Py_ssize_t _MAX_DIGITS = 20
# Frame ends recorded for detach(): an array larger than this is freed at the next call.
cdef Py_ssize_t _ENDS_KEPT = 8192
cdef unsigned char _LF = 10
cdef unsigned char _CR = 13
cdef unsigned char _COLON = 58
cdef unsigned char _COMMA = 44
cdef unsigned char _ZERO = 48


cdef inline Py_ssize_t _rounded(Py_ssize_t size) noexcept:
    return (size + 4095) & ~(<Py_ssize_t>4095)


cdef inline Py_ssize_t _find(const unsigned char* s, Py_ssize_t pos, Py_ssize_t end,
                             const unsigned char* d, Py_ssize_t n) noexcept nogil:
    """Offset of the first ``d[:n]`` in ``s[pos:end]``, or -1."""
    cdef const unsigned char* p
    cdef Py_ssize_t last = end - n
    while pos <= last:
        p = <const unsigned char*>memchr(s + pos, d[0], <size_t>(last - pos + 1))
        if p == NULL:
            return -1
        pos = p - s
        if n == 1 or memcmp(p + 1, d + 1, <size_t>(n - 1)) == 0:
            return pos
        pos += 1
    return -1


cdef inline int _record(Splitter self, Py_ssize_t index, Py_ssize_t stop) except -1:
    """Note where the call's frame number ``index`` ends in its stream."""
    cdef Py_ssize_t cap
    cdef Py_ssize_t* grown
    if index >= self._ends_cap:
        cap = max(64, 2 * self._ends_cap)
        grown = <Py_ssize_t*>PyMem_Realloc(self._ends, cap * sizeof(Py_ssize_t))
        if grown == NULL:
            raise MemoryError()
        self._ends = grown
        self._ends_cap = cap
    self._ends[index] = stop
    return 0


cdef inline const unsigned char* _chars(object src):
    if type(src) is bytes:
        return <const unsigned char*>PyBytes_AS_STRING(src)
    return <const unsigned char*>PyByteArray_AS_STRING(src)


cdef class Splitter:
    """Base of the line, delimiter, netstring and fixed-length decoders (see
    :class:`framekit.codecs._splitter.Splitter`)."""

    def __cinit__(self):
        self._buf = bytearray()
        self._spare = None
        self._start = self._end = self._hidden = self._offered = 0
        self._broken = None
        self._detached = False
        self._src = b""
        self._src_base = self._src_end = self._base = 0
        self._more = b""
        self._backlog = False
        self._ends = NULL
        self._ends_cap = 0
        self._first = self._nframes = 0
        self._last_drop = -1
        self._lost = self._dropped = self._was_broken = False
        self._err = None

    def __dealloc__(self):
        PyMem_Free(self._ends)

    cdef Py_ssize_t _decode(self, const unsigned char* src, Py_ssize_t pos, Py_ssize_t end,
                            list frames, Py_ssize_t limit) except -1:
        raise NotImplementedError

    @property
    def pending(self):
        """Bytes held that belong to no complete frame yet."""
        if self._detached:
            return 0
        return self._end - self._start - self._hidden

    # -- buffer management ----------------------------------------------------

    cdef int _reserve(self, Py_ssize_t room) except -1:
        cdef bytearray buf = self._buf
        cdef bytearray target
        cdef Py_ssize_t size = len(buf)
        cdef Py_ssize_t held = self._end - self._start
        cdef char* base
        if size - self._end >= room:
            return 0
        base = PyByteArray_AS_STRING(buf)
        if self._src is not buf and self._start >= held and size - held >= room:
            memmove(base, base + self._start, held)
        else:
            target = self._spare
            if (target is None or target is self._src
                    or len(target) - held < max(room, held)):
                target = bytearray(_rounded(held + max(room, held)))
            memcpy(PyByteArray_AS_STRING(target), base + self._start, held)
            self._spare = buf if size <= _SPARE_MAX else None
            self._buf = target
        self._start = 0
        self._end = held
        return 0

    cdef int _append(self, const unsigned char* data, Py_ssize_t n) except -1:
        if n > 0:
            self._reserve(n)
            memcpy(PyByteArray_AS_STRING(self._buf) + self._end, data, n)
            self._end += n
        return 0

    cdef int _append_held(self, const unsigned char* data, Py_ssize_t n) except -1:
        cdef Py_ssize_t start = self._start
        self._append(data, n)
        self._base += self._start - start
        return 0

    # -- a decode call --------------------------------------------------------

    cdef Py_ssize_t _begin(self, Py_ssize_t max_frames) except -2:
        if self._detached:
            raise _limits.detached_error()
        if max_frames < -1:
            _limits.check_max_frames(max_frames)
        self._offered = 0
        self._was_broken = self._broken is not None
        self._lost = self._dropped
        self._nframes = 0
        self._first = 0
        self._last_drop = -1
        if self._ends_cap > _ENDS_KEPT:  # a huge call's records are not kept for the next
            PyMem_Free(self._ends)
            self._ends = NULL
            self._ends_cap = 0
        if self._broken is not None:
            self._retain(b"", 0, 0, b"")
            raise _limits.broken_error(self._broken)
        return max_frames

    cdef int _retain(self, object src, Py_ssize_t start, Py_ssize_t end, bytes more) except -1:
        self._src = src
        self._src_base = self._base = start
        self._src_end = end
        self._more = more
        return 0

    cdef object _run_held(self, list frames, Py_ssize_t limit, Py_ssize_t end):
        cdef object err
        if limit == 0:
            return None
        self._start = self._decode(
            <const unsigned char*>PyByteArray_AS_STRING(self._buf), self._start, end,
            frames, limit)
        err, self._err = self._err, None
        return err

    cdef object _run_bytes(self, bytes data, list frames, Py_ssize_t limit):
        cdef object err
        cdef const unsigned char* src = <const unsigned char*>PyBytes_AS_STRING(data)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        cdef Py_ssize_t pos = self._decode(src, 0, n, frames, limit)
        err, self._err = self._err, None
        if pos < n:
            self._append(src + pos, n - pos)
        return err

    cdef list _finish(self, list frames, object err, Py_ssize_t limit):
        cdef Py_ssize_t n = PyList_GET_SIZE(frames)
        self._nframes = n
        if self._broken is not None:
            self._start = self._end
        if n:
            self._dropped = self._last_drop > self._ends[n - 1]
        else:
            self._dropped = self._lost or self._last_drop >= 0
        self._backlog = self._end > self._start and (err is not None or n == limit)
        if err is not None:
            err.frames = frames
            raise err
        return frames

    cdef list _feed(self, object data, Py_ssize_t max_frames):
        cdef Py_ssize_t limit
        cdef list frames = []
        cdef Py_buffer view
        cdef object err
        cdef bytes chunk
        if type(data) is not bytes:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)  # a bad argument fails first
            try:
                limit = self._begin(max_frames)
                self._append(<const unsigned char*>view.buf, view.len)
            finally:
                PyBuffer_Release(&view)
            self._retain(self._buf, self._start, self._end, b"")
            return self._finish(frames, self._run_held(frames, limit, self._end), limit)
        limit = self._begin(max_frames)
        if limit == 0:
            self._append(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
            self._retain(self._buf, self._start, self._end, b"")
            return self._finish(frames, None, limit)
        chunk = <bytes>data
        if self._end == self._start:
            self._retain(chunk, 0, PyBytes_GET_SIZE(chunk), b"")
            return self._finish(frames, self._run_bytes(chunk, frames, limit), limit)
        self._retain(self._buf, self._start, self._end, chunk)
        if self._backlog:
            err = self._run_held(frames, limit, self._end)
            if (err is None and self._start == self._end
                    and PyList_GET_SIZE(frames) != limit):
                self._base = self._src_base - self._src_end
                return self._finish(frames, self._run_bytes(chunk, frames, limit), limit)
            if err is not None or PyList_GET_SIZE(frames) == limit:
                self._append(<const unsigned char*>PyBytes_AS_STRING(chunk),
                             PyBytes_GET_SIZE(chunk))
                return self._finish(frames, err, limit)
        self._append_held(<const unsigned char*>PyBytes_AS_STRING(chunk),
                          PyBytes_GET_SIZE(chunk))
        return self._finish(frames, self._run_held(frames, limit, self._end), limit)

    # -- public API -----------------------------------------------------------

    def get_buffer(self, Py_ssize_t sizehint=-1):
        """Return writable space to receive into (``recv_into``, ``BufferedProtocol``)."""
        if self._detached:
            raise _limits.detached_error()
        if self._broken is not None:
            raise _limits.broken_error(self._broken)
        self._reserve(sizehint if sizehint > 0 else _READ_SIZE)
        self._offered = len(self._buf) - self._end
        return memoryview(self._buf)[self._end:]

    def buffer_updated(self, nbytes, Py_ssize_t max_frames=-1):
        """Decode the ``nbytes`` just written into the last :meth:`get_buffer` view."""
        cdef Py_ssize_t limit, n
        cdef list frames = []
        cdef object err
        if self._detached:
            raise _limits.detached_error()
        nbytes = operator.index(nbytes)
        if self._broken is None and not 0 <= nbytes <= self._offered:
            raise _limits.offered_error(nbytes, self._offered)
        limit = self._begin(max_frames)
        n = nbytes
        if self._backlog and limit != 0:
            self._retain(self._buf, self._start, self._end + n, b"")
            err = self._run_held(frames, limit, self._end)
            self._end += n
            if err is not None or PyList_GET_SIZE(frames) == limit:
                return self._finish(frames, err, limit)
        else:
            self._end += n
            self._retain(self._buf, self._start, self._end, b"")
        return self._finish(frames, self._run_held(frames, limit, self._end), limit)

    def detach(self, unused=0):
        """Stop for good; return the rest of the stream, as it was received."""
        cdef Py_ssize_t n, k, point, size
        if self._detached:
            raise _limits.detached_error()
        unused = operator.index(unused)
        n = self._nframes
        if not 0 <= unused <= n:
            raise _limits.detach_unused_error(unused, n)
        k = n - unused
        if k:
            point = self._ends[k - 1]
        elif n:
            point = self._first
        elif self._was_broken or self._lost:
            raise _limits.detach_dropped_error(self._was_broken)
        else:
            point = 0
        size = self._src_end - self._src_base
        if point < size:
            rest = PyBytes_FromStringAndSize(
                <const char*>_chars(self._src) + self._src_base + point, size - point
            ) + self._more
        else:
            rest = self._more[point - size:]
        self._detached = True
        self._buf = bytearray()
        self._spare = None
        self._src = self._more = b""
        self._start = self._end = self._hidden = 0
        return rest


# -- Lines ------------------------------------------------------------------------


@cython.final
cdef class Lines:
    """Lines ending in ``\\n`` or ``\\r\\n`` (Netty's ``LineBasedFrameDecoder``).

    The Cython twin of :class:`framekit.codecs.lines.Lines`; see it for the
    arguments and the semantics.
    """

    def __init__(self, *, max_line_length=DEFAULT_MAX_FRAME_SIZE, keep_delimiter=False,
                 fail_fast=True, newline=b"\n"):
        self._max = _limits.check_max("max_line_length", max_line_length)
        self._keep = _limits.check_bool("keep_delimiter", keep_delimiter)
        self._fail_fast = _limits.check_bool("fail_fast", fail_fast)
        self._newline = _limits.check_newline(newline)

    @property
    def max_line_length(self):
        return self._max

    @property
    def max_frame_size(self):
        """The same as ``max_line_length`` (what every codec calls its limit)."""
        return self._max

    @property
    def keep_delimiter(self):
        return self._keep

    @property
    def fail_fast(self):
        return self._fail_fast

    @property
    def newline(self):
        return self._newline

    def __repr__(self):
        return (
            f"Lines(max_line_length={self._max}, keep_delimiter={self._keep}, "
            f"fail_fast={self._fail_fast}, newline={self._newline!r})"
        )

    def _check(self, payload):
        data = payload if isinstance(payload, (bytes, bytearray)) else bytes(payload)
        if len(data) > self._max:
            raise _limits.payload_too_large_error(len(data), self._max, "max_line_length")
        if b"\n" in data:
            raise _limits.contains_newline_error(self)
        if data.endswith(b"\r") and self._newline == b"\n":
            raise _limits.ends_with_cr_error(self)
        return data

    def encode(self, payload, *, prefix=b""):
        """Return ``payload`` followed by ``newline``."""
        if prefix:
            raise _limits.no_prefix_error(self)
        return b"".join((self._check(payload), self._newline))

    def encode_many(self, payloads, *, prefix=b""):
        """Return the lines of all ``payloads`` in one buffer, for one ``sendall``."""
        if prefix:
            raise _limits.no_prefix_error(self)
        check = self._check
        parts = [check(p) for p in payloads]
        if not parts:
            return b""
        parts.append(b"")
        return self._newline.join(parts)

    def encode_parts(self, payload, *, prefix=b""):
        """Return ``(payload, newline)`` for a vectored send."""
        if prefix:
            raise _limits.no_prefix_error(self)
        self._check(payload)
        return payload, self._newline

    def decoder(self):
        """Return a new, independent decoder for one stream."""
        return LinesDecoder(self)


@cython.final
cdef class LinesDecoder(Splitter):
    """Incremental decoder for one stream; made by :meth:`Lines.decoder`."""

    def __init__(self, Lines codec not None):
        self._max = codec._max
        self._keep = codec._keep
        self._fail_fast = codec._fail_fast
        self._scan = 0
        self._discarding = False
        self._discarded = 0
        self._discarded_cr = False

    def feed(self, data, Py_ssize_t max_frames=-1):
        """Add received bytes; return every line they complete, in order."""
        return self._feed(data, max_frames)

    def eof(self):
        """Declare the end of the stream; raise if a line was cut off."""
        cdef Py_ssize_t length, pending
        if self._detached:
            raise _limits.detached_error()
        if self._discarding and not self._fail_fast:
            self._discarding = False
            length = self._discarded
            self._discarded = 0
            raise _limits.unterminated_line_error(length, self._max, [])
        pending = self._end - self._start - self._hidden
        if pending:
            raise _limits.line_incomplete_error(pending, ())

    cdef Py_ssize_t _decode(self, const unsigned char* src, Py_ssize_t pos, Py_ssize_t end,
                            list frames, Py_ssize_t limit) except -1:
        cdef const unsigned char* p
        cdef Py_ssize_t i, stop, length, held
        cdef Py_ssize_t maximum = self._max
        cdef bint keep = self._keep
        cdef Py_ssize_t base = self._base
        cdef Py_ssize_t n = PyList_GET_SIZE(frames)
        while True:
            if n == limit:
                return pos
            if self._discarding:
                p = <const unsigned char*>memchr(src + pos, _LF, <size_t>(end - pos))
                if p == NULL:
                    if pos < end:
                        self._discarded += end - pos
                        self._discarded_cr = src[end - 1] == _CR
                        self._last_drop = end - base
                    return end
                i = p - src
                length = self._discarded + i - pos
                if (src[i - 1] == _CR) if i > pos else self._discarded_cr:
                    length -= 1
                self._discarding = False
                self._discarded = 0
                pos = i + 1
                self._last_drop = pos - base
                if not self._fail_fast:
                    self._err = _limits.line_too_long_error(length, maximum, [])
                    return pos
                continue
            p = <const unsigned char*>memchr(src + pos + self._scan, _LF,
                                             <size_t>(end - pos - self._scan))
            if p == NULL:
                held = end - pos
                length = held - 1 if held and src[end - 1] == _CR else held
                if length <= maximum:
                    self._scan = held
                    return pos
                self._scan = 0
                self._discarding = True
                self._discarded = held
                self._discarded_cr = length < held
                self._last_drop = end - base
                if self._fail_fast:
                    self._err = _limits.unterminated_line_error(length, maximum, [])
                return end
            i = p - src
            self._scan = 0
            stop = i - 1 if i > pos and src[i - 1] == _CR else i
            if stop - pos > maximum:
                self._last_drop = i + 1 - base
                self._err = _limits.line_too_long_error(stop - pos, maximum, [])
                return i + 1
            if n == 0:
                self._first = pos - base
            if keep:
                stop = i + 1
            frames.append(PyBytes_FromStringAndSize(<const char*>src + pos, stop - pos))
            pos = i + 1
            _record(self, n, pos - base)
            n += 1


# -- Delimited --------------------------------------------------------------------


@cython.final
cdef class Delimited:
    """Frames that end with a delimiter (Netty's ``DelimiterBasedFrameDecoder``).

    The Cython twin of :class:`framekit.codecs.delimited.Delimited`; see it for
    the arguments and the semantics.
    """

    def __init__(self, delimiter=b"\n", *more, max_frame_size=DEFAULT_MAX_FRAME_SIZE,
                 keep_delimiter=False):
        self._delimiters = _limits.check_delimiters((delimiter, *more))
        self._max = _limits.check_max("max_frame_size", max_frame_size)
        self._keep = _limits.check_bool("keep_delimiter", keep_delimiter)

    @property
    def delimiter(self):
        """The first delimiter: the one :meth:`encode` appends."""
        return self._delimiters[0]

    @property
    def delimiters(self):
        """Every delimiter, in the order given."""
        return self._delimiters

    @property
    def max_frame_size(self):
        return self._max

    @property
    def keep_delimiter(self):
        return self._keep

    def __repr__(self):
        delimiters = ", ".join(map(repr, self._delimiters))
        return f"Delimited({delimiters}, max_frame_size={self._max}, keep_delimiter={self._keep})"

    def _check(self, payload):
        data = payload if isinstance(payload, (bytes, bytearray)) else bytes(payload)
        if len(data) > self._max:
            raise _limits.payload_too_large_error(len(data), self._max, "max_frame_size")
        first = self._delimiters[0]
        for delim in self._delimiters:
            if delim in data:
                raise _limits.contains_delimiter_error(delim, self)
            n = len(delim) - 1
            if n:
                joined = data[-n:] + first
                for at in range(len(joined) - len(first)):
                    rest = joined[at:]
                    if rest.startswith(delim) or delim.startswith(rest):
                        raise _limits.contains_delimiter_error(delim, self)
        return data

    def encode(self, payload, *, prefix=b""):
        """Return ``payload`` followed by the first delimiter."""
        if prefix:
            raise _limits.no_prefix_error(self)
        return b"".join((self._check(payload), self._delimiters[0]))

    def encode_many(self, payloads, *, prefix=b""):
        """Return the frames of all ``payloads`` in one buffer, for one ``sendall``."""
        if prefix:
            raise _limits.no_prefix_error(self)
        check = self._check
        parts = [check(p) for p in payloads]
        if not parts:
            return b""
        parts.append(b"")
        return self._delimiters[0].join(parts)

    def encode_parts(self, payload, *, prefix=b""):
        """Return ``(payload, delimiter)`` for a vectored send."""
        if prefix:
            raise _limits.no_prefix_error(self)
        self._check(payload)
        return payload, self._delimiters[0]

    def decoder(self):
        """Return a new, independent decoder for one stream."""
        return DelimitedDecoder(self)


@cython.final
cdef class DelimitedDecoder(Splitter):
    """Incremental decoder for one stream; made by :meth:`Delimited.decoder`."""

    def __cinit__(self):
        self._dptr = NULL
        self._dlen = NULL
        self._found = NULL

    def __init__(self, Delimited codec not None):
        cdef Py_ssize_t k
        cdef bytes delim
        self._delims = codec._delimiters
        self._count = len(self._delims)
        self._dptr = <const unsigned char**>PyMem_Malloc(self._count * sizeof(char*))
        self._dlen = <Py_ssize_t*>PyMem_Malloc(self._count * sizeof(Py_ssize_t))
        self._found = <Py_ssize_t*>PyMem_Malloc(self._count * sizeof(Py_ssize_t))
        if self._dptr == NULL or self._dlen == NULL or self._found == NULL:
            raise MemoryError()
        self._longest = 0
        for k in range(self._count):
            delim = self._delims[k]
            self._dptr[k] = <const unsigned char*>PyBytes_AS_STRING(delim)
            self._dlen[k] = PyBytes_GET_SIZE(delim)
            self._longest = max(self._longest, self._dlen[k])
        self._max = codec._max
        self._keep = codec._keep
        self._scan = 0
        self._discarding = False

    def __dealloc__(self):
        PyMem_Free(<void*>self._dptr)
        PyMem_Free(self._dlen)
        PyMem_Free(self._found)

    def feed(self, data, Py_ssize_t max_frames=-1):
        """Add received bytes; return every frame they complete, in order."""
        return self._feed(data, max_frames)

    def eof(self):
        """Declare the end of the stream; raise if a frame was cut off."""
        cdef Py_ssize_t pending
        if self._detached:
            raise _limits.detached_error()
        pending = self._end - self._start - self._hidden
        if pending:
            raise _limits.line_incomplete_error(pending, self._delims)

    cdef Py_ssize_t _decode(self, const unsigned char* src, Py_ssize_t pos, Py_ssize_t end,
                            list frames, Py_ssize_t limit) except -1:
        cdef Py_ssize_t k, at, best, which, tail, size, stop, start
        cdef Py_ssize_t count = self._count
        cdef Py_ssize_t maximum = self._max
        cdef bint keep = self._keep
        cdef Py_ssize_t base = self._base
        cdef Py_ssize_t n = PyList_GET_SIZE(frames)
        cdef Py_ssize_t* found = self._found
        for k in range(count):
            found[k] = -2
        start = pos + self._scan
        while True:
            if n == limit:
                return pos
            best = -1
            which = 0
            for k in range(count):
                at = found[k]
                if at == -2 or 0 <= at < pos:
                    at = found[k] = _find(src, max(start, pos), end, self._dptr[k], self._dlen[k])
                if at >= 0 and (best < 0 or at < best):
                    best = at
                    which = k
            if best < 0 or not self._settled(src, pos, end, best, which):
                tail = self._delimiter_start(src, pos, end)
                size = end - pos - tail
                if self._discarding or size > maximum:
                    self._scan = 0
                    self._hidden = tail
                    if size:
                        self._last_drop = end - tail - base
                    if not self._discarding:
                        self._discarding = True
                        self._err = _limits.unterminated_frame_error(size, maximum, [])
                    return end - tail
                self._scan = max(0, min(end - self._longest + 1, best if best >= 0 else end) - pos)
                return pos
            self._scan = 0
            self._hidden = 0
            stop = best + self._dlen[which]
            if self._discarding:
                self._discarding = False
                self._last_drop = stop - base
                pos = start = stop
                continue
            if best - pos > maximum:
                self._last_drop = stop - base
                self._err = _limits.too_large_error(best - pos, maximum, [])
                return stop
            if n == 0:
                self._first = pos - base
            frames.append(PyBytes_FromStringAndSize(
                <const char*>src + pos, (stop if keep else best) - pos))
            pos = start = stop
            _record(self, n, pos - base)
            n += 1

    cdef bint _settled(self, const unsigned char* src, Py_ssize_t pos, Py_ssize_t end,
                       Py_ssize_t best, Py_ssize_t which) noexcept:
        cdef Py_ssize_t k, at, last
        if end - best >= self._longest:
            return True
        for k in range(self._count):
            if k == which:
                continue
            last = best if k < which else best - 1
            at = max(pos, end - self._dlen[k] + 1)
            while at <= last:
                if memcmp(src + at, self._dptr[k], <size_t>(end - at)) == 0:
                    return False
                at += 1
        return True

    cdef Py_ssize_t _delimiter_start(self, const unsigned char* src, Py_ssize_t pos,
                                     Py_ssize_t end) noexcept:
        cdef Py_ssize_t n, k
        n = min(self._longest - 1, end - pos)
        while n > 0:
            for k in range(self._count):
                if self._dlen[k] > n and memcmp(src + end - n, self._dptr[k], <size_t>n) == 0:
                    return n
            n -= 1
        return 0


# -- Netstring --------------------------------------------------------------------


cdef inline Py_ssize_t _nbytes(object payload) except -1:
    if type(payload) is bytes:
        return PyBytes_GET_SIZE(payload)
    return memoryview(payload).nbytes


@cython.final
cdef class Netstring:
    """djb's netstring framing: ``b"5:hello,"``.

    The Cython twin of :class:`framekit.codecs.netstring.Netstring`; see it for
    the arguments and the semantics.
    """

    def __init__(self, *, max_frame_size=DEFAULT_MAX_FRAME_SIZE):
        self._max = _limits.check_max("max_frame_size", max_frame_size)

    @property
    def max_frame_size(self):
        return self._max

    def __repr__(self):
        return f"Netstring(max_frame_size={self._max})"

    def _size(self, payload):
        cdef Py_ssize_t size = _nbytes(payload)
        if size > self._max:
            raise _limits.payload_too_large_error(size, self._max, "max_frame_size")
        return size

    def header(self, payload_size):
        """Return the length prefix (``b"<size>:"``) of a payload of that size."""
        if payload_size > self._max:
            raise _limits.payload_too_large_error(payload_size, self._max, "max_frame_size")
        return b"%d:" % payload_size

    def encode(self, payload, *, prefix=b""):
        """Return ``b"<len>:<payload>,"``."""
        if prefix:
            raise _limits.no_prefix_error(self)
        return b"".join((b"%d:" % self._size(payload), payload, b","))

    def encode_many(self, payloads, *, prefix=b""):
        """Return the netstrings of all ``payloads`` in one buffer, for one ``sendall``."""
        if prefix:
            raise _limits.no_prefix_error(self)
        parts = []
        for payload in payloads:
            parts.append(b"%d:" % self._size(payload))
            parts.append(payload)
            parts.append(b",")
        return b"".join(parts)

    def encode_parts(self, payload, *, prefix=b""):
        """Return ``(prefix, payload, b",")`` for a vectored send."""
        if prefix:
            raise _limits.no_prefix_error(self)
        return b"%d:" % self._size(payload), payload, b","

    def decoder(self):
        """Return a new, independent decoder for one stream."""
        return NetstringDecoder(self)


@cython.final
cdef class NetstringDecoder(Splitter):
    """Incremental decoder for one stream; made by :meth:`Netstring.decoder`."""

    def __init__(self, Netstring codec not None):
        self._max = codec._max
        self._digits = len(str(codec._max))
        self._expect = -1
        self._skip = 0
        self._comma = False
        self._skip_prefix = False
        self._prefix = b""

    def feed(self, data, Py_ssize_t max_frames=-1):
        """Add received bytes; return every netstring they complete, in order."""
        return self._feed(data, max_frames)

    def eof(self):
        """Declare the end of the stream; raise if a netstring was cut off."""
        cdef Py_ssize_t pending
        if self._detached:
            raise _limits.detached_error()
        pending = self._end - self._start - self._hidden
        if pending:
            raise _limits.incomplete_error(pending, self._expect if self._expect > pending else -1)

    cdef Py_ssize_t _decode(self, const unsigned char* src, Py_ssize_t pos, Py_ssize_t end,
                            list frames, Py_ssize_t limit) except -1:
        cdef Py_ssize_t maximum = self._max
        cdef Py_ssize_t window = self._digits + 1
        cdef Py_ssize_t base = self._base
        cdef Py_ssize_t n = PyList_GET_SIZE(frames)
        cdef Py_ssize_t stop, colon, head_end, k, data
        cdef uint64_t take, size
        cdef const unsigned char* p
        cdef bint digits
        self._expect = -1
        while True:
            if n == limit:
                return pos
            if self._skip:
                take = <uint64_t>(end - pos)
                if take > self._skip:
                    take = self._skip
                if take:
                    pos += <Py_ssize_t>take
                    self._skip -= take
                    self._last_drop = pos - base
                if self._skip:
                    return pos
            if self._comma:
                if pos == end:
                    return pos
                if src[pos] != _COMMA:
                    self._err = self._corrupt(_limits.netstring_no_comma_after_drop(
                        PyBytes_FromStringAndSize(<const char*>src + pos, 1)))
                    return end
                pos += 1
                self._comma = False
                self._last_drop = pos - base
            if self._skip_prefix:
                pos = self._read_long_prefix(src, pos, end)
                if self._err is not None or self._skip_prefix:
                    return pos
                continue
            if pos == end:
                return pos
            stop = min(end, pos + window)
            p = <const unsigned char*>memchr(src + pos, _COLON, <size_t>(stop - pos))
            colon = -1 if p == NULL else p - src
            head_end = stop if p == NULL else colon
            digits = True
            size = 0
            for k in range(pos, head_end):
                if not 48 <= src[k] <= 57:
                    digits = False
                    break
                size = size * 10 + (src[k] - 48)
            if not digits:
                head = PyBytes_FromStringAndSize(<const char*>src + pos, head_end - pos)
                self._err = self._corrupt(_limits.netstring_not_digits(head[:_MAX_DIGITS + 1]))
                return end
            if head_end - pos > 1 and src[pos] == _ZERO:
                head = PyBytes_FromStringAndSize(<const char*>src + pos, head_end - pos)
                self._err = self._corrupt(_limits.netstring_leading_zero(head))
                return end
            if colon < 0:
                if head_end - pos < window:
                    return pos
                head = PyBytes_FromStringAndSize(<const char*>src + pos, head_end - pos)
                self._skip_prefix = True
                self._prefix = head
                self._last_drop = stop - base
                self._err = _limits.netstring_long_prefix_error(self._digits, int(head), maximum)
                return stop
            if head_end == pos:
                self._err = self._corrupt(_limits.netstring_empty_length())
                return end
            data = colon + 1
            if size > <uint64_t>maximum:
                take = <uint64_t>(end - data)
                if take > size:
                    take = size
                self._skip = size - take
                self._comma = True
                self._last_drop = data + <Py_ssize_t>take - base
                self._err = _limits.too_large_error(size, maximum, [])
                return data + <Py_ssize_t>take
            stop = data + <Py_ssize_t>size
            if stop >= end:
                self._expect = stop + 1 - pos
                return pos
            if src[stop] != _COMMA:
                self._err = self._corrupt(_limits.netstring_no_comma(
                    size, PyBytes_FromStringAndSize(<const char*>src + stop, 1)))
                return end
            if n == 0:
                self._first = pos - base
            frames.append(PyBytes_FromStringAndSize(<const char*>src + data, <Py_ssize_t>size))
            pos = stop + 1
            _record(self, n, pos - base)
            n += 1

    cdef Py_ssize_t _read_long_prefix(self, const unsigned char* src, Py_ssize_t pos,
                                      Py_ssize_t end) except -1:
        cdef Py_ssize_t stop, colon
        cdef const unsigned char* p
        cdef object value
        prior = self._prefix
        stop = min(end, pos + _MAX_DIGITS + 1 - len(prior))
        p = <const unsigned char*>memchr(src + pos, _COLON, <size_t>(stop - pos))
        colon = -1 if p == NULL else p - src
        head = prior + PyBytes_FromStringAndSize(
            <const char*>src + pos, (stop if colon < 0 else colon) - pos)
        if not head.isdigit():
            self._err = self._corrupt(_limits.netstring_not_digits(head[:_MAX_DIGITS + 1]))
            return end
        if colon < 0:
            if len(head) > _MAX_DIGITS:
                self._err = self._corrupt(_limits.netstring_too_many_digits(_MAX_DIGITS))
                return end
            self._prefix = head
            if stop > pos:
                self._last_drop = stop - self._base
            return stop
        self._skip_prefix = False
        self._prefix = b""
        value = int(head)
        # Beyond 2**64 - 1 bytes nothing will ever be skipped to the end anyway.
        self._skip = value if value < (1 << 64) else (1 << 64) - 1
        self._comma = True
        self._last_drop = colon + 1 - self._base
        return colon + 1

    cdef object _corrupt(self, str reason):
        self._broken = reason
        self._skip = 0
        self._comma = self._skip_prefix = False
        self._prefix = b""
        self._expect = -1
        return CorruptedFrame(reason)


# -- FixedLength ------------------------------------------------------------------


@cython.final
cdef class FixedLength:
    """Frames of exactly ``size`` bytes (Netty's ``FixedLengthFrameDecoder``).

    The Cython twin of :class:`framekit.codecs.fixed_length.FixedLength`; see
    it for the arguments and the semantics.
    """

    def __init__(self, size):
        self._size = _limits.check_max("size", size)

    @property
    def size(self):
        return self._size

    @property
    def max_frame_size(self):
        """The same as ``size``: every frame has that size."""
        return self._size

    def __repr__(self):
        return f"FixedLength({self._size})"

    def _check(self, payload):
        cdef Py_ssize_t n = _nbytes(payload)
        if n > self._size:
            raise _limits.payload_too_large_error(n, self._size, "size")
        if n < self._size:
            raise _limits.fixed_size_error(n, self._size)

    def encode(self, payload, *, prefix=b""):
        """Return ``payload`` (as ``bytes``): it is the frame."""
        if prefix:
            raise _limits.no_prefix_error(self)
        self._check(payload)
        return bytes(payload)

    def encode_many(self, payloads, *, prefix=b""):
        """Return all ``payloads`` in one buffer, for one ``sendall``."""
        if prefix:
            raise _limits.no_prefix_error(self)
        parts = list(payloads)
        for payload in parts:
            self._check(payload)
        return b"".join(parts)

    def encode_parts(self, payload, *, prefix=b""):
        """Return ``(payload,)``, for a vectored send."""
        if prefix:
            raise _limits.no_prefix_error(self)
        self._check(payload)
        return (payload,)

    def decoder(self):
        """Return a new, independent decoder for one stream."""
        return FixedLengthDecoder(self)


@cython.final
cdef class FixedLengthDecoder(Splitter):
    """Incremental decoder for one stream; made by :meth:`FixedLength.decoder`."""

    def __init__(self, FixedLength codec not None):
        self._size = codec._size

    def feed(self, data, Py_ssize_t max_frames=-1):
        """Add received bytes; return every frame they complete, in order."""
        return self._feed(data, max_frames)

    def eof(self):
        """Declare the end of the stream; raise if a frame was cut off."""
        cdef Py_ssize_t pending
        if self._detached:
            raise _limits.detached_error()
        pending = self._end - self._start - self._hidden
        if pending:
            raise _limits.incomplete_error(pending, self._size if pending < self._size else -1)

    cdef Py_ssize_t _decode(self, const unsigned char* src, Py_ssize_t pos, Py_ssize_t end,
                            list frames, Py_ssize_t limit) except -1:
        cdef Py_ssize_t size = self._size
        cdef Py_ssize_t base = self._base
        cdef Py_ssize_t n = PyList_GET_SIZE(frames)
        if n == 0 and end - pos >= size:
            self._first = pos - base
        while end - pos >= size and n != limit:
            frames.append(PyBytes_FromStringAndSize(<const char*>src + pos, size))
            pos += size
            _record(self, n, pos - base)
            n += 1
        return pos
