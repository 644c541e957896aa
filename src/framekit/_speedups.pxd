# Declarations for the Cython twin of framekit.codecs.length_prefixed (see _speedups.pyx).

from libc.stdint cimport int64_t, uint64_t


cdef class _WritableSpan:
    cdef bytes _owner
    cdef Py_ssize_t _offset
    cdef Py_ssize_t _size
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
    cdef bytes _header(self, int64_t value, object prefix, Py_ssize_t extra, object maximum)
    cdef int _check_size(self, int64_t value, Py_ssize_t header, object maximum) except -1


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
    cdef bytearray _spare      # a buffer to switch to while _buf is logged
    cdef Py_ssize_t _start     # first unread byte in _buf
    cdef Py_ssize_t _end       # end of the bytes written to _buf
    cdef int64_t _need         # length of the buffered unfinished frame, or -1
    cdef bint _undecoded       # _buf may hold more than the start of one frame
    cdef bint _held            # decoding stopped at a frame held for streaming
    cdef uint64_t _discard     # bytes of a rejected frame still to skip
    cdef uint64_t _too_long    # its length while its FrameTooLarge is owed, else 0
    cdef object _broken        # None, or why the decoder is broken
    cdef bint _detached
    cdef Py_ssize_t _offered   # size of the last get_buffer() view
    cdef object _view          # that view, released once spent
    cdef bytes _frame          # a large frame being assembled in place, or None
    cdef Py_ssize_t _frame_pos # payload bytes received into it so far
    cdef Py_ssize_t _frame_cut # bytes stripped from its front (counted as pending)
    cdef bytes _frame_head     # those bytes, as received (for detach)
    cdef Py_ssize_t _frame_from  # where it began in the bytes being decoded
    cdef Py_ssize_t _frame_clean # its bytes below this are initialised (written or zeroed)
    cdef Py_ssize_t _last      # size of the last frame decoded by buffer_updated
    cdef Py_ssize_t _rest_min  # assemble in place only if this much is yet to come
    cdef Py_ssize_t _header_max
    cdef Py_ssize_t _direct_min  # _limits.DIRECT_MIN, DIRECT_RATIO, ROOM_CAP, read when made
    cdef Py_ssize_t _direct_ratio
    cdef Py_ssize_t _room_cap
    cdef _WritableSpan _span   # exports the part of _frame that get_buffer() offers
    cdef int64_t _stream_limit
    cdef int64_t _stream_left  # payload bytes of the open stream not yet read
    cdef int64_t _stream_length
    # The log of the most recent decode call, for detach() (see the pure twin).
    cdef Py_ssize_t _log_n
    cdef uint64_t _log_base
    cdef bint _log_lost
    cdef bytes _log_head
    cdef bytes _log_frame
    cdef bytearray _log_buf
    cdef Py_ssize_t _log_b0
    cdef Py_ssize_t _log_b1
    cdef object _log_data
    cdef Py_ssize_t _log_d0
    cdef Py_ssize_t _log_d1

    cdef object _decode(self, const unsigned char* src, Py_ssize_t* pos, Py_ssize_t end,
                        list frames, Py_ssize_t limit)
    cdef int _begin_frame(self, const unsigned char* src, Py_ssize_t pos, Py_ssize_t end,
                          Py_ssize_t cut, Py_ssize_t payload) except -1
    cdef Py_ssize_t _fill_frame(self, const unsigned char* data, Py_ssize_t pos,
                                Py_ssize_t end) except -1
    cdef int _deliver_frame(self, list frames) except -1
    cdef object _break(self, object err)
    cdef int _refuse(self) except -1
    cdef int _clear(self) except -1
    cdef inline int _reserve(self, Py_ssize_t room) except -1
    cdef int _make_room(self, Py_ssize_t room) except -1
    cdef inline int _append(self, const unsigned char* data, Py_ssize_t n) except -1
    cdef inline object _consume_buffer(self, list frames, Py_ssize_t limit)
    cdef inline int _void_view(self) except -1
    cdef int _release_view(self) except -1
    cdef int _take(self, const unsigned char* data, Py_ssize_t end) except -1
    cdef inline int _log_start(self, object data) except -1
    cdef int _log_drop(self) except -1
    cdef int _log_unbuffer(self) except -1
    cdef inline bint _unfinished(self, Py_ssize_t pending, Py_ssize_t n) noexcept
    cdef inline int _log_unfinished(self) except -1
    cdef inline bint _logged(self, bytearray buf) noexcept
    cdef inline list _finish(self, list frames, object err, const unsigned char* data, bint copy)
    cdef int _log_copy(self, const unsigned char* data) except -1
    cdef int _shrink(self) except -1
    cdef list _feed(self, object obj, const unsigned char* data, Py_ssize_t end,
                    Py_ssize_t limit, bint copy)
    cdef int _read_header(self, const unsigned char* src, Py_ssize_t pos, Py_ssize_t end,
                          uint64_t* flen, Py_ssize_t* hend) except -1
    cdef Py_ssize_t _wire_length(self, bytes wire, Py_ssize_t pos) except -1
    cdef object _open_stream(self, int64_t frame_length, int64_t payload)
