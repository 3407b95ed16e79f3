"""
Cross-node pulls, sans-I/O: three nodes' PullMachines over a scripted relay, real SFU sessions.

Node A's switchboard holds the publisher (tests/sfu: a real SfuSession whose
connection is a recording Wire); nodes B and C pull its tracks through
mirrors.  The "relay" is a list of frames the test delivers (or drops) by
hand, and the clock is the ``now`` each call is given.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as st

from realtime.cluster.pulls import IDLE_GRACE, LEASE, MirrorTrack, PullMachine, stream_id_of
from realtime.cluster.relay import RelayKind, RelayPacketReceived
from realtime.cluster.track_media import media_from_json, media_to_json
from realtime.demux import PacketKind
from realtime.errors import DecodeError
from realtime.rtcp.feedback import GenericNack, PictureLossIndication
from realtime.rtcp.packet import decode_compound
from realtime.sfu.session import MediaRequest
from realtime.sfu.switchboard import Switchboard
from tests.sfu.client import VP8_DELTA, VP8_KEY, Wire, answer_sfu_offer, rtp
from tests.sfu.test_session import CAM, MIC, counting_random, header, new, publisher

MEMBERS = {"a": ("10.0.0.1", 7000), "b": ("10.0.0.2", 7000), "c": ("10.0.0.3", 7000)}
BY_ADDRESS = {address: node for node, address in MEMBERS.items()}


class Cluster:
    """Three nodes, their switchboards and PullMachines, and the frames between them."""

    def __init__(self) -> None:
        self.boards = {n: Switchboard(random=counting_random()) for n in MEMBERS}
        self.frames: list[tuple[str, str, int, int, bytes]] = []   # from, to, kind, id, payload
        self.seals = {n: 0 for n in MEMBERS}
        self.wakes: list[str] = []      # nodes whose timer had to be re-read (a gap, a PLI)
        self.machines = {n: PullMachine(n, lambda n=n: self.boards[n], self._sender(n),
                                        wake=lambda n=n: self.wakes.append(n))
                         for n in MEMBERS}
        for machine in self.machines.values():
            machine.set_members(MEMBERS)
        self.publisher = publisher(self.boards["a"])
        self.session_id = self.publisher.session_id

    def _sender(self, node: str):
        def send(kind, stream_id, payload, addresses):
            self.seals[node] += 1
            for address in addresses:
                self.frames.append((node, BY_ADDRESS[address], kind, stream_id, bytes(payload)))
        return send

    def control(self, now: float) -> list[tuple[str, str, str]]:
        """Deliver every queued control message; return (from, to, action) of each."""
        seen = []
        for node, machine in self.machines.items():
            for to, action, session_id, name in machine.control_to_send():
                seen.append((node, to, action))
                self.machines[to].receive_control(action, node, session_id, name, now)
        return seen

    def deliver(self, now: float, drop=lambda frame: False) -> list[tuple]:
        """Deliver the relay frames queued so far (except those ``drop`` picks); return them."""
        frames, self.frames = self.frames, []
        for frame in frames:
            sender, to, kind, stream_id, payload = frame
            if not drop(frame):
                self.machines[to].receive_relay(
                    RelayPacketReceived(sender, kind, stream_id, payload), now)
        return frames

    def mirror(self, node: str, name: str, now: float = 1.0) -> MirrorTrack:
        track = self.boards["a"].find("app", self.session_id, name)
        media = media_from_json(media_to_json(track.media))   # as the TrackRecord carries it
        mirror = self.machines[node].mirror("app", self.session_id, name, "a", media, now)
        assert mirror is not None
        return mirror

    def subscribe(self, node: str, name: str, now: float = 1.0):
        """A new session on ``node`` pulling ``name`` (found in its board, as the API does)."""
        board = self.boards[node]
        track = board.find("app", self.session_id, name)
        b = new(board)
        b.offer_media([MediaRequest(track.kind, "subscribe", track)], now)
        b.apply_answer(answer_sfu_offer(b.pending_offer), now)
        b.connection = Wire()
        return b

    def send_video(self, first: int, count: int, now: float) -> None:
        for seq in range(first, first + count):
            payload = VP8_KEY if seq == first else VP8_DELTA
            self.publisher.receive_media(PacketKind.RTP, rtp(CAM, seq, 96, payload, ts=seq * 3000),
                                         now)


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


def upstream_plis(session, since: int = 0) -> int:
    return sum(isinstance(p, PictureLossIndication)
               for data in session.connection.rtcp[since:] for p in decode_compound(data))


def test_media_description_round_trips_and_hostile_text_is_a_decode_error(cluster) -> None:
    track = cluster.boards["a"].find("app", cluster.session_id, "cam")
    media = media_from_json(media_to_json(track.media))
    assert media.codecs == track.media.codecs and media.extensions == track.media.extensions
    assert [s.ssrc for s in media.remote_streams] == [CAM]
    for text in ("", "[]", '{"codecs": 5}', '{"kind":"video","mid":"1","codecs":[],'
                 '"extensions":[],"streams":[],"rids":[]}', "{" * 10000):
        with pytest.raises(DecodeError):
            media_from_json(text)


def test_each_packet_crosses_once_per_node_whatever_the_subscribers(cluster) -> None:
    mirror = cluster.mirror("b", "cam")
    assert cluster.control(1.0) == [("b", "a", "pull")]
    assert cluster.boards["b"].find("app", cluster.session_id, "cam") is mirror
    subscribers = [cluster.subscribe("b", "cam") for _ in range(3)]
    cluster.deliver(1.0)                        # B's PLI for its first subscriber
    cluster.send_video(100, 10, 1.1)
    frames = cluster.deliver(1.1)
    rtp_frames = [f for f in frames if f[2] == RelayKind.RTP]
    assert len(rtp_frames) == 10 and {f[1] for f in rtp_frames} == {"b"}
    assert {f[3] for f in rtp_frames} == {stream_id_of(cluster.session_id, "cam")}
    for b in subscribers:                       # every subscriber got every packet, rewritten
        assert len(b.connection.rtp) == 10
        assert {header(p)[4] for p in b.connection.rtp} == {b.transceiver("0").send.ssrc}
    # a second node: one seal per packet still, one frame per node
    cluster.mirror("c", "cam")
    cluster.control(1.2)
    cluster.subscribe("c", "cam")
    cluster.deliver(1.2)
    seals = cluster.seals["a"]
    cluster.send_video(110, 10, 1.3)
    frames = [f for f in cluster.deliver(1.3) if f[2] == RelayKind.RTP]
    assert sorted(f[1] for f in frames) == ["b"] * 10 + ["c"] * 10
    assert cluster.seals["a"] - seals == 10
    fanout = cluster.machines["a"].fanouts[mirror.stream_id]
    assert (fanout.packets, fanout.frames) == (20, 30)
    assert cluster.machines["a"].stats()["fanouts"][f"{cluster.session_id}/cam"]["nodes"] == \
        ["b", "c"]


def test_b_asks_a_only_for_what_b_lacks_and_answers_its_subscribers_itself(cluster) -> None:
    cluster.mirror("b", "cam")
    cluster.control(1.0)
    b = cluster.subscribe("b", "cam")
    cluster.deliver(1.0)
    cluster.send_video(100, 4, 2.0)
    cluster.deliver(2.0)
    cluster.wakes.clear()
    cluster.send_video(104, 6, 2.0)
    lost = {104, 107}
    cluster.deliver(2.0, drop=lambda f: f[2] == RelayKind.RTP
                    and header(f[4])[2] in lost)
    assert set(cluster.wakes) == {"b"}          # the gaps woke B's timer (no wake without)
    forwarded = [header(p)[2] for p in b.connection.rtp]
    assert len(forwarded) == 8
    machine_b = cluster.machines["b"]
    machine_b.handle_timer(2.01)                # past the reorder delay: B NACKs its gaps
    frames = cluster.deliver(2.01)
    nacks = [p for f in frames if f[2] == RelayKind.RTCP for p in decode_compound(f[4])
             if isinstance(p, GenericNack)]
    assert [sorted(n.lost_sequence_numbers()) for n in nacks] == [sorted(lost)]
    repairs = [f for f in cluster.deliver(2.01) if f[2] == RelayKind.RTP_REPAIR]
    assert sorted(header(f[4])[2] for f in repairs) == sorted(lost)
    assert len(b.connection.rtp) == 10          # the repairs reached the subscriber
    # The publisher saw no NACK at all: A answered from its own buffer.
    assert cluster.publisher.rtcp.counters()["nacksSentUpstream"] == 0
    assert not any(isinstance(p, GenericNack) for data in cluster.publisher.connection.rtcp
                   for p in decode_compound(data))
    # The subscriber's NACK of a packet B has is answered at B: nothing crosses the link.
    ours = b.transceiver("0").send.ssrc
    wanted = header(b.connection.rtp[2])[2]
    b.receive_media(PacketKind.RTCP, GenericNack.from_lost(9, ours, [wanted]).encode(), 2.1)
    assert b.rtcp.counters()["retransmissionsAnswered"] == 1
    machine_b.handle_timer(2.2)
    assert cluster.deliver(2.2) == []
    assert machine_b.stats()["mirrors"][f"{cluster.session_id}/cam"]["nacksSent"] == 1


def test_keyframe_requests_are_aggregated_at_b_and_at_a(cluster) -> None:
    for node in ("b", "c"):
        cluster.mirror(node, "cam")
    cluster.control(1.0)
    subscribers = {n: [cluster.subscribe(n, "cam") for _ in range(3)] for n in ("b", "c")}
    cluster.send_video(100, 3, 1.1)
    cluster.deliver(1.1)
    cluster.send_video(103, 3, 2.0)             # a key frame at 103 satisfies earlier asks
    cluster.deliver(2.0)
    before = len(cluster.publisher.connection.rtcp)
    plis_before = upstream_plis(cluster.publisher)
    for node, sessions in subscribers.items():
        for session in sessions:               # six subscribers on two nodes ask at once
            ours = session.transceiver("0").send.ssrc
            session.receive_media(PacketKind.RTCP, PictureLossIndication(9, ours).encode(), 3.0)
    frames = cluster.deliver(3.0)
    relayed = [(f[0], type(p)) for f in frames if f[2] == RelayKind.RTCP
               for p in decode_compound(f[4])]
    assert sorted(relayed) == [("b", PictureLossIndication), ("c", PictureLossIndication)]
    assert upstream_plis(cluster.publisher, 0) - plis_before == 1
    assert len(cluster.publisher.connection.rtcp) > before


def test_the_last_subscriber_leaving_stops_the_feed(cluster) -> None:
    mirror = cluster.mirror("b", "cam")
    cluster.control(1.0)
    first, second = cluster.subscribe("b", "cam"), cluster.subscribe("b", "cam")
    first.close_transceivers(["0"])
    assert cluster.control(1.5) == []           # one subscriber left: the feed stays
    second.close_transceivers(["0"])
    machine_b = cluster.machines["b"]
    assert machine_b.get_timer() <= 1.0 + IDLE_GRACE
    machine_b.handle_timer(1.0 + IDLE_GRACE)
    assert cluster.control(7.0) == [("b", "a", "unpull")]
    assert mirror.ended and cluster.boards["b"].find("app", cluster.session_id, "cam") is None
    assert cluster.machines["a"].fanouts == {}
    cluster.deliver(7.0)
    cluster.send_video(200, 5, 7.1)
    assert cluster.deliver(7.1) == []           # A sends nothing any more
    assert cluster.boards["a"].find("app", cluster.session_id, "cam").subscriptions == []


def test_pulls_are_renewed_and_a_departed_node_drops_its_feeds(cluster) -> None:
    mirror = cluster.mirror("b", "cam")
    cluster.control(1.0)
    cluster.subscribe("b", "cam")
    machine_b = cluster.machines["b"]
    machine_b.handle_timer(1.0 + LEASE)
    assert cluster.control(1.0 + LEASE) == [("b", "a", "pull")]   # the lease, idempotent at A
    assert list(cluster.machines["a"].fanouts.values())[0].nodes == {"b": MEMBERS["b"]}
    # A leaves the registry: B's mirror ends (its subscribers' sections go quiet)
    machine_b.set_members({n: a for n, a in MEMBERS.items() if n != "a"})
    assert mirror.ended and machine_b.mirrors == {}
    assert cluster.control(5.0) == []           # nobody to tell
    # (A still sends to B: from A's side, B never said stop.)  C pulls, then leaves:
    cluster.mirror("c", "cam")
    cluster.control(5.0)
    fanout = list(cluster.machines["a"].fanouts.values())[0]
    assert sorted(fanout.nodes) == ["b", "c"]
    cluster.machines["a"].set_members({n: a for n, a in MEMBERS.items() if n != "c"})
    assert sorted(fanout.nodes) == ["b"]
    cluster.machines["a"].set_members({"a": MEMBERS["a"]})   # and B too: the feed stops
    assert cluster.machines["a"].fanouts == {} and fanout.track.subscriptions == []


def test_only_the_owner_may_feed_a_mirror_and_unknown_streams_are_counted(cluster) -> None:
    mirror = cluster.mirror("b", "cam")
    machine_b = cluster.machines["b"]
    machine_b.receive_relay(RelayPacketReceived("c", RelayKind.RTP, mirror.stream_id,
                                                rtp(CAM, 1, 96, VP8_KEY)), 1.0)
    machine_b.receive_relay(RelayPacketReceived("a", RelayKind.RTP, 12345,
                                                rtp(CAM, 1, 96, VP8_KEY)), 1.0)
    machine_b.receive_relay(RelayPacketReceived("a", RelayKind.RTCP, 12345, b"\x80"), 1.0)
    assert mirror.packets == 0
    assert machine_b.counters["rtp-no-mirror"] == 2 and machine_b.counters["rtcp-no-fanout"] == 1
    # a pull from a non-member, or of a track A does not have, is counted and ignored
    machine_a = cluster.machines["a"]
    machine_a.receive_control("pull", "x", cluster.session_id, "cam", 1.0)
    machine_a.receive_control("pull", "b", cluster.session_id, "nope", 1.0)
    assert machine_a.fanouts == {}
    assert machine_a.counters["pull-from-non-member"] == 1
    assert machine_a.counters["pull-unknown-track"] == 1


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=6)
                    | st.dictionaries(st.sampled_from(["codecs", "extensions", "streams", "rids",
                                                       "kind", "mid"]), children),
                    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(body=JSON)
def test_hostile_track_media_is_a_decode_error_or_a_valid_section(body) -> None:
    import json
    try:
        media = media_from_json(json.dumps(body))
    except DecodeError:
        return
    assert media.kind in ("audio", "video")
    assert all(0 <= codec.payload_type <= 127 for codec in media.codecs)


def test_out_of_range_numbers_in_track_media_are_refused(cluster) -> None:
    import json
    track = cluster.boards["a"].find("app", cluster.session_id, "cam")
    good = json.loads(media_to_json(track.media))
    for path, value in ((("codecs", 0, 0), 300), (("codecs", 0, 2), 0),
                        (("extensions", 0, 0), 0), (("streams", 0, 0), 2**32),
                        (("codecs", 0, 0), True), (("mid",), 5)):
        body = json.loads(json.dumps(good))
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(DecodeError):
            media_from_json(json.dumps(body))


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(list(RelayKind)), payload=st.binary(max_size=64))
def test_hostile_relay_payloads_never_raise(kind, payload) -> None:
    cluster = _shared()
    mirror = cluster.mirror("b", "cam")
    cluster.control(1.0)
    stream_id = mirror.stream_id
    cluster.machines["b"].receive_relay(RelayPacketReceived("a", kind, stream_id, payload), 1.0)
    cluster.machines["a"].receive_relay(RelayPacketReceived("b", kind, stream_id, payload), 1.0)


_CLUSTER: list[Cluster] = []


def _shared() -> Cluster:
    if not _CLUSTER:
        _CLUSTER.append(Cluster())
    return _CLUSTER[0]


def test_stream_ids_are_stable_32_bit_values() -> None:
    value = stream_id_of("s" * 32, "cam")
    assert value == stream_id_of("s" * 32, "cam") and 0 <= value < 2**32
    assert len({stream_id_of(os.urandom(16).hex(), "cam") for _ in range(1000)}) == 1000


def test_simulcast_layers_cross_under_their_own_stream_ids(shared) -> None:
    """B knows each packet's layer from its stream id, though the packets name no rid any more.

    Chromium's offer (three layers f/h/q); A learns each layer from the
    RtpStreamId extension of its first packets, then the packets stop
    carrying it (as browsers do).  Only then does B start mirroring: with a
    single stream id B could never name the layers, and its subscriber who
    prefers "h" would get nothing.
    """
    import struct

    from realtime.media.simulcast import SimulcastPreferences
    from realtime.sdp import SessionDescription

    sdp = (shared / "pcaps/generated/webrtc/webrtc-chromium-aiortc-simulcast.offer.sdp").read_text()
    offer = SessionDescription.parse(sdp)
    mid = next(m.mid for m in offer.media if m.kind == "video")
    cluster = Cluster()
    a = new(cluster.boards["a"])
    a.answer_offer(sdp, 0.0, publish={mid: "screen"})
    a.connection = Wire()
    media = offer.media_by_mid(mid)
    ids = {e.uri.rsplit(":", 1)[-1]: e.id for e in media.extensions}
    vp8 = next(c.payload_type for c in media.codecs if c.name == "VP8")
    ssrcs = {"f": 51, "h": 52, "q": 53}

    def packet(rid, seq, payload, named):
        if not named:
            return struct.pack("!BBHII", 0x80, vp8, seq, seq * 3000, ssrcs[rid]) + payload
        ext = bytes([ids["mid"] << 4 | len(mid) - 1]) + mid.encode() + \
            bytes([ids["rtp-stream-id"] << 4 | len(rid) - 1]) + rid.encode()
        ext += bytes(-len(ext) % 4)
        return struct.pack("!BBHIIHH", 0x90, vp8, seq, seq * 3000, ssrcs[rid], 0xBEDE,
                           len(ext) // 4) + ext + payload

    for rid in ssrcs:                                   # A learns the layers
        a.receive_media(PacketKind.RTP, packet(rid, 1, VP8_KEY, True), 0.5)
    screen = cluster.boards["a"].find("app", a.session_id, "screen")
    assert {s.rid for s in screen.streams.values()} == {"f", "h", "q"}
    mirrored = media_from_json(media_to_json(screen.media))
    mirror = cluster.machines["b"].mirror("app", a.session_id, "screen", "a", mirrored, 1.0)
    cluster.control(1.0)
    b = new(cluster.boards["b"])
    b.offer_media([MediaRequest("video", "subscribe", mirror,
                                preferences=SimulcastPreferences("h"))], 1.0)
    b.apply_answer(answer_sfu_offer(b.pending_offer), 1.0)
    b.connection = Wire()
    cluster.deliver(1.0)
    for seq in range(2, 6):                             # no rid extension any more
        for rid in ssrcs:
            a.receive_media(PacketKind.RTP,
                            packet(rid, seq, VP8_KEY if seq == 2 else VP8_DELTA, False), 1.1)
    frames = cluster.deliver(1.1)
    assert len({f[3] for f in frames if f[2] == RelayKind.RTP}) == 3   # one id per layer
    assert {s.rid: s.ssrc for s in mirror.streams.values()} == ssrcs
    assert len(b.connection.rtp) == 4                   # the "h" layer only, every packet
    assert b.transceiver("0").subscription.current_rid() == "h"
