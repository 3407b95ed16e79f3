"""Two associations over a fake network: handshake, transfer under loss, PR-SCTP, reset, close."""

from __future__ import annotations

import random

import pytest

from realtime.errors import LocalProtocolError
from realtime.sctp.association import Association, AssociationConfig
from realtime.sctp.chunks import (
    CookieEchoChunk, DataChunk, ErrorChunk, ForwardTsnChunk, HeartbeatAckChunk, HeartbeatChunk,
    InitAckChunk, InitChunk, UnknownChunk,
)
from realtime.sctp.events import (
    AssociationAborted, AssociationClosed, AssociationEstablished, AssociationRestarted,
    DataReceived, OutgoingStreamsReset, StreamsReset,
)
from realtime.sctp.packet import SctpPacket
from realtime.sctp.parameters import CauseCode, StateCookie
from realtime.sctp.states import AssociationState
from tests.sctp.network import LossyNetwork


def seeded(seed: int):
    rng = random.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


class Recorder:
    """Collect the events of both associations as the network runs."""

    def __init__(self, a, b):
        self.a, self.b = a, b
        self.events = {"a": [], "b": []}

    def drain(self):
        for name, assoc in (("a", self.a), ("b", self.b)):
            while (event := assoc.next_event()) is not None:
                self.events[name].append(event)

    def of(self, name, kind):
        self.drain()
        return [e for e in self.events[name] if isinstance(e, kind)]

    def data(self, name):
        return b"".join(e.data for e in self.of(name, DataReceived))


def pair(seed=1, config=AssociationConfig(), **impairments):
    a = Association(config, random=seeded(seed))
    b = Association(config, random=seeded(seed + 100))
    net = LossyNetwork(a, b, seed=seed, **impairments)
    return a, b, net, Recorder(a, b)


def connected(seed=1, **impairments):
    a, b, net, rec = pair(seed, **impairments)
    a.connect(net.now)
    net.run_until(lambda: a.state == b.state == "established")
    return a, b, net, rec


def chunk_types(data: bytes) -> list[type]:
    return [type(c) for c in SctpPacket.decode(data).chunks]


def test_handshake_keeps_no_state_before_cookie_echo():
    a, b, net, rec = pair()
    a.connect(0.0)
    (init,) = a.packets_to_send(0.0)
    assert chunk_types(init) == [InitChunk] and SctpPacket.decode(init).verification_tag == 0
    b.receive_packet(init, 0.01)
    (init_ack,) = b.packets_to_send(0.01)
    assert chunk_types(init_ack) == [InitAckChunk]
    # the listener answered but remembers nothing: no tag, no TSN state, no timer
    assert (b.state, b.local_tag, b.transfer, b.get_timer()) == ("closed", 0, None, None)
    a.receive_packet(init_ack, 0.02)
    (echo,) = a.packets_to_send(0.02)
    assert chunk_types(echo) == [CookieEchoChunk] and a.state == "cookie-echoed"
    b.receive_packet(echo, 0.03)
    assert b.state == "established"
    a.receive_packet(b.packets_to_send(0.03)[0], 0.04)
    assert a.state == "established"
    assert (a.local_tag, a.peer_tag) == (b.peer_tag, b.local_tag)
    assert rec.of("a", AssociationEstablished) and rec.of("b", AssociationEstablished)


def test_init_collision_establishes_one_association():
    a, b, net, rec = pair(seed=3)
    a.connect(0.0)
    b.connect(0.0)
    net.run_until(lambda: a.state == b.state == "established")
    assert (a.local_tag, a.peer_tag) == (b.peer_tag, b.local_tag)
    a.send(1, 53, b"after collision", net.now)
    net.run_until(lambda: rec.data("b") == b"after collision")


def test_ten_megabytes_over_a_lossy_reordering_duplicating_network():
    a, b, net, rec = connected(seed=5, loss=0.05, duplicate=0.02, jitter=0.02)
    payload = random.Random(9).randbytes(10 * 1024 * 1024)
    for offset in range(0, len(payload), 65536):
        a.send(offset // 65536 % 4, 53, payload[offset:offset + 65536], net.now)
    b.send(0, 51, b"and back", net.now)
    got = []
    total = [0]

    def done():
        while (event := b.next_event()) is not None:
            if isinstance(event, DataReceived):
                got.append(event)
                total[0] += len(event.data)
        return total[0] >= len(payload)

    net.run_until(done, limit=3600)
    by_stream = {}
    for event in got:
        by_stream.setdefault(event.stream_id, []).append(event.data)
    expected = {}
    for offset in range(0, len(payload), 65536):
        expected.setdefault(offset // 65536 % 4, []).append(payload[offset:offset + 65536])
    assert by_stream == expected  # every message, in order per stream, byte for byte
    assert net.dropped > 100  # the loss really happened
    assert b.transfer.receiver.cumulative_tsn == a.transfer.transmitter.next_tsn - 1
    net.run_until(lambda: rec.data("a") == b"and back")


def test_peer_restart_is_detected_and_data_flows_again():
    a, b, net, rec = connected(seed=7)
    a.send(0, 53, b"before", net.now)
    net.run_until(lambda: rec.data("b") == b"before")
    old_tag = a.local_tag
    restarted = Association(random=seeded(999))  # b lost its state and comes back
    net.b = rec.b = restarted
    rec.events["b"] = []
    restarted.connect(net.now)
    net.run_until(lambda: restarted.state == "established"
                  and bool(rec.of("a", AssociationRestarted)))
    assert a.state == "established" and a.local_tag != old_tag
    assert (a.local_tag, a.peer_tag) == (restarted.peer_tag, restarted.local_tag)
    a.send(0, 53, b"after", net.now)  # SSN 0 again: the stream started over
    restarted.send(0, 53, b"hello again", net.now)
    net.run_until(lambda: rec.data("b") == b"after" and rec.data("a") == b"hello again")


def test_abort_closes_both_sides_and_a_new_association_can_start():
    a, b, net, rec = connected(seed=11)
    a.abort("going away")
    net.run_until(lambda: bool(rec.of("b", AssociationAborted)))
    assert rec.of("b", AssociationAborted) == [
        AssociationAborted("user initiated abort: going away")]
    assert rec.of("a", AssociationAborted) == [AssociationAborted("aborted locally: going away")]
    assert a.state == b.state == "closed"
    b.connect(net.now)
    net.run_until(lambda: a.state == b.state == "established")
    b.send(3, 53, b"fresh", net.now)
    net.run_until(lambda: rec.data("a") == b"fresh")


def test_abort_with_a_wrong_tag_is_ignored():
    a, b, net, rec = connected(seed=12)
    forged = SctpPacket(5000, 5000, b.local_tag ^ 1, (
        UnknownChunk(6, 0, b""),)).encode()  # an ABORT (type 6) with a guessed tag
    b.receive_packet(forged, net.now)
    assert b.state == "established" and b.drops["verification-tag"] == 1


def test_shutdown_waits_for_data_then_closes_both():
    a, b, net, rec = connected(seed=13, loss=0.05)
    for i in range(50):
        a.send(1, 53, bytes([i]) * 3000, net.now)
    a.shutdown(net.now)
    with pytest.raises(LocalProtocolError):
        a.send(1, 53, b"too late", net.now)
    net.run_until(lambda: a.state == b.state == "closed", limit=600)
    assert len(rec.of("b", DataReceived)) == 50
    assert rec.of("a", AssociationClosed) and rec.of("b", AssociationClosed)


def test_unordered_max_retransmits_zero_skips_losses_without_stalling():
    a, b, net, rec = connected(seed=17)
    lost = []

    def drop_every_fifth_data(sender, data):
        if sender is a and DataChunk in chunk_types(data):
            lost.append(data)
            return len(lost) % 5 != 0
        return True

    net.filter = drop_every_fifth_data
    for i in range(200):
        a.send(2, 53, i.to_bytes(2, "big") * 500, net.now, ordered=False, max_retransmits=0)
    net.run_until(lambda: a.transfer.transmitter.idle and b.transfer.receiver.cumulative_tsn
                  == a.transfer.transmitter.next_tsn - 1, limit=120)
    received = {int.from_bytes(e.data[:2], "big") for e in rec.of("b", DataReceived)}
    assert 140 <= len(received) < 200  # the lost ones are gone for good ...
    assert max(received) >= 195  # ... and later messages were not held back
    assert net.now < 30


def test_ordered_partial_reliability_skips_ssns_with_forward_tsn():
    a, b, net, rec = connected(seed=19)
    sent_forward = []

    def drop_first_data(sender, data):
        kinds = chunk_types(data)
        if ForwardTsnChunk in kinds:
            sent_forward.append(data)
        if sender is a and DataChunk in kinds and not getattr(drop_first_data, "done", False):
            drop_first_data.done = True
            return False
        return True

    net.filter = drop_first_data
    for i in range(10):
        a.send(4, 53, bytes([i]) * 1100, net.now, max_retransmits=0)  # one per packet
    net.run_until(lambda: len(rec.of("b", DataReceived)) == 9, limit=60)
    assert [e.data[0] for e in rec.of("b", DataReceived)] == list(range(1, 10))
    assert sent_forward


def test_lifetime_expires_queued_messages():
    a, b, net, rec = connected(seed=23)
    net.filter = lambda sender, data: sender is not a or DataChunk not in chunk_types(data)
    a.send(0, 53, b"x" * 500, net.now, lifetime=0.5)
    net.run_until(lambda: net.now > 2.0)
    net.filter = None
    a.send(0, 53, b"later", net.now)
    net.run_until(lambda: rec.data("b") == b"later", limit=30)


def test_stream_reset_both_ways_and_ssn_restart():
    a, b, net, rec = connected(seed=29)
    for i in range(3):
        a.send(1, 53, b"m%d" % i, net.now)
    net.run_until(lambda: len(rec.of("b", DataReceived)) == 3)
    a.reset_streams([1])
    net.run_until(lambda: bool(rec.of("a", OutgoingStreamsReset)))
    assert rec.of("b", StreamsReset) == [StreamsReset((1,))]
    assert rec.of("a", OutgoingStreamsReset) == [OutgoingStreamsReset((1,))]
    a.send(1, 53, b"reborn", net.now)  # SSN 0 again, delivered in order
    net.run_until(lambda: len(rec.of("b", DataReceived)) == 4)
    assert rec.of("b", DataReceived)[-1].data == b"reborn"


def test_stream_reset_waits_for_outstanding_data():
    a, b, net, rec = connected(seed=31)
    dropped = []

    def drop_one(sender, data):
        if sender is a and DataChunk in chunk_types(data) and not dropped:
            dropped.append(data)
            return False
        return True

    net.filter = drop_one
    a.send(1, 53, b"late", net.now)
    a.reset_streams([1])
    net.run_until(lambda: bool(rec.of("a", OutgoingStreamsReset)), limit=30)
    # the reset was performed only after "late" arrived (RFC 6525 §5.2.2)
    assert rec.data("b") == b"late"
    kinds = [type(e) for e in rec.events["b"]]
    assert kinds.index(DataReceived) < kinds.index(StreamsReset)


def test_fast_retransmit_recovers_before_t3():
    a, b, net, rec = connected(seed=37)
    count = []

    def drop_third_data(sender, data):
        if sender is a and DataChunk in chunk_types(data):
            count.append(1)
            return len(count) != 3
        return True

    net.filter = drop_third_data
    start = net.now
    for i in range(20):
        a.send(0, 53, bytes(1000), net.now)
    net.run_until(lambda: len(rec.of("b", DataReceived)) == 20)
    assert net.now - start < a.rto.minimum  # recovered without waiting for T3-rtx


def test_init_retransmits_then_gives_up():
    a, b, net, rec = pair(seed=41)
    net.filter = lambda sender, data: False
    a.connect(0.0)
    net.run_until(lambda: bool(rec.of("a", AssociationAborted)), limit=2000)
    assert net.sent[id(a)] == 1 + a.config.max_init_retransmits
    assert rec.of("a", AssociationAborted) == [
        AssociationAborted("no answer to INIT / COOKIE ECHO")]


def test_forged_cookie_and_bad_init_tag_are_dropped(shared):
    a, b, net, rec = pair(seed=43)
    forged = SctpPacket(5000, 5000, 1234, (CookieEchoChunk(b"\0" * 80),)).encode()
    b.receive_packet(forged, 0.0)
    assert b.state == "closed" and b.drops == {"cookie": 1}
    bad = (shared / "pcaps/aiortc/sctp_init_bad_verification.bin").read_bytes()
    b.receive_packet(bad, 0.0)
    assert b.drops["init-verification-tag"] == 1 and b.packets_to_send(0.0) == []
    good = (shared / "pcaps/aiortc/sctp_init.bin").read_bytes()
    b.receive_packet(good, 0.0)
    (answer,) = b.packets_to_send(0.0)
    packet = SctpPacket.decode(answer)
    assert packet.verification_tag == 0x24521703  # the INIT's initiate tag
    assert any(isinstance(p, StateCookie) for p in packet.chunks[0].parameters)


def test_stale_cookie_is_dropped():
    a, b, net, rec = pair(seed=47)
    a.connect(0.0)
    b.receive_packet(a.packets_to_send(0.0)[0], 0.0)
    a.receive_packet(b.packets_to_send(0.0)[0], 0.0)
    echo = a.packets_to_send(0.0)[0]
    b.receive_packet(echo, b.config.cookie_lifetime + 1)
    assert b.state == "closed" and b.drops == {"cookie": 1}


def test_heartbeat_measures_rtt_and_unreachable_peer_aborts():
    a, b, net, rec = connected(seed=53)
    seen = []
    net.filter = lambda sender, data: seen.append(chunk_types(data)) or True
    net.run_until(lambda: a.rto.srtt is not None and [HeartbeatAckChunk] in seen, limit=100)
    assert [HeartbeatChunk] in seen
    net.filter = lambda sender, data: False
    net.run_until(lambda: a.state == "closed" and b.state == "closed", limit=5000)
    assert "heartbeats unanswered" in rec.of("a", AssociationAborted)[0].reason


def test_unrecognised_chunk_is_reported():
    a, b, net, rec = connected(seed=59)
    packet = SctpPacket(5000, 5000, b.local_tag, (UnknownChunk(0x7F, 0, b"zz"),)).encode()
    b.receive_packet(packet, net.now)
    (reply,) = b.packets_to_send(net.now)
    (error,) = SctpPacket.decode(reply).chunks
    assert isinstance(error, ErrorChunk)
    assert error.causes[0].code == CauseCode.UNRECOGNIZED_CHUNK_TYPE


def test_send_before_established_is_a_local_error():
    a = Association(random=seeded(61))
    with pytest.raises(LocalProtocolError):
        a.send(0, 53, b"x", 0.0)
    with pytest.raises(LocalProtocolError):
        a.reset_streams([0])


def test_states_are_association_state_members_through_a_whole_life():
    """States are :class:`AssociationState` members (RFC 9260 §4) that print as their names."""
    a, b, net, _ = pair(seed=21)
    assert a.state is AssociationState.CLOSED
    a.connect(net.now)
    assert a.state is AssociationState.COOKIE_WAIT and str(a.state) == "cookie-wait"
    net.run_until(lambda: a.state == b.state == "established")
    assert a.state is b.state is AssociationState.ESTABLISHED
    a.shutdown(net.now)
    net.run_until(lambda: a.state == b.state == "closed", limit=600)
    assert a.state is b.state is AssociationState.CLOSED
