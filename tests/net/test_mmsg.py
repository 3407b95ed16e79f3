"""
recvmmsg/sendmmsg (realtime/net/mmsg.py) against plain recvfrom/sendto, on real loopback sockets.

Whatever goes through the batched calls must arrive exactly as through the
plain ones: the same bytes, in the same order, from the same address, with
the same datagrams refused.  Under REALTIME_INTEROP=required the batched
calls must exist (this is Linux CI).
"""

from __future__ import annotations

import os
import socket

import pytest
import pytest_twisted

from realtime.net import mmsg
from tests.conftest import require

LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}


def pair(family: int) -> tuple[socket.socket, socket.socket]:
    sockets = []
    for _ in range(2):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((LOOPBACK[family], 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sockets.append(s)
    return sockets[0], sockets[1]


def drain_plain(s: socket.socket) -> list:
    out = []
    while True:
        try:
            data, addr = s.recvfrom(mmsg.SLOT)
        except BlockingIOError:
            return out
        out.append((data, (addr[0], addr[1])))


def drain_batched(s: socket.socket) -> list:
    out = []
    while batch := mmsg.receive_batch(s.fileno()):
        out += batch
    return out


def payloads() -> list[bytes]:
    # every size class: empty, tiny, MTU-sized, a whole slot, and more than a slot
    sizes = [0, 1, 3, 100, 1200, 1500, mmsg.SLOT, mmsg.SLOT + 1, 9000] + list(range(2, 140, 7))
    return [os.urandom(n) for n in sizes]


@pytest.fixture(autouse=True, params=["python-fill", "c-fill"])
def batched_calls_exist(request, monkeypatch):
    """Every test twice: the vector filled by the Python loop, and by ``_mmsg.fill`` (C)."""
    require(mmsg.AVAILABLE, "recvmmsg/sendmmsg are not reachable (needs Linux and libc)")
    if request.param == "python-fill":
        monkeypatch.setattr(mmsg, "_fill", None)
    else:
        require(mmsg._fill is not None, "the C helper realtime/net/_mmsg.c is not built")


def test_every_payload_type_and_odd_addresses_go_out_in_order() -> None:
    """bytes, bytearray, memoryview; new, cached, unencodable and oversized entries mixed."""
    a, b = pair(socket.AF_INET)
    good = b.getsockname()
    mmsg._encoded.pop(good, None)  # new to the cache: encoded on the way
    datagrams = [(b"1", good), (bytearray(b"2"), good), (memoryview(b"3"), good),
                 (b"x" * (mmsg.SLOT + 1), good), (b"4", ("localhost", good[1])),
                 (b"5", good)] * 40
    failed = mmsg.send_batch(a.fileno(), datagrams, a)
    assert len(failed) == 40 and all(n > 0 for _, n in failed)  # a name: never resolved
    got = [d for d, _ in drain_batched(b)]
    assert got == [b"1", b"2", b"3", b"x" * mmsg.SLOT, b"5"] * 40
    assert [addr for addr, _ in mmsg.send_plain(a, datagrams)] == [addr for addr, _ in failed]
    a.close()
    b.close()


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_batched_and_plain_paths_carry_identical_datagrams(family) -> None:
    a, b = pair(family)
    destination = b.getsockname()[:2]
    datagrams = [(p, destination) for p in payloads()] * 3   # 3 x 28 > one 64-message call
    assert mmsg.send_batch(a.fileno(), datagrams, a) == []
    batched = drain_batched(b)
    assert mmsg.send_plain(a, datagrams) == []
    plain = drain_plain(b)
    source = a.getsockname()[:2]
    assert batched == plain
    assert [d for d, _ in batched] == [p[:mmsg.SLOT] for p, _ in datagrams]
    assert {addr for _, addr in batched} == {source}
    # cross-check: batched send read plainly, plain send read in batches
    mmsg.send_batch(a.fileno(), datagrams, a)
    crossed = drain_plain(b)
    mmsg.send_plain(a, datagrams)
    assert crossed == drain_batched(b) == plain
    a.close()
    b.close()


def test_many_sources_are_told_apart() -> None:
    sink = pair(socket.AF_INET)[0]
    senders = [pair(socket.AF_INET)[0] for _ in range(5)]
    for i, sender in enumerate(senders):
        sender.sendto(b"from %d" % i, sink.getsockname())
    got = drain_batched(sink)
    assert got == [(b"from %d" % i, s.getsockname()) for i, s in enumerate(senders)]


def test_a_refused_datagram_is_skipped_and_the_rest_still_go() -> None:
    a, b = pair(socket.AF_INET)
    good = b.getsockname()
    datagrams = [(b"1", good), (b"bad port", ("127.0.0.1", 0)), (b"2", good),
                 (b"wrong family", ("::1", 9)), (b"not an address", ("localhost", 9)),
                 (b"3", good), (b"x" * 70000, good), (b"4", good)]
    failed = mmsg.send_batch(a.fileno(), datagrams, a)
    assert [addr for addr, _ in failed] == [("127.0.0.1", 0), ("::1", 9), ("localhost", 9), good]
    assert all(number > 0 for _, number in failed)
    assert drain_batched(b) == [(b"%d" % i, a.getsockname()) for i in (1, 2, 3, 4)]
    assert [addr for addr, _ in mmsg.send_plain(a, datagrams)] == [addr for addr, _ in failed]
    assert drain_plain(b) == [(b"%d" % i, a.getsockname()) for i in (1, 2, 3, 4)]


def test_an_empty_socket_answers_eagain_as_an_empty_batch() -> None:
    a, b = pair(socket.AF_INET6)
    assert mmsg.receive_batch(b.fileno()) == []
    a.sendto(b"one", b.getsockname())
    assert mmsg.receive_batch(b.fileno()) == [(b"one", a.getsockname()[:2])]
    assert mmsg.receive_batch(b.fileno()) == []


def test_a_closed_descriptor_raises_oserror() -> None:
    a, b = pair(socket.AF_INET)
    fd = b.fileno()
    b.close()
    with pytest.raises(OSError):
        mmsg.receive_batch(fd)
    failed = mmsg.send_batch(fd, [(b"x", a.getsockname())], None)
    assert failed and failed[0][1] > 0


def test_sockaddr_codec_round_trips() -> None:
    for address in [("127.0.0.1", 1), ("10.1.2.3", 65535), ("::1", 3478),
                    ("2001:db8::7", 5000), ("::ffff:192.0.2.1", 9)]:
        assert mmsg.decode_address(mmsg.encode_address(address)) == address


class Collect:
    """A protocol taking whole batches; it echoes each batch back with one write_many."""

    def __init__(self) -> None:
        self.batches: list[list] = []
        self.transport = None

    def makeConnection(self, transport) -> None:
        self.transport = transport

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass

    def datagramsReceived(self, batch) -> None:
        self.batches.append(list(batch))
        assert self.transport.write_many(batch) == []


def _sleep(seconds: float):
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    d: Deferred = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


@pytest.mark.parametrize("batched", [True, False])
@pytest_twisted.ensureDeferred
async def test_a_batched_port_delivers_a_backlog_as_batches_and_echoes_it_intact(batched) -> None:
    from twisted.internet import reactor
    protocol = Collect()
    port = mmsg.BatchedUDP(reactor, batched=batched).listenUDP(0, protocol, "127.0.0.1")
    assert isinstance(port, mmsg.BatchedPort) and port.batched is batched
    port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    client.setblocking(False)
    sent = [os.urandom(20 + i) for i in range(300)]
    try:
        for data in sent:                       # a backlog builds while the reactor waits
            client.sendto(data, ("127.0.0.1", port.getHost().port))
        for _ in range(100):
            await _sleep(0.01)
            if sum(len(b) for b in protocol.batches) == len(sent):
                break
        got = [data for batch in protocol.batches for data, _ in batch]
        assert got == sent
        assert {addr for b in protocol.batches for _, addr in b} == {client.getsockname()}
        assert max(len(b) for b in protocol.batches) > 2      # read as batches, not one by one
        assert drain_plain(client) == [(d, ("127.0.0.1", port.getHost().port)) for d in sent]
    finally:
        client.close()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_burst_beyond_the_default_buffer_is_kept_for_the_reader() -> None:
    """2,000 datagrams of 1,000 bytes arrive while the reactor is busy: the port's buffer
    (SOCKET_BUFFER_BYTES, within net.core.rmem_max) keeps them all; the kernel's default
    (~208 KiB) kept about 90 and dropped the rest."""
    from twisted.internet import reactor
    protocol = Collect()
    port = mmsg.BatchedUDP(reactor, batched=True).listenUDP(0, protocol, "127.0.0.1")
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    client.setblocking(False)
    sent = [i.to_bytes(4, "big") + bytes(996) for i in range(2000)]
    try:
        for data in sent:                       # the reactor does not run meanwhile
            client.sendto(data, ("127.0.0.1", port.getHost().port))
        for _ in range(200):
            await _sleep(0.01)
            if sum(len(b) for b in protocol.batches) == len(sent):
                break
        got = [data for batch in protocol.batches for data, _ in batch]
        assert len(got) == len(sent) and got == sent
    finally:
        client.close()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_reuse_port_lets_workers_bind_one_batched_port_and_both_read() -> None:
    """``--workers``: every worker binds the media and TURN ports with SO_REUSEPORT; they
    stay batched ports (recvmmsg/sendmmsg, 4 MiB buffers), not Twisted's plain one."""
    from twisted.internet import reactor
    first, second = Collect(), Collect()
    a = mmsg.BatchedUDP(reactor, reuse_port=True).listenUDP(0, first, "127.0.0.1")
    port = a.getHost().port
    b = mmsg.BatchedUDP(reactor, reuse_port=True).listenUDP(port, second, "127.0.0.1")
    clients = []
    try:
        assert isinstance(b, mmsg.BatchedPort) and b.batched is mmsg.AVAILABLE
        assert b.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 1 << 20
        for i in range(64):  # the kernel spreads flows (source ports) over the two sockets
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            client.bind(("127.0.0.1", 0))
            client.sendto(b"flow %d" % i, ("127.0.0.1", port))
            clients.append(client)
        for _ in range(100):
            await _sleep(0.01)
            if sum(len(x) for p in (first, second) for x in p.batches) == 64:
                break
        assert sum(len(x) for x in first.batches) and sum(len(x) for x in second.batches)
    finally:
        for client in clients:
            client.close()
        await a.stopListening()
        await b.stopListening()


def test_fill_refuses_what_does_not_fit_its_buffers() -> None:
    """``_mmsg.fill`` stops (returns the index) at a payload over a slot or a name over its room."""
    fill = mmsg._load_fill()
    require(fill is not None, "the C helper realtime/net/_mmsg.c is not built")
    vector = mmsg._vectors()[1]
    good = ("127.0.0.1", 9)
    encoded = {good: mmsg.encode_address(good), ("::1", 9): b"x" * (mmsg.NAME + 1)}
    ok = (b"x" * mmsg.SLOT, good)
    args = (vector.pointer, vector.count, mmsg.SLOT, mmsg.NAME)
    assert fill(*args, [ok, ok, (b"x" * (mmsg.SLOT + 1), good), ok], 0, encoded) == 2
    assert fill(*args, [ok, (b"1", ("::1", 9))], 0, encoded) == 1
    assert fill(*args, [ok, (b"1", ("::2", 9))], 1, encoded) == 1   # not encoded yet
    assert fill(*args, [ok, [b"1", good]], 0, encoded) == 1        # not a 2-tuple
    assert fill(*args, [ok] * (vector.count + 5), 3, encoded) == vector.count + 3
    assert fill(vector.pointer, 2, mmsg.SLOT, mmsg.NAME, [ok] * 9, 0, encoded) == 2
