"""
Each hop forwards only the simulcast layers its subtree needs (issue 13), sans-I/O.

The three PullMachines of tests/cluster/test_pulls.py in a chain A -> B -> C
(fan-out 1), a simulcast publisher at A (Chromium's three-layer offer from
../shared, layers f/h/q), real SFU subscribers at B and C with their
``preferredRid``.  Each mirror reports upward what its subscribers and children
want (relay kind LAYERS); a parent relays a child only those layers, and asks
for a key frame of a layer a child newly wants, so that the switch completes.
"""

from __future__ import annotations

import struct

import pytest

from realtime.cluster.mirror import decode_layers, encode_layers, stream_id_of
from realtime.cluster.pulls import LAYERS_INTERVAL, LEASE
from realtime.cluster.relay import RelayKind, RelayPacketReceived
from realtime.cluster.track_media import media_from_json, media_to_json
from realtime.demux import PacketKind
from realtime.errors import DecodeError
from realtime.media.simulcast import SimulcastPreferences
from realtime.rtcp.feedback import PictureLossIndication
from realtime.rtcp.packet import decode_compound
from realtime.sdp import SessionDescription
from realtime.sfu.session import MediaRequest
from tests.cluster.test_pulls import Cluster
from tests.sfu.client import VP8_DELTA, VP8_KEY, Wire, answer_sfu_offer
from tests.sfu.test_session import new

SSRCS = {"f": 51, "h": 52, "q": 53}


class Chain:
    """A simulcast "screen" at A, mirrored A -> B -> C, subscribers by preferred rid."""

    def __init__(self, shared, at_b: str | None, at_c: str) -> None:
        sdp = (shared / "pcaps/generated/webrtc/webrtc-chromium-aiortc-simulcast.offer.sdp"
               ).read_text()
        offer = SessionDescription.parse(sdp)
        mid = next(m.mid for m in offer.media if m.kind == "video")
        self.cluster = cluster = Cluster()
        self.publisher = a = new(cluster.boards["a"])
        a.answer_offer(sdp, 0.0, publish={mid: "screen"})
        a.connection = Wire()
        media = offer.media_by_mid(mid)
        ids = {e.uri.rsplit(":", 1)[-1]: e.id for e in media.extensions}
        self.vp8 = next(c.payload_type for c in media.codecs if c.name == "VP8")
        self.mid, self.ids = mid, ids
        self.seq = 1
        self.send_all(0.5, named=True)          # A learns the layers from RtpStreamId
        screen = cluster.boards["a"].find("app", a.session_id, "screen")
        mirrored = media_from_json(media_to_json(screen.media))
        machines = cluster.machines
        self.mirror_b = machines["b"].mirror("app", a.session_id, "screen", "a", mirrored, 1.0)
        cluster.control(1.0)
        self.mirror_c = machines["c"].mirror("app", a.session_id, "screen", "a", mirrored, 1.0,
                                             parent="b")
        cluster.control(1.0)
        self.subscribers = {}
        if at_b is not None:
            self.subscribers["b"] = self.subscribe("b", self.mirror_b, at_b)
        self.subscribers["c"] = self.subscribe("c", self.mirror_c, at_c)
        self.layer_of = {stream_id_of(a.session_id, "screen", rid): rid for rid in SSRCS}
        self.now = 1.0
        self.tick()

    def subscribe(self, node: str, mirror, rid: str):
        session = new(self.cluster.boards[node])
        session.offer_media([MediaRequest("video", "subscribe", mirror,
                                          preferences=SimulcastPreferences(rid))], 1.0)
        session.apply_answer(answer_sfu_offer(session.pending_offer), 1.0)
        session.connection = Wire()
        return session

    def packet(self, rid: str, seq: int, payload: bytes, named: bool) -> bytes:
        if not named:
            return struct.pack("!BBHII", 0x80, self.vp8, seq, seq * 3000, SSRCS[rid]) + payload
        ext = bytes([self.ids["mid"] << 4 | len(self.mid) - 1]) + self.mid.encode() + \
            bytes([self.ids["rtp-stream-id"] << 4 | len(rid) - 1]) + rid.encode()
        ext += bytes(-len(ext) % 4)
        return struct.pack("!BBHIIHH", 0x90, self.vp8, seq, seq * 3000, SSRCS[rid], 0xBEDE,
                           len(ext) // 4) + ext + payload

    def send_all(self, now: float, named: bool = False, key: frozenset = frozenset(SSRCS)):
        """One packet of every layer (a key frame for the layers in ``key``)."""
        for rid in SSRCS:
            payload = VP8_KEY if rid in key else VP8_DELTA
            self.publisher.receive_media(PacketKind.RTP,
                                         self.packet(rid, self.seq, payload, named), now)
        self.seq += 1

    def tick(self) -> list[tuple]:
        """Advance LAYERS_INTERVAL: every machine's timer, control, relay frames (twice)."""
        self.now = round(self.now + LAYERS_INTERVAL, 3)
        frames = []
        for machine in self.cluster.machines.values():
            machine.handle_timer(self.now)
        self.cluster.control(self.now)
        for _ in range(3):
            frames += self.cluster.deliver(self.now)
        return frames

    def media_hops(self, key: frozenset = frozenset()) -> set[tuple[str, str, str]]:
        """Send one packet per layer; return the (from, to, rid) the relay carried."""
        self.send_all(self.now, key=key)
        frames = self.cluster.deliver(self.now) + self.cluster.deliver(self.now)
        return {(f[0], f[1], self.layer_of[f[3]]) for f in frames if f[2] == RelayKind.RTP}

    def publisher_plis(self) -> list[int]:
        return [p.media_ssrc for data in self.publisher.connection.rtcp
                for p in decode_compound(data) if isinstance(p, PictureLossIndication)]


def test_b_relays_only_q_to_c_and_a_sends_b_what_b_and_c_want(shared) -> None:
    chain = Chain(shared, at_b="h", at_c="q")
    chain.tick()
    assert chain.media_hops(key=frozenset(SSRCS)) == {
        ("a", "b", "h"), ("a", "b", "q"), ("b", "c", "q")}
    fanout_b = chain.cluster.machines["b"].fanouts[chain.mirror_b.stream_id]
    assert fanout_b.wants == {"c": frozenset({"q"})}
    assert chain.cluster.machines["a"].fanouts[chain.mirror_b.stream_id].wants == {
        "b": frozenset({"h", "q"})}
    for node, rid in (("b", "h"), ("c", "q")):      # each subscriber decodes its layer
        subscription = chain.subscribers[node].transceiver("0").subscription
        assert subscription.current_rid() == rid
        assert len(chain.subscribers[node].connection.rtp) == 1
    for _ in range(3):
        assert chain.media_hops() == {("a", "b", "h"), ("a", "b", "q"), ("b", "c", "q")}
    assert len(chain.subscribers["c"].connection.rtp) == 4


def test_a_relay_without_subscribers_of_its_own_carries_only_its_childrens_layer(shared):
    chain = Chain(shared, at_b=None, at_c="q")
    chain.tick()
    assert chain.media_hops(key=frozenset(SSRCS)) == {("a", "b", "q"), ("b", "c", "q")}
    assert len(chain.subscribers["c"].connection.rtp) == 1


def test_a_newly_wanted_layer_is_asked_for_up_the_tree_and_switched_to(shared) -> None:
    chain = Chain(shared, at_b="h", at_c="q")
    chain.tick()
    chain.media_hops(key=frozenset(SSRCS))
    plis = len(chain.publisher_plis())
    subscription = chain.subscribers["c"].transceiver("0").subscription
    subscription.update_preferences(SimulcastPreferences("f"), chain.now)
    chain.tick()                    # C reports {f, q}; B passes {f, h, q} up; A asks for f
    assert chain.cluster.machines["a"].fanouts[chain.mirror_b.stream_id].wants == {
        "b": frozenset({"f", "h", "q"})}
    assert SSRCS["f"] in chain.publisher_plis()[plis:]
    # q goes on until f's key frame arrives; then C switches, and q is no longer wanted
    assert chain.media_hops() == {("a", "b", "f"), ("a", "b", "h"), ("a", "b", "q"),
                                  ("b", "c", "f"), ("b", "c", "q")}
    assert subscription.current_rid() == "q" and subscription.selector.target == "f"
    chain.media_hops(key=frozenset({"f"}))
    assert subscription.current_rid() == "f"
    chain.tick()
    assert chain.media_hops() == {("a", "b", "f"), ("a", "b", "h"), ("b", "c", "f")}


def test_a_child_that_never_reported_gets_every_layer_and_lost_reports_heal(shared) -> None:
    chain = Chain(shared, at_b="h", at_c="q")
    cluster = chain.cluster
    fanout_b = cluster.machines["b"].fanouts[chain.mirror_b.stream_id]
    fanout_b.wants.clear()                      # as if C's report was lost
    fanout_b._routes.clear()
    assert ("b", "c", "h") in chain.media_hops(key=frozenset(SSRCS))   # all B has: h and q
    for _ in range(int(LEASE / LAYERS_INTERVAL) + 1):   # C reports again at its lease
        chain.tick()
    assert fanout_b.wants == {"c": frozenset({"q"})}


def test_layers_payloads_round_trip_and_hostile_ones_are_dropped(shared) -> None:
    assert decode_layers(encode_layers(None)) is None
    assert decode_layers(encode_layers(frozenset())) == frozenset()
    assert decode_layers(encode_layers(frozenset({"f", "q"}))) == frozenset({"f", "q"})
    for hostile in (b"\xff", b",", b"a,,b", b"x" * 40, b",".join([b"a"] * 17), b"a b"):
        with pytest.raises(DecodeError):
            decode_layers(hostile)
    chain = Chain(shared, at_b="h", at_c="q")
    machine_b = chain.cluster.machines["b"]
    before = dict(machine_b.fanouts[chain.mirror_b.stream_id].wants)
    for payload in (b"\xff\x00", b"*" * 300):
        machine_b.receive_relay(RelayPacketReceived("c", RelayKind.LAYERS,
                                                    chain.mirror_b.stream_id, payload), 9.0)
    machine_b.receive_relay(RelayPacketReceived("a", RelayKind.LAYERS, 12345, b"q"), 9.0)
    assert machine_b.counters["layers-malformed"] == 2
    assert machine_b.counters["layers-no-fanout"] == 1
    assert machine_b.fanouts[chain.mirror_b.stream_id].wants == before
