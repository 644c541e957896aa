# cython: language_level=3
"""The server benchmark's compiled parts: the load generator and the raw echo floor.

Design notes
------------
Python cannot drive a server at millions of frames per second, so both ends
that are not under test are C loops over ``epoll`` (Linux only), run with the
GIL released.  Python only opens the sockets and reads the results.

**The load generator** (:class:`LoadGenerator`) keeps ``window`` frames in
flight on each of its connections: it writes frames until ``window`` are
outstanding, and every frame echoed back lets it write one more.  Frames are a
4-byte big-endian length and a payload whose bytes are a function of
(connection, sequence number): the first 8 are an odd multiple of that pair's
key (a bijection, so no two frames of a run are alike) and the rest follow a
64-bit LCG.  Every echoed byte is compared with what that frame must be, eight
bytes at a time, so a wrong, lost, duplicated or reordered frame stops the run
with an error that says where.  The comparison reads the echo straight out of
the receive buffer: no copy, no scratch frame.

Latency is per frame: the time a frame was handed to ``write()`` to the time
the ``read()`` that completed its echo returned.  One clock read covers each
batch of writes and each read, so timing costs no more than the system calls
it brackets.  Latencies go into a log-bucketed histogram (HDR style: below
64 ns one bucket per ns, above that 32 buckets per power of two, so each
bucket is within about 3% of its values).

:meth:`LoadGenerator.run` runs for a given time and may be called again: a
warm-up run, :meth:`~LoadGenerator.reset`, then the measured run.  Between
runs, frames stay in flight: the server never sees a pause.

**The floor** (:func:`echo_floor`) echoes whatever bytes arrive, as they
arrive: one ``read`` and one ``write`` per readiness event, no framing.  Any
framed server has to do at least this much, so it bounds what the load
generator can measure; the load generator must outrun the fastest framed
server by a wide margin against it, or the numbers would be its own.
"""

cimport cython
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memmove, strerror
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

__all__ = ["HISTOGRAM_BUCKETS", "LoadGenerator", "bucket_value", "echo_floor"]


cdef extern from "<errno.h>" nogil:
    int errno
    enum:
        EAGAIN
        EINTR


cdef extern from "<unistd.h>" nogil:
    ssize_t read(int fd, void *buf, size_t count)
    ssize_t write(int fd, const void *buf, size_t count)
    int close(int fd)


cdef extern from "<sys/socket.h>" nogil:
    int accept4(int sockfd, void *addr, void *addrlen, int flags)
    int setsockopt(int sockfd, int level, int optname, const void *optval, unsigned int optlen)
    enum:
        SOCK_NONBLOCK
        SOCK_CLOEXEC


cdef extern from "<netinet/in.h>" nogil:
    enum:
        IPPROTO_TCP


cdef extern from "<netinet/tcp.h>" nogil:
    enum:
        TCP_NODELAY


cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        void *ptr
        int fd
        uint32_t u32
        uint64_t u64

    struct epoll_event:
        uint32_t events
        epoll_data_t data

    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)
    enum:
        EPOLLIN
        EPOLLOUT
        EPOLLERR
        EPOLLHUP
        EPOLL_CTL_ADD
        EPOLL_CTL_MOD
        EPOLL_CLOEXEC


cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil


cdef extern from "<stdio.h>" nogil:
    int snprintf(char *buf, size_t size, const char *fmt, ...)


# --- the histogram -------------------------------------------------------------------

cdef int _SUB_BITS = 5
cdef int _SUB = 1 << _SUB_BITS
cdef int _LINEAR = 64
#: 64 linear buckets, then 32 per power of two from 2**6 to 2**63.
HISTOGRAM_BUCKETS = _LINEAR + (64 - 6) * _SUB


cdef inline int _bucket(uint64_t v) noexcept nogil:
    cdef int e
    if v < <uint64_t>_LINEAR:
        return <int>v
    e = 63 - __builtin_clzll(v)
    return _LINEAR + (e - 6) * _SUB + <int>((v >> (e - _SUB_BITS)) & (_SUB - 1))


def bucket_value(int index):
    """The smallest value (ns) that falls in bucket ``index`` of the histogram."""
    if index < _LINEAR:
        return index
    cdef int e = (index - _LINEAR) // _SUB + 6
    cdef int sub = (index - _LINEAR) % _SUB
    return (1 << e) + (sub << (e - _SUB_BITS))


# --- frames ------------------------------------------------------------------------

cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline uint64_t _key(uint64_t conn, uint64_t seq) noexcept nogil:
    return ((conn << 40) ^ seq) * <uint64_t>0x9E3779B97F4A7C15ULL + <uint64_t>1


cdef inline uint64_t _next(uint64_t x) noexcept nogil:
    return x * <uint64_t>6364136223846793005ULL + <uint64_t>1442695040888963407ULL


cdef inline void _put_frame(char *p, uint64_t key, Py_ssize_t size) noexcept nogil:
    """Write the frame of ``key``: its length, big-endian, then its payload."""
    cdef uint64_t x = key
    cdef Py_ssize_t i = 0
    p[0] = <char>((size >> 24) & 0xFF)
    p[1] = <char>((size >> 16) & 0xFF)
    p[2] = <char>((size >> 8) & 0xFF)
    p[3] = <char>(size & 0xFF)
    p += 4
    while i + 8 <= size:
        memcpy(p + i, &x, 8)
        x = _next(x)
        i += 8
    if i < size:
        memcpy(p + i, &x, size - i)


cdef inline Py_ssize_t _check_frame(const char *p, uint64_t key, Py_ssize_t size) noexcept nogil:
    """-1 if ``p`` holds the frame of ``key``, else the offset of the first wrong 8-byte word."""
    cdef uint64_t x = key
    cdef uint64_t got = 0
    cdef Py_ssize_t i = 0
    cdef const uint8_t *h = <const uint8_t *>p
    if ((<uint64_t>h[0] << 24) | (<uint64_t>h[1] << 16) | (<uint64_t>h[2] << 8) | h[3]) != <uint64_t>size:
        return 0
    p += 4
    while i + 8 <= size:
        memcpy(&got, p + i, 8)
        if got != x:
            return 4 + i
        x = _next(x)
        i += 8
    if i < size:
        got = 0
        memcpy(&got, p + i, size - i)
        x &= (<uint64_t>1 << (8 * (size - i))) - 1
        if got != x:
            return 4 + i
    return -1


def expected_frame(uint64_t conn, uint64_t seq, Py_ssize_t size):
    """Frame ``seq`` of connection ``conn`` as the load generator sends it (for tests)."""
    buf = bytearray(4 + size)
    cdef char *p = buf
    _put_frame(p, _key(conn, seq), size)
    return bytes(buf)


# --- the load generator --------------------------------------------------------------

ctypedef struct _Conn:
    int fd
    int index
    bint want_out
    uint64_t tx_seq
    uint64_t rx_seq
    uint64_t done
    char *out
    Py_ssize_t out_off
    Py_ssize_t out_len
    char *inb
    Py_ssize_t in_len
    int64_t *sent_ns


@cython.final
cdef class LoadGenerator:
    """Keeps ``window`` frames of ``size`` bytes in flight on each connected socket.

    Args:
        fds: connected, non-blocking stream sockets' descriptors (the caller
            owns and closes them).
        window: frames in flight per connection.
        size: payload bytes per frame.

    Attributes:
        frames: frames echoed and verified since the last :meth:`reset`.
        error: what went wrong (``None`` while all is well); a run stops at
            the first error.
    """

    cdef _Conn *_conns
    cdef int _n
    cdef int _epfd
    cdef Py_ssize_t _window
    cdef Py_ssize_t _size
    cdef Py_ssize_t _frame
    cdef Py_ssize_t _in_cap
    cdef uint64_t *_hist
    cdef uint64_t _frames
    cdef int64_t _max_ns
    cdef char _error[256]
    cdef bint _failed

    def __cinit__(self, fds, Py_ssize_t window, Py_ssize_t size):
        cdef int i
        cdef epoll_event ev
        if window < 1 or size < 0 or size > (1 << 24):
            raise ValueError(f"bad window {window} or size {size}")
        self._n = len(fds)
        self._window = window
        self._size = size
        self._frame = size + 4
        self._in_cap = max(65536, 2 * window * self._frame)
        self._epfd = -1
        self._conns = <_Conn *>calloc(max(1, self._n), sizeof(_Conn))
        self._hist = <uint64_t *>calloc(HISTOGRAM_BUCKETS, sizeof(uint64_t))
        if self._conns == NULL or self._hist == NULL:
            raise MemoryError()
        for i in range(self._n):
            self._conns[i].fd = -1
        for i in range(self._n):
            self._conns[i].fd = fds[i]
            self._conns[i].index = i
            self._conns[i].out = <char *>malloc(window * self._frame)
            self._conns[i].inb = <char *>malloc(self._in_cap)
            self._conns[i].sent_ns = <int64_t *>calloc(window, sizeof(int64_t))
            if (
                self._conns[i].out == NULL
                or self._conns[i].inb == NULL
                or self._conns[i].sent_ns == NULL
            ):
                raise MemoryError()
        self._epfd = epoll_create1(EPOLL_CLOEXEC)
        if self._epfd < 0:
            raise OSError(errno, strerror(errno).decode())
        for i in range(self._n):
            ev.events = EPOLLIN
            ev.data.ptr = &self._conns[i]
            if epoll_ctl(self._epfd, EPOLL_CTL_ADD, self._conns[i].fd, &ev) < 0:
                raise OSError(errno, strerror(errno).decode())
        self._error[0] = 0
        self._failed = False

    def __dealloc__(self):
        cdef int i
        if self._conns != NULL:
            for i in range(self._n):
                free(self._conns[i].out)
                free(self._conns[i].inb)
                free(self._conns[i].sent_ns)
            free(self._conns)
        free(self._hist)
        if self._epfd >= 0:
            close(self._epfd)

    @property
    def frames(self):
        return self._frames

    @property
    def error(self):
        return self._error.decode("utf-8", "replace") if self._failed else None

    @property
    def max_ns(self):
        """The longest round trip since the last :meth:`reset`."""
        return self._max_ns

    def per_connection(self):
        """Frames each connection completed since the last :meth:`reset`."""
        return [self._conns[i].done for i in range(self._n)]

    def histogram(self):
        """Round-trip latencies since the last :meth:`reset`: ``{bucket index: count}``."""
        return {i: self._hist[i] for i in range(HISTOGRAM_BUCKETS) if self._hist[i]}

    def reset(self):
        """Forget the counts and latencies (frames in flight stay in flight)."""
        cdef int i
        self._frames = 0
        self._max_ns = 0
        for i in range(HISTOGRAM_BUCKETS):
            self._hist[i] = 0
        for i in range(self._n):
            self._conns[i].done = 0

    def run(self, double seconds):
        """Drive every connection for ``seconds``; stop early at the first error."""
        cdef int64_t deadline = _now_ns() + <int64_t>(seconds * 1e9)
        with nogil:
            self._loop(deadline)

    cdef void _fail(self, _Conn *c, const char *what, uint64_t seq, Py_ssize_t offset) noexcept nogil:
        if not self._failed:
            self._failed = True
            snprintf(
                self._error, 256, "connection %d, frame %llu: %s (byte %zd)",
                c.index, <unsigned long long>seq, what, offset,
            )

    cdef void _fail_errno(self, _Conn *c, const char *call) noexcept nogil:
        if not self._failed:
            self._failed = True
            snprintf(
                self._error, 256, "connection %d: %s failed: %s (after %llu frames)",
                c.index, call, strerror(errno), <unsigned long long>c.rx_seq,
            )

    cdef int _flush(self, _Conn *c) noexcept nogil:
        """Top the window up and write what is pending; 0, or -1 on an error."""
        cdef Py_ssize_t pending = c.out_len - c.out_off
        cdef int64_t now
        cdef ssize_t n
        cdef epoll_event ev
        cdef bint want
        if c.tx_seq - c.rx_seq < <uint64_t>self._window:
            if pending and c.out_off:
                memmove(c.out, c.out + c.out_off, pending)
            c.out_off = 0
            c.out_len = pending
            now = _now_ns()
            while c.tx_seq - c.rx_seq < <uint64_t>self._window:
                _put_frame(c.out + c.out_len, _key(c.index, c.tx_seq), self._size)
                c.sent_ns[c.tx_seq % self._window] = now
                c.out_len += self._frame
                c.tx_seq += 1
        pending = c.out_len - c.out_off
        if pending:
            n = write(c.fd, c.out + c.out_off, pending)
            if n < 0:
                if errno != EAGAIN and errno != EINTR:
                    self._fail_errno(c, "write")
                    return -1
                n = 0
            c.out_off += n
            pending -= n
        want = pending > 0
        if want != c.want_out:
            c.want_out = want
            ev.events = EPOLLIN | (EPOLLOUT if want else 0)
            ev.data.ptr = c
            epoll_ctl(self._epfd, EPOLL_CTL_MOD, c.fd, &ev)
        return 0

    cdef int _receive(self, _Conn *c) noexcept nogil:
        """Read, verify and time what arrived; 0, or -1 on an error."""
        cdef ssize_t n = read(c.fd, c.inb + c.in_len, self._in_cap - c.in_len)
        cdef int64_t now, lat
        cdef Py_ssize_t pos = 0, wrong
        if n < 0:
            if errno == EAGAIN or errno == EINTR:
                return 0
            self._fail_errno(c, "read")
            return -1
        if n == 0:
            self._fail(c, "the server closed the connection", c.rx_seq, c.in_len)
            return -1
        now = _now_ns()
        c.in_len += n
        while c.in_len - pos >= self._frame:
            if c.rx_seq >= c.tx_seq:
                self._fail(c, "an echo of a frame never sent", c.rx_seq, 0)
                return -1
            wrong = _check_frame(c.inb + pos, _key(c.index, c.rx_seq), self._size)
            if wrong >= 0:
                self._fail(c, "the echo differs from the frame sent", c.rx_seq, wrong)
                return -1
            lat = now - c.sent_ns[c.rx_seq % self._window]
            self._hist[_bucket(<uint64_t>lat)] += 1
            if lat > self._max_ns:
                self._max_ns = lat
            c.rx_seq += 1
            c.done += 1
            self._frames += 1
            pos += self._frame
        if pos:
            c.in_len -= pos
            if c.in_len:
                memmove(c.inb, c.inb + pos, c.in_len)
        if c.in_len and c.rx_seq >= c.tx_seq:
            self._fail(c, "more bytes than were sent", c.rx_seq, 0)
            return -1
        return 0

    cdef void _loop(self, int64_t deadline) noexcept nogil:
        cdef epoll_event events[256]
        cdef int i, ready, timeout
        cdef int64_t now
        cdef _Conn *c
        if self._failed:
            return
        for i in range(self._n):
            if self._flush(&self._conns[i]) < 0:
                return
        while True:
            now = _now_ns()
            if now >= deadline:
                return
            timeout = <int>((deadline - now) // 1000000) + 1
            ready = epoll_wait(self._epfd, events, 256, timeout)
            if ready < 0:
                if errno == EINTR:
                    continue
                self._fail_errno(&self._conns[0], "epoll_wait")
                return
            for i in range(ready):
                c = <_Conn *>events[i].data.ptr
                if events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP):
                    if self._receive(c) < 0:
                        return
                if self._flush(c) < 0:
                    return


# --- the floor -----------------------------------------------------------------------

ctypedef struct _Echo:
    int fd
    char *pending
    Py_ssize_t pending_len


cdef int _ECHO_READ = 256 * 1024


def echo_floor(int listen_fd):
    """Echo every byte each client sends, as it arrives, forever (no framing at all).

    Args:
        listen_fd: a listening, non-blocking socket (the caller keeps it open).
    """
    cdef char *buf = <char *>malloc(_ECHO_READ)
    cdef int epfd = epoll_create1(EPOLL_CLOEXEC)
    if buf == NULL or epfd < 0:
        free(buf)
        raise OSError(errno, strerror(errno).decode())
    cdef epoll_event ev
    ev.events = EPOLLIN
    ev.data.ptr = NULL
    if epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) < 0:
        raise OSError(errno, strerror(errno).decode())
    with nogil:
        _echo_loop(epfd, listen_fd, buf)


cdef void _echo_close(int epfd, _Echo *e) noexcept nogil:
    close(e.fd)
    free(e.pending)
    free(e)


cdef void _echo_loop(int epfd, int listen_fd, char *buf) noexcept nogil:
    cdef epoll_event events[256]
    cdef epoll_event ev
    cdef int i, ready, fd, one = 1
    cdef ssize_t n, w
    cdef _Echo *e
    while True:
        ready = epoll_wait(epfd, events, 256, -1)
        for i in range(ready):
            e = <_Echo *>events[i].data.ptr
            if e == NULL:
                while True:
                    fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)
                    if fd < 0:
                        break
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))
                    e = <_Echo *>calloc(1, sizeof(_Echo))
                    if e == NULL:
                        close(fd)
                        continue
                    e.fd = fd
                    ev.events = EPOLLIN
                    ev.data.ptr = e
                    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev)
                continue
            if e.pending_len:
                # Blocked on a full send buffer: finish that write before reading more.
                w = write(e.fd, e.pending, e.pending_len)
                if w < 0:
                    if errno == EAGAIN or errno == EINTR:
                        continue
                    _echo_close(epfd, e)
                    continue
                e.pending_len -= w
                if e.pending_len:
                    memmove(e.pending, e.pending + w, e.pending_len)
                    continue
                ev.events = EPOLLIN
                ev.data.ptr = e
                epoll_ctl(epfd, EPOLL_CTL_MOD, e.fd, &ev)
                continue
            n = read(e.fd, buf, _ECHO_READ)
            if n <= 0:
                if n < 0 and (errno == EAGAIN or errno == EINTR):
                    continue
                _echo_close(epfd, e)
                continue
            w = write(e.fd, buf, n)
            if w < 0:
                if errno != EAGAIN and errno != EINTR:
                    _echo_close(epfd, e)
                    continue
                w = 0
            if w < n:
                free(e.pending)
                e.pending = <char *>malloc(n - w)
                if e.pending == NULL:
                    _echo_close(epfd, e)
                    continue
                memcpy(e.pending, buf + w, n - w)
                e.pending_len = n - w
                ev.events = EPOLLOUT
                ev.data.ptr = e
                epoll_ctl(epfd, EPOLL_CTL_MOD, e.fd, &ev)
