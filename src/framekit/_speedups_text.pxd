# Declarations for the Cython twin of framekit.codecs.lines, delimited, netstring and
# fixed_length, and of their shared base, framekit.codecs._splitter (see _speedups_text.pyx).

from libc.stdint cimport uint64_t


cdef class Splitter:
    cdef bytearray _buf
    cdef bytearray _spare
    cdef Py_ssize_t _start        # held bytes: _buf[_start:_end]
    cdef Py_ssize_t _end
    cdef Py_ssize_t _hidden       # held bytes at _start that are no frame's
    cdef Py_ssize_t _offered      # size of the last get_buffer() view
    cdef object _broken           # None, or why the decoder is broken
    cdef bint _detached
    # The most recent decode call, for detach(): its stream is
    # _src[_src_base:_src_end] + _more.
    cdef object _src
    cdef Py_ssize_t _src_base
    cdef Py_ssize_t _src_end
    cdef bytes _more
    cdef Py_ssize_t _base         # subtracted from an offset being decoded: the stream's
    cdef bint _backlog            # held bytes were left by an error or by max_frames
    cdef Py_ssize_t* _ends        # where each frame of the call ends in its stream
    cdef Py_ssize_t _ends_cap
    cdef Py_ssize_t _first        # where its first frame starts
    cdef Py_ssize_t _nframes
    cdef Py_ssize_t _last_drop    # end of the last bytes it dropped, or -1
    cdef bint _lost
    cdef bint _dropped
    cdef bint _was_broken
    cdef object _err              # the error a _decode() call hands back

    cdef Py_ssize_t _decode(self, const unsigned char* src, Py_ssize_t pos, Py_ssize_t end,
                            list frames, Py_ssize_t limit) except -1
    cdef int _reserve(self, Py_ssize_t room) except -1
    cdef int _append(self, const unsigned char* data, Py_ssize_t n) except -1
    cdef int _append_held(self, const unsigned char* data, Py_ssize_t n) except -1
    cdef Py_ssize_t _begin(self, Py_ssize_t max_frames) except -2
    cdef int _retain(self, object src, Py_ssize_t start, Py_ssize_t end, bytes more) except -1
    cdef object _run_held(self, list frames, Py_ssize_t limit, Py_ssize_t end)
    cdef object _run_bytes(self, bytes data, list frames, Py_ssize_t limit)
    cdef list _finish(self, list frames, object err, Py_ssize_t limit)
    cdef list _feed(self, object data, Py_ssize_t max_frames)


cdef class Lines:
    cdef Py_ssize_t _max
    cdef bint _keep
    cdef bint _fail_fast
    cdef bytes _newline


cdef class LinesDecoder(Splitter):
    cdef Py_ssize_t _max
    cdef bint _keep
    cdef bint _fail_fast
    cdef Py_ssize_t _scan         # bytes of the unfinished line known to hold no \n
    cdef bint _discarding
    cdef Py_ssize_t _discarded
    cdef bint _discarded_cr


cdef class Delimited:
    cdef tuple _delimiters
    cdef Py_ssize_t _max
    cdef bint _keep


cdef class DelimitedDecoder(Splitter):
    cdef tuple _delims
    cdef Py_ssize_t _count
    cdef Py_ssize_t _longest
    cdef const unsigned char** _dptr   # into the bytes of _delims
    cdef Py_ssize_t* _dlen
    cdef Py_ssize_t* _found            # each delimiter's next occurrence, while decoding
    cdef Py_ssize_t _max
    cdef bint _keep
    cdef Py_ssize_t _scan
    cdef bint _discarding

    cdef bint _settled(self, const unsigned char* src, Py_ssize_t pos, Py_ssize_t end,
                       Py_ssize_t best, Py_ssize_t which) noexcept
    cdef Py_ssize_t _delimiter_start(self, const unsigned char* src, Py_ssize_t pos,
                                     Py_ssize_t end) noexcept


cdef class Netstring:
    cdef Py_ssize_t _max


cdef class NetstringDecoder(Splitter):
    cdef Py_ssize_t _max
    cdef Py_ssize_t _digits
    cdef Py_ssize_t _expect
    cdef uint64_t _skip
    cdef bint _comma
    cdef bint _skip_prefix
    cdef bytes _prefix

    cdef Py_ssize_t _read_long_prefix(self, const unsigned char* src, Py_ssize_t pos,
                                      Py_ssize_t end) except -1
    cdef object _corrupt(self, str reason)


cdef class FixedLength:
    cdef Py_ssize_t _size


cdef class FixedLengthDecoder(Splitter):
    cdef Py_ssize_t _size
