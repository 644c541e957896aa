# Declarations for the Cython twin of framekit.codecs.length_prefixed (see _speedups.pyx).

from libc.stdint cimport int64_t, uint64_t


cdef class _WritableSpan:
    cdef bytes _owner
    cdef Py_ssize_t _offset
    cdef Py_ssize_t _exports


cdef class LengthPrefixed:
    cdef readonly object _cfg
    cdef int _size            # 1, 2, 3, 4, 8; 0 for a varint field
    cdef bint _big
    cdef Py_ssize_t _offset
    cdef int64_t _adj
    cdef Py_ssize_t _strip    # -1: strip the whole header
    cdef int64_t _max
    cdef bint _fail_fast
    cdef int _vmax

    cdef Py_ssize_t _write_field(self, unsigned char* out, int64_t value) except -1
    cdef Py_ssize_t _field_size(self, int64_t value) except -1
    cdef bytes _header(self, int64_t value, object prefix, Py_ssize_t extra)


cdef class LengthPrefixedDecoder:
    cdef int _size
    cdef bint _big
    cdef Py_ssize_t _offset
    cdef int64_t _adj
    cdef Py_ssize_t _strip
    cdef int64_t _max
    cdef bint _fail_fast
    cdef int _vmax

    cdef bytearray _buf
    cdef Py_ssize_t _start     # first unread byte in _buf
    cdef Py_ssize_t _end       # end of the bytes written to _buf
    cdef int64_t _need         # length of the buffered unfinished frame, or -1
    cdef uint64_t _discard     # bytes of a rejected frame still to skip
    cdef uint64_t _too_long    # its length while its FrameTooLarge is owed, else 0
    cdef object _broken        # None, or why the decoder is broken
    cdef Py_ssize_t _offered   # size of the last get_buffer() view
    cdef bytes _frame          # a large frame being assembled in place, or None
    cdef Py_ssize_t _frame_pos # payload bytes received into it so far
    cdef Py_ssize_t _frame_cut # bytes stripped from its front (counted as pending)
    cdef Py_ssize_t _last      # size of the last frame decoded by buffer_updated
    cdef Py_ssize_t _rest_min  # assemble in place only if this much is yet to come
    cdef Py_ssize_t _header_max
    cdef Py_ssize_t _direct_min  # _limits.DIRECT_MIN, DIRECT_RATIO, ROOM_CAP, read when made
    cdef Py_ssize_t _direct_ratio
    cdef Py_ssize_t _room_cap
    cdef _WritableSpan _span   # exports the unfilled tail of _frame to get_buffer()
    cdef list _views           # the views of it handed out since the last update

    cdef object _decode(self, const unsigned char* src, Py_ssize_t* pos, Py_ssize_t end,
                        list frames)
    cdef int _begin_frame(self, const unsigned char* head, Py_ssize_t n, Py_ssize_t payload,
                          Py_ssize_t cut) except -1
    cdef Py_ssize_t _fill_frame(self, const unsigned char* data, Py_ssize_t pos, Py_ssize_t end,
                                list frames) except -1
    cdef int _end_frame(self, list frames) except -1
    cdef int _release_views(self) except -1
    cdef object _break(self, object err)
    cdef int _reserve(self, Py_ssize_t room) except -1
    cdef int _append(self, const unsigned char* data, Py_ssize_t n) except -1
    cdef object _consume_buffer(self, list frames)
    cdef list _finish(self, list frames, object err)
    cdef list _feed(self, const unsigned char* data, Py_ssize_t end)
