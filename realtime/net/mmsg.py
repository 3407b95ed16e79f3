"""
Batched datagram system calls: ``recvmmsg(2)`` and ``sendmmsg(2)`` (Linux), with a plain fallback.

Each ``recvfrom``/``sendto`` is one trip into the kernel, and on this
project's machines the trip itself (entry, exit, Spectre mitigations,
Python's call and error handling) costs about as much as the work the
kernel does for a small datagram.  Linux (2.6.33 / 3.0) can move many
datagrams in one trip:

* ``recvmmsg(fd, msgvec, vlen, flags, timeout)`` fills up to ``vlen``
  ``struct mmsghdr`` -- each a ``struct msghdr`` (POSIX ``recvmsg``: a
  source-address buffer, a scatter list of ``struct iovec``) plus
  ``msg_len``, the bytes received into it -- and returns how many it filled;
* ``sendmmsg(fd, msgvec, vlen, flags)`` sends them in order and returns how
  many went out.  When message *k* fails after others were sent it returns
  *k* (a partial send); the error belongs to message *k* and is reported by
  the next call, which starts at *k*.

This is the one module that reaches them (through :mod:`ctypes`; no
compiler needed).  Its buffers are allocated once and shared by every socket
of the process (the reactor is single-threaded, and a batch is copied out or
sent before the call returns)::

    recv arena  [slot 0: 8192 B][slot 1]...[slot 31]   iovec i -> slot i
    names       [sockaddr 32 B] x 32                   msg_name i -> names i
    mmsghdr     [msghdr | msg_len] x 32                written/read through memoryviews

    send arena  [slot 0: 8192 B]...[slot 63]           payload copied in (one memcpy)
    names       [sockaddr 32 B] x 64                   encoded once per address (cached)

Per datagram the Python side does memoryview stores only (a payload copy,
the length, the cached ``sockaddr`` bytes): no ctypes object is built on the
hot path.  A datagram larger than a slot, or an address that cannot be
encoded, goes through plain ``sendto`` so its error is the one the kernel
(or the socket module) gives.

:class:`BatchedPort` is a Twisted UDP port whose ``doRead`` drains the
socket with ``recvmmsg`` and whose :meth:`BatchedPort.write_many` sends a
list of ``(bytes, address)`` with ``sendmmsg``; :class:`BatchedUDP` wraps a
reactor so ``internet.UDPServer`` and relay sockets get such ports.  Where
the calls are missing (not Linux, or ``batched=False``) the same methods use
``recvfrom``/``sendto`` in a loop: callers never branch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import struct
import sys
from errno import (
    EAGAIN, EBADF, ECONNREFUSED, ECONNRESET, EINTR, EINVAL, EMSGSIZE, ENETRESET, ETIMEDOUT,
    EWOULDBLOCK,
)
from typing import Any, Iterable

from twisted.internet import udp
from twisted.internet.posixbase import PosixReactorBase
from twisted.python import log

from realtime.addresses import Address

#: Datagrams per ``recvmmsg`` / ``sendmmsg`` call.
RECV_BATCH = 32
SEND_BATCH = 64
#: Bytes per slot: the largest datagram received whole (Twisted's default ``maxPacketSize``).
SLOT = 8192
#: Room for one ``struct sockaddr_in6`` (28 bytes), rounded up.
NAME = 32
#: Most batches one ``doRead`` takes before yielding to the reactor (512 datagrams).
READS_PER_WAKEUP = 16
#: Cached address encodings/decodings before the caches are cleared (hostile sources churn them).
CACHE_LIMIT = 65536

_READ_IGNORE = (EAGAIN, EWOULDBLOCK, EINTR)
_READ_REFUSED = (ECONNREFUSED, ECONNRESET, ENETRESET, ETIMEDOUT)


class _iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _msghdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _msghdr), ("msg_len", ctypes.c_uint32)]


def _libc_calls() -> tuple[Any, Any]:  # ctypes foreign functions, or (None, None)
    """Return ``(recvmmsg, sendmmsg)`` from the C library, or ``(None, None)``."""
    if not sys.platform.startswith("linux"):
        return None, None
    try:
        # PyDLL keeps the GIL across the call: with MSG_DONTWAIT neither call
        # blocks, and releasing the GIL per call would hand it to any other
        # thread of the process, adding its switch to every batch's latency.
        libc = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        recv, send = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None, None
    recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    recv.restype = ctypes.c_int
    send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    send.restype = ctypes.c_int
    return recv, send


_recvmmsg, _sendmmsg = _libc_calls()
AVAILABLE = _recvmmsg is not None
"""True where ``recvmmsg``/``sendmmsg`` can be called (Linux with a C library)."""

# -- socket addresses (struct sockaddr_in, RFC 3493 §3.3 sockaddr_in6) ----------
#
# sa_family is in host byte order, port and address in network byte order.

_SA_IN = struct.Struct("=H2s4s8x")        # family, port, IPv4 address, zero
_SA_IN6 = struct.Struct("=H2s4s16sI")     # family, port, flowinfo, IPv6 address, scope id
_PORT = struct.Struct("!H")
_encoded: dict = {}
_decoded: dict = {}


def encode_address(address: tuple) -> bytes:
    """Return the ``struct sockaddr`` bytes for ``(host, port)``; raise ``OSError``/``ValueError``."""
    cached = _encoded.get(address)
    if cached is not None:
        return cached
    host, port = address[0], address[1]
    if ":" in host:
        packed = _SA_IN6.pack(socket.AF_INET6, _PORT.pack(port), bytes(4),
                              socket.inet_pton(socket.AF_INET6, host), 0)
    else:
        packed = _SA_IN.pack(socket.AF_INET, _PORT.pack(port), socket.inet_pton(socket.AF_INET, host))
    if len(_encoded) >= CACHE_LIMIT:
        _encoded.clear()
    _encoded[address] = packed
    return packed


def decode_address(raw: bytes) -> tuple[str, int]:
    """Return ``(host, port)`` of a ``struct sockaddr_in``/``sockaddr_in6`` (flow and scope dropped)."""
    cached = _decoded.get(raw)
    if cached is not None:
        return cached
    if len(raw) >= _SA_IN6.size and struct.unpack_from("=H", raw)[0] == socket.AF_INET6:
        _family, port, _flow, host, _scope = _SA_IN6.unpack_from(raw)
        address = (socket.inet_ntop(socket.AF_INET6, host), _PORT.unpack(port)[0])
    else:
        _family, port, host = _SA_IN.unpack_from(raw)
        address = (socket.inet_ntop(socket.AF_INET, host), _PORT.unpack(port)[0])
    if len(_decoded) >= CACHE_LIMIT:
        _decoded.clear()
    _decoded[raw] = address
    return address


class _Vector:
    """``count`` mmsghdrs, each with one iovec on a ``SLOT``-byte slot and a ``NAME``-byte name."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.arena = ctypes.create_string_buffer(count * SLOT)
        self.names = ctypes.create_string_buffer(count * NAME)
        self.iovecs = (_iovec * count)()
        self.headers = (_mmsghdr * count)()
        arena, names = ctypes.addressof(self.arena), ctypes.addressof(self.names)
        for i in range(count):
            self.iovecs[i].iov_base = arena + i * SLOT
            self.iovecs[i].iov_len = SLOT
            header = self.headers[i].msg_hdr
            header.msg_name = names + i * NAME
            header.msg_namelen = NAME
            header.msg_iov = ctypes.addressof(self.iovecs[i])
            header.msg_iovlen = 1
        self.pointer = ctypes.addressof(self.headers)
        self.data = memoryview(self.arena).cast("B")
        self.name_bytes = memoryview(self.names).cast("B")
        # Word views of the header and iovec arrays: index = byte offset // word size.
        self.words = memoryview(self.headers).cast("B").cast("I")
        self.sizes = memoryview(self.iovecs).cast("B").cast("Q")
        stride = ctypes.sizeof(_mmsghdr) // 4
        self.msg_len = [i * stride + _mmsghdr.msg_len.offset // 4 for i in range(count)]
        self.namelen = [i * stride + _msghdr.msg_namelen.offset // 4 for i in range(count)]
        iov_stride = ctypes.sizeof(_iovec) // 8
        self.iov_len = [i * iov_stride + _iovec.iov_len.offset // 8 for i in range(count)]


_receive_vector: _Vector | None = None
_send_vector: _Vector | None = None


def _vectors() -> tuple[_Vector, _Vector]:
    global _receive_vector, _send_vector
    if _receive_vector is None or _send_vector is None:
        _receive_vector, _send_vector = _Vector(RECV_BATCH), _Vector(SEND_BATCH)
    return _receive_vector, _send_vector


def receive_batch(fd: int, limit: int = RECV_BATCH) -> list[tuple[bytes, tuple[str, int]]]:
    """Return up to ``limit`` datagrams waiting on ``fd`` (one ``recvmmsg``, non-blocking).

    Returns ``[]`` when nothing is waiting; raises ``OSError`` for other errors.
    A datagram longer than a slot is cut to ``SLOT`` bytes, as ``recvfrom`` would.
    """
    vector = _vectors()[0]
    count = _recvmmsg(fd, vector.pointer, min(limit, vector.count), socket.MSG_DONTWAIT, None)
    if count < 0:
        number = ctypes.get_errno()
        if number in (EAGAIN, EWOULDBLOCK):
            return []
        raise OSError(number, "recvmmsg failed")
    words, data, names = vector.words, vector.data, vector.name_bytes
    msg_len, namelen = vector.msg_len, vector.namelen
    out: list[tuple[bytes, tuple[str, int]]] = []
    append = out.append
    for i in range(count):
        size = words[msg_len[i]]
        start = i * SLOT
        name_at = i * NAME
        name = names[name_at:name_at + words[namelen[i]]].tobytes()
        words[namelen[i]] = NAME  # the kernel wrote the real length; give the room back
        address = _decoded.get(name) or decode_address(name)
        append((data[start:start + size].tobytes(), address))
    return out


def _load_fill() -> Any:
    """Return the C helper's ``fill`` (``realtime/net/_mmsg.c``), or None where it is not built.

    ``REALTIME_FANOUT_C=0`` in the environment disables it (the tests compare both).
    """
    if os.environ.get("REALTIME_FANOUT_C", "1") == "0":
        return None
    try:
        from realtime.net import _mmsg  # type: ignore[attr-defined]  # built by setup.py
    except ImportError:
        return None
    return _mmsg.fill


#: ``fill(headers, capacity, slot, name_room, datagrams, start, encoded) -> end`` or None
_fill = _load_fill()


def send_batch(fd: int, datagrams: list, sock: socket.socket | None = None) -> list[tuple[tuple, int]]:
    """Send ``[(bytes, (host, port)), ...]`` in order, ``SEND_BATCH`` per ``sendmmsg`` call.

    Returns the failures as ``[(address, errno), ...]`` (empty when every
    datagram went out).  A failed datagram is skipped and the rest still go;
    ``EAGAIN`` (the socket's send buffer is full) fails the datagrams left in
    that call.  Datagrams that do not fit a slot, or whose address cannot be
    encoded, are sent with ``sock.sendto`` (so the kernel judges them).

    Where the C helper is built, runs of datagrams whose address is already
    encoded are copied into the vector by one ``_mmsg.fill`` call (the same
    stores as the loop below, ``realtime/net/_mmsg.c``); the loop handles the
    rest, one datagram at a time.
    """
    vector = _vectors()[1]
    fill = _fill
    if fill is None or type(datagrams) is not list:
        return _send_batch_python(fd, vector, datagrams, sock)
    failures: list = []
    total = len(datagrams)
    index = 0
    while index < total:
        end = fill(vector.pointer, vector.count, SLOT, NAME, datagrams, index, _encoded)
        if end > index:
            _flush(fd, vector, end - index, _Addresses(datagrams, index), failures)
            index = end
        else:  # one the C helper left: its address is new, or it goes alone
            failures += _send_batch_python(fd, vector, datagrams[index:index + 1], sock)
            index += 1
    return failures


class _Addresses:
    """``addresses[k]`` of a run prepared by ``fill``, read only when a send fails."""

    __slots__ = ("datagrams", "first")

    def __init__(self, datagrams: list, first: int) -> None:
        self.datagrams = datagrams
        self.first = first

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return [d[1] for d in self.datagrams[self.first + k.start:self.first + k.stop]]
        return self.datagrams[self.first + k][1]


def _send_batch_python(fd: int, vector: _Vector, datagrams: Any,
                       sock: socket.socket | None) -> list[tuple[tuple, int]]:
    """:func:`send_batch`'s loop in Python: each datagram copied in with memoryview stores."""
    data, names, words, sizes = vector.data, vector.name_bytes, vector.words, vector.sizes
    iov_len, namelen = vector.iov_len, vector.namelen
    failures: list = []
    total = len(datagrams)
    index = 0
    while index < total:
        filled = 0
        addresses: list = []
        while index < total and filled < vector.count:
            payload, address = datagrams[index]
            index += 1
            size = len(payload)
            name = _encoded.get(address)
            if name is None:
                try:
                    name = encode_address(address)
                except (OSError, ValueError, TypeError, IndexError):
                    name = None
            if name is None or size > SLOT:  # keep the order: what is prepared goes first
                _flush(fd, vector, filled, addresses, failures)
                filled, addresses = 0, []
                _send_one(sock, payload, address, failures)
                continue
            start = filled * SLOT
            data[start:start + size] = payload
            sizes[iov_len[filled]] = size
            at = filled * NAME
            names[at:at + len(name)] = name
            words[namelen[filled]] = len(name)
            addresses.append(address)
            filled += 1
        _flush(fd, vector, filled, addresses, failures)
    return failures


def _flush(fd: int, vector: _Vector, filled: int, addresses: Any, failures: list) -> None:
    """Send the first ``filled`` prepared messages, skipping each one the kernel refuses."""
    done = 0
    while done < filled:
        sent = _sendmmsg(fd, vector.pointer + done * ctypes.sizeof(_mmsghdr), filled - done, 0)
        if sent > 0:
            done += sent
            continue
        number = ctypes.get_errno() if sent < 0 else EAGAIN
        if number == EINTR:
            continue
        if number in (EAGAIN, EWOULDBLOCK):
            failures.extend((address, number) for address in addresses[done:filled])
            return
        failures.append((addresses[done], number))
        done += 1


def _send_one(sock: socket.socket | None, payload: bytes, address: Address,
              failures: list[tuple[Address, int]]) -> None:
    """``sendto`` one datagram to an IP literal (never a name: nothing here may resolve DNS)."""
    try:
        host = address[0]
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        if sock is None:
            raise OSError(EMSGSIZE, "no socket for a datagram outside the batch")
        sock.sendto(payload, (host, address[1]))
    except OSError as error:
        failures.append((address, error.errno if error.errno and error.errno > 0 else EINVAL))
    except (TypeError, ValueError, IndexError, OverflowError):
        failures.append((address, EINVAL))  # not an address


def send_plain(sock: socket.socket, datagrams: Iterable) -> list[tuple[tuple, int]]:
    """The fallback of :func:`send_batch`: one ``sendto`` per datagram, same failure list."""
    failures: list = []
    for payload, address in datagrams:
        _send_one(sock, payload, address, failures)
    return failures


#: Receive and send buffer asked for every batched socket (SO_RCVBUF/SO_SNDBUF,
#: socket(7)).  The kernel's default (``net.core.rmem_default``, 208 KiB here)
#: holds ~190 full-size datagrams: a burst from many clients (a TURN listener
#: under coturn's ``turnutils_uclient`` load) overflowed it while the server used
#: a fifth of a core, and the kernel dropped the rest.  The kernel caps the
#: request at ``net.core.rmem_max``/``wmem_max`` (4 MiB on this machine; raise
#: them with sysctl on a busy server) and doubles it for its own bookkeeping.
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024


class BatchedPort(udp.Port):
    """A Twisted UDP port that reads with ``recvmmsg`` and sends lists with ``sendmmsg``.

    A protocol with ``datagramsReceived(batch)`` gets each batch as one list of
    ``(bytes, (host, port))``; any other is read by Twisted's own ``recvfrom`` loop.
    The socket's buffers are :data:`SOCKET_BUFFER_BYTES` (within the kernel's caps).

    :param batched: use the batched calls (default: where :data:`AVAILABLE`);
        ``False`` keeps Twisted's ``recvfrom`` loop and plain ``sendto``.
    :param reuse_port: set ``SO_REUSEPORT`` before ``bind`` (``--workers``: every
        worker binds the same port and the kernel spreads flows by 4-tuple,
        :mod:`realtime.cluster.reuseport`).
    """

    def __init__(self, port: int, proto: Any, interface: str = "", maxPacketSize: int = SLOT,
                 reactor: Any = None, batched: bool | None = None,
                 reuse_port: bool = False) -> None:
        super().__init__(  # type: ignore[no-untyped-call]  # Twisted's Port
            port, proto, interface, maxPacketSize, reactor)
        self.batched = AVAILABLE if batched is None else (batched and AVAILABLE)
        self.reuse_port = reuse_port
        self._fd = -1

    def createInternetSocket(self) -> socket.socket:  # noqa: N802 (Twisted name)
        sock: socket.socket = super().createInternetSocket()
        if self.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return sock

    def _bindSocket(self) -> None:
        super()._bindSocket()  # type: ignore[no-untyped-call]  # Twisted's Port
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                self.socket.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
            except OSError:  # refused: keep the kernel's default
                pass
        self._fd = self.socket.fileno()

    def doRead(self) -> None:
        """Drain the socket: two ``recvfrom`` first, then ``recvmmsg`` batches while a backlog lasts.

        A lone datagram (a STUN check, an Allocate) costs what Twisted's own
        loop costs: one ``recvfrom`` and one that finds the socket empty.
        Only when a second datagram is already waiting -- the socket is under
        load -- does reading switch to batches (at most
        :data:`READS_PER_WAKEUP`), so a ctypes call is paid only where it
        saves system calls.  The whole read is delivered as one batch.
        """
        protocol = self.protocol
        many = getattr(protocol, "datagramsReceived", None)
        if many is None:
            return super().doRead()  # type: ignore[no-untyped-call]  # Twisted's Port
        batch: list = []
        recvfrom, size = self.socket.recvfrom, self.maxPacketSize
        try:
            for _ in range(2):
                data, address = recvfrom(size)
                batch.append((data, (address[0], address[1])))
        except OSError as error:
            if error.errno not in _READ_IGNORE and error.errno not in _READ_REFUSED:
                raise
        if len(batch) == 2:
            if self.batched:
                batch = self._read_batches(batch)
            else:
                batch = self._read_plain(batch)
        if batch:
            try:
                many(batch)
            except BaseException:
                log.err()

    def _read_batches(self, batch: list) -> list:
        for _ in range(READS_PER_WAKEUP):
            try:
                more = receive_batch(self._fd)
            except OSError as error:
                if error.errno in _READ_IGNORE or error.errno in _READ_REFUSED:
                    return batch
                raise
            batch += more
            if len(more) < RECV_BATCH:
                break
        return batch

    def _read_plain(self, batch: list) -> list:
        recvfrom, size = self.socket.recvfrom, self.maxPacketSize
        try:
            while len(batch) < RECV_BATCH * READS_PER_WAKEUP:
                data, address = recvfrom(size)
                batch.append((data, (address[0], address[1])))
        except OSError as error:
            if error.errno not in _READ_IGNORE and error.errno not in _READ_REFUSED:
                raise
        return batch

    def write_many(self, datagrams: list) -> list[tuple[tuple, int]]:
        """Send every ``(bytes, address)``; return the failures as ``[(address, errno)]``."""
        if self.socket is None or self._fd < 0:
            return [(address, EBADF) for _payload, address in datagrams]  # not listening
        if self.batched:
            return send_batch(self._fd, datagrams, self.socket)
        return send_plain(self.socket, datagrams)


class BatchedUDP:
    """A reactor stand-in whose ``listenUDP`` returns :class:`BatchedPort` (everything else delegates).

    ``internet.UDPServer(port, protocol, reactor=BatchedUDP(reactor))`` gives a
    batched listener; any reactor that is not a real POSIX one (``task.Clock``,
    ``MemoryReactor``, the test network) keeps its own ``listenUDP``.
    """

    def __init__(self, reactor: Any, batched: bool | None = None,
                 reuse_port: bool = False) -> None:
        self._reactor = reactor
        self.batched = batched
        #: bind with ``SO_REUSEPORT`` (``--workers``); fake reactors ignore it
        self.reuse_port = reuse_port

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def listenUDP(self, port: int, protocol: Any, interface: str = "",
                  maxPacketSize: int = SLOT) -> Any:
        """Listen on ``port`` with a :class:`BatchedPort` (plain ``listenUDP`` on fake reactors)."""
        reactor = self._reactor
        if not isinstance(reactor, PosixReactorBase):
            return reactor.listenUDP(port, protocol, interface, maxPacketSize)
        listener = BatchedPort(port, protocol, interface, maxPacketSize, reactor, self.batched,
                               self.reuse_port)
        listener.startListening()  # type: ignore[no-untyped-call]  # Twisted's Port
        return listener
