"""SctpTransport (realtime.peer.sctp_transport): two transports over a lossy fake network."""

from __future__ import annotations

import random

import pytest

from realtime.datachannel.channels import Ppid
from realtime.datachannel.dcep import DataChannelAck, DataChannelOpen, decode_dcep
from realtime.errors import LocalProtocolError
from realtime.peer.sctp_transport import (
    ChannelClosed, ChannelOpened, MessageReceived, SctpTransport, TransportClosed,
)
from realtime.sctp.chunks import DataChunk
from realtime.sctp.packet import SctpPacket
from tests.sctp.network import LossyNetwork


def seeded(seed):
    rng = random.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


class Pair:
    def __init__(self, seed=1, **impairments):
        self.a = SctpTransport("client", random=seeded(seed))
        self.b = SctpTransport("server", random=seeded(seed + 1))
        self.net = LossyNetwork(self.a, self.b, seed=seed, **impairments)
        self.events = {"a": [], "b": []}

    def drain(self):
        for name in ("a", "b"):
            transport = getattr(self, name)
            while (event := transport.next_event()) is not None:
                self.events[name].append(event)

    def of(self, name, kind):
        self.drain()
        return [e for e in self.events[name] if isinstance(e, kind)]

    def run(self, condition, limit=120):
        self.net.run_until(lambda: (self.drain(), condition())[1], limit=limit)


def started(seed=1, **impairments):
    pair = Pair(seed, **impairments)
    pair.a.start(0.0)
    pair.b.start(0.0)  # both send INIT, as browsers do
    pair.run(lambda: pair.a.connected and pair.b.connected)
    return pair


def test_in_band_open_sends_dcep_and_peer_acks():
    pair = started()
    seen = []
    pair.net.filter = lambda sender, data: seen.append((sender, data)) or True
    channel = pair.a.open_channel("chat", protocol="json")
    assert channel.id % 2 == 0  # DTLS client: even ids (RFC 8832 §6)
    pair.run(lambda: bool(pair.of("b", ChannelOpened)))
    assert pair.of("a", ChannelOpened) == [ChannelOpened(channel)]
    assert pair.of("b", ChannelOpened)[0].channel == channel
    pair.run(lambda: pair.a.channels.get(channel.id).acknowledged)

    def dcep_from(sender):
        return [decode_dcep(c.user_data) for s, d in seen if s is sender
                for c in SctpPacket.decode(d).chunks
                if isinstance(c, DataChunk) and c.ppid == Ppid.DCEP]

    assert dcep_from(pair.a) == [DataChannelOpen.for_channel("chat", "json")]
    assert dcep_from(pair.b) == [DataChannelAck()]
    assert pair.b.open_channel("reply").id % 2 == 1  # DTLS server: odd ids


def test_messages_text_binary_empty_and_large_in_order_under_loss():
    pair = started(seed=3, loss=0.05, duplicate=0.02, jitter=0.01)
    channel = pair.a.open_channel("reliable")
    pair.run(lambda: bool(pair.of("b", ChannelOpened)))
    sent = [f"text {i}" for i in range(50)] + ["", b"", b"\x00\x01", bytes(range(256)) * 256]
    for message in sent:
        pair.a.send(channel.id, message)
    pair.run(lambda: len(pair.of("b", MessageReceived)) == len(sent))
    received = pair.of("b", MessageReceived)
    assert [m.data for m in received] == sent
    assert [m.is_binary for m in received[-4:]] == [False, True, True, True]
    assert received[-1].ppid == Ppid.BINARY and len(received[-1].data) == 65536


def test_negotiated_channels_open_without_dcep():
    pair = Pair(seed=5)
    a_channel = pair.a.open_channel("neg", id=9, negotiated=True)
    pair.b.open_channel("neg", id=9, negotiated=True)
    pair.a.start(0.0)
    pair.run(lambda: bool(pair.of("a", ChannelOpened)) and bool(pair.of("b", ChannelOpened)))
    pair.a.send(9, b"hi")
    pair.run(lambda: bool(pair.of("b", MessageReceived)))
    assert pair.of("b", MessageReceived) == [MessageReceived(9, b"hi", Ppid.BINARY)]
    assert a_channel.negotiated


def test_unordered_max_retransmits_zero_keeps_delivering_under_loss():
    pair = started(seed=7)
    channel = pair.a.open_channel("lossy", ordered=False, max_retransmits=0)
    pair.run(lambda: bool(pair.of("b", ChannelOpened)))
    count = []

    def drop_some(sender, data):
        chunks = SctpPacket.decode(data).chunks
        if sender is pair.a and any(isinstance(c, DataChunk) for c in chunks):
            count.append(1)
            return len(count) % 7 != 0
        return True

    pair.net.filter = drop_some
    for i in range(100):
        pair.a.send(channel.id, i.to_bytes(2, "big") * 500)  # one packet each
    association = pair.a.association
    pair.run(lambda: association.transfer.transmitter.idle, limit=60)
    received = [int.from_bytes(m.data[:2], "big") for m in pair.of("b", MessageReceived)]
    assert 80 <= len(received) < 100 and max(received) >= 95
    assert pair.net.now < 20  # no stall waiting on lost messages


def test_close_resets_both_directions():
    pair = started(seed=11)
    channel = pair.a.open_channel("bye")
    pair.run(lambda: bool(pair.of("b", ChannelOpened)))
    pair.a.close_channel(channel.id)
    with pytest.raises(LocalProtocolError):
        pair.a.send(channel.id, "closing")
    pair.run(lambda: bool(pair.of("a", ChannelClosed)) and bool(pair.of("b", ChannelClosed)))
    assert pair.of("b", ChannelClosed) == [ChannelClosed(channel.id)]
    again = pair.a.open_channel("again")
    assert again.id == channel.id  # the id is free once both directions are reset
    pair.run(lambda: len(pair.of("b", ChannelOpened)) == 2)


def test_send_limits():
    pair = started(seed=13)
    pair.a.remote_max_message_size = 1000
    channel = pair.a.open_channel("x")
    with pytest.raises(LocalProtocolError, match="exceeds the peer's max-message-size 1000"):
        pair.a.send(channel.id, bytes(1001))
    with pytest.raises(LocalProtocolError, match="is not open"):
        pair.a.send(channel.id + 2, b"nobody")
    with pytest.raises(LocalProtocolError, match="needs an id"):
        pair.a.open_channel("n", negotiated=True)


def test_abort_closes_channels_and_transport():
    pair = started(seed=17)
    pair.a.open_channel("one")
    pair.run(lambda: bool(pair.of("b", ChannelOpened)))
    pair.a.association.abort("done")
    pair.run(lambda: bool(pair.of("b", TransportClosed)))
    assert pair.of("b", ChannelClosed) and pair.of("a", ChannelClosed)
    assert pair.of("b", TransportClosed)[0].reason == "user initiated abort: done"
