"""
Cascading pulls, sans-I/O: a chain A -> B -> C of PullMachines (fan-out 1), real SFU sessions.

The machines of tests/cluster/test_pulls.py (three nodes, a scripted relay, the
clock passed in), with C pulling from B's mirror instead of from A: A sends each
packet once (to B); B relays it to C from its mirror; C's subscriber's gaps are
answered by B, which NACKs A only for its own; key frame requests climb the
chain; B leaving the registry makes C an orphan, and repointing C at A resumes it.
"""

from __future__ import annotations

from realtime.cluster.pulls import (CHILD_SILENCE, IDLE_GRACE, KEEPALIVE_ACK,
                                    KEEPALIVE_INTERVAL, LEASE, PARENT_SILENCE)
from realtime.cluster.relay import RelayKind
from realtime.cluster.track_media import media_from_json, media_to_json
from realtime.demux import PacketKind
from realtime.rtcp.feedback import GenericNack, PictureLossIndication
from realtime.rtcp.packet import decode_compound
from tests.cluster.test_pulls import MEMBERS, Cluster, upstream_plis
from tests.sfu.test_session import header


def chain() -> tuple[Cluster, dict]:
    """A -> B -> C for "cam", one subscriber at B and one at C."""
    cluster = Cluster()
    track = cluster.boards["a"].find("app", cluster.session_id, "cam")
    media = media_from_json(media_to_json(track.media))
    mirrors = {"b": cluster.machines["b"].mirror("app", cluster.session_id, "cam", "a", media,
                                                 1.0)}
    cluster.control(1.0)
    subscribers = {"b": cluster.subscribe("b", "cam")}
    mirrors["c"] = cluster.machines["c"].mirror("app", cluster.session_id, "cam", "a", media,
                                                1.0, parent="b")
    assert cluster.control(1.0) == [("c", "b", "pull")]
    subscribers["c"] = cluster.subscribe("c", "cam")
    cluster.deliver(1.0)
    cluster.deliver(1.0)
    return cluster, {"mirrors": mirrors, "subscribers": subscribers}


def test_c_pulls_from_b_and_a_sends_each_packet_once() -> None:
    cluster, parts = chain()
    cluster.send_video(100, 10, 1.1)
    first = cluster.deliver(1.1)
    assert [(f[0], f[1]) for f in first if f[2] == RelayKind.RTP] == [("a", "b")] * 10
    second = cluster.deliver(1.1)              # B relays what it received, from its mirror
    assert [(f[0], f[1]) for f in second if f[2] == RelayKind.RTP] == [("b", "c")] * 10
    for node in ("b", "c"):
        assert len(parts["subscribers"][node].connection.rtp) == 10
    fanout_a = cluster.machines["a"].fanouts[parts["mirrors"]["b"].stream_id]
    assert (fanout_a.packets, fanout_a.frames, sorted(fanout_a.nodes)) == (10, 10, ["b"])
    fanout_b = cluster.machines["b"].fanouts[parts["mirrors"]["b"].stream_id]
    assert fanout_b.track is parts["mirrors"]["b"] and fanout_b.frames == 10
    stats = cluster.machines["c"].stats()["mirrors"][f"{cluster.session_id}/cam"]
    assert (stats["owner"], stats["parent"], stats["relayed"]) == ("a", "b", 10)


def test_gaps_are_answered_at_the_hop_that_has_them() -> None:
    cluster, parts = chain()
    cluster.send_video(100, 4, 2.0)
    cluster.deliver(2.0)
    cluster.deliver(2.0)
    cluster.send_video(104, 6, 2.0)
    cluster.deliver(2.0)                        # A -> B complete
    cluster.deliver(2.0, drop=lambda f: f[2] == RelayKind.RTP and f[1] == "c"
                    and header(f[4])[2] in {105, 108})      # B -> C loses two
    assert len(parts["subscribers"]["c"].connection.rtp) == 8
    cluster.machines["c"].handle_timer(2.01)
    nacks = [(f[0], f[1], sorted(p.lost_sequence_numbers())) for f in cluster.deliver(2.01)
             if f[2] == RelayKind.RTCP for p in decode_compound(f[4])
             if isinstance(p, GenericNack)]
    assert nacks == [("c", "b", [105, 108])]   # to B, not to A
    repairs = [f for f in cluster.deliver(2.01) if f[2] == RelayKind.RTP_REPAIR]
    assert [(f[0], f[1]) for f in repairs] == [("b", "c")] * 2
    assert len(parts["subscribers"]["c"].connection.rtp) == 10
    for node in ("a", "b"):
        cluster.machines[node].handle_timer(2.2)
    assert not [f for f in cluster.deliver(2.2) if f[1] == "a"]    # nothing reached A
    assert cluster.publisher.rtcp.counters()["nacksSentUpstream"] == 0


def test_keyframe_requests_climb_the_chain_aggregated() -> None:
    cluster, parts = chain()
    cluster.send_video(100, 3, 1.1)
    cluster.deliver(1.1)
    cluster.deliver(1.1)
    cluster.send_video(103, 3, 2.0)
    cluster.deliver(2.0)
    cluster.deliver(2.0)
    plis = upstream_plis(cluster.publisher)
    extra = [cluster.subscribe("c", "cam") for _ in range(2)]
    cluster.deliver(2.5)
    cluster.deliver(2.5)
    for session in [parts["subscribers"]["c"], *extra]:
        ours = session.transceiver("0").send.ssrc
        session.receive_media(PacketKind.RTCP, PictureLossIndication(9, ours).encode(), 3.0)
    hops = []
    for _ in range(3):
        hops += [(f[0], f[1]) for f in cluster.deliver(3.0) if f[2] == RelayKind.RTCP
                 and any(isinstance(p, PictureLossIndication) for p in decode_compound(f[4]))]
    assert hops == [("c", "b"), ("b", "a")]    # one PLI per hop for three subscribers
    assert upstream_plis(cluster.publisher) - plis == 1


def test_b_leaving_orphans_c_and_repointing_at_a_resumes_it() -> None:
    cluster, parts = chain()
    mirror_c = parts["mirrors"]["c"]
    machine_c = cluster.machines["c"]
    without_b = {n: a for n, a in MEMBERS.items() if n != "b"}
    for node in ("a", "c"):
        cluster.machines[node].set_members(without_b)
    assert machine_c.tree_events() == [("orphan", mirror_c)]
    assert machine_c.mirrors[mirror_c.stream_id] is mirror_c      # kept: the root is alive
    assert machine_c.repoint(mirror_c, "a", 4.0)
    assert cluster.control(4.0) == [("c", "a", "pull")]           # no unpull to the gone B
    cluster.deliver(4.0)
    cluster.send_video(200, 5, 4.1)
    frames = [f for f in cluster.deliver(4.1) if f[2] == RelayKind.RTP]
    assert {(f[0], f[1]) for f in frames} == {("a", "c")}
    assert len(parts["subscribers"]["c"].connection.rtp) == 5
    assert not machine_c.repoint(mirror_c, "a", 4.2)              # already there


def test_a_relay_whose_subscribers_left_leaves_the_tree_then_drops_when_children_go() -> None:
    cluster, parts = chain()
    mirror_b = parts["mirrors"]["b"]
    machine_b = cluster.machines["b"]
    parts["subscribers"]["b"].close_transceivers(["0"])
    assert mirror_b.subscriptions                # C's fan-out still hangs from it
    assert machine_b.get_timer() <= mirror_b.idle_since + IDLE_GRACE
    machine_b.handle_timer(mirror_b.idle_since + IDLE_GRACE)
    assert machine_b.tree_events() == [("leave", mirror_b)]
    assert machine_b.mirrors[mirror_b.stream_id] is mirror_b      # still relays to C
    # C is moved to A (what the tree's detach tells it): B loses its last fan-out node
    mirror_c = parts["mirrors"]["c"]
    cluster.machines["c"].repoint(mirror_c, "a", 20.0)
    sent = cluster.control(20.0)               # (B's own lease renewal towards A too)
    assert ("c", "a", "pull") in sent and ("c", "b", "unpull") in sent
    machine_b.handle_timer(20.0)
    assert mirror_b.stream_id not in machine_b.mirrors
    assert machine_b.tree_events() == []         # it had left already
    assert ("b", "a", "unpull") in cluster.control(20.0)


def test_each_lease_asks_the_adapter_to_check_the_parent() -> None:
    cluster, parts = chain()
    machine_c = cluster.machines["c"]
    machine_c.handle_timer(1.0 + LEASE)
    assert ("check", parts["mirrors"]["c"]) in machine_c.tree_events()
    assert ("c", "b", "pull") in cluster.control(1.0 + LEASE)


def test_relays_send_keepalives_and_a_silent_parent_is_reported() -> None:
    cluster, parts = chain()
    mirror_c = parts["mirrors"]["c"]
    machines = cluster.machines
    for now in (1.3, 1.6, 1.9, 2.2):            # A and B relay: they keep their children posted
        for node in ("a", "b"):
            machines[node].handle_timer(now)
        keepalives = [(f[0], f[1]) for f in cluster.deliver(now)
                      if f[2] == RelayKind.KEEPALIVE and f[3] == 0]   # not the children's acks
        assert sorted(keepalives) == [("a", "b"), ("b", "c")]
        machines["c"].handle_timer(now)
        assert ("silent", mirror_c) not in machines["c"].tree_events()
    assert machines["c"].get_timer() <= 2.2 + PARENT_SILENCE
    # B dies without leaving the registry: C hears nothing for PARENT_SILENCE and says so
    machines["a"].handle_timer(2.5)
    cluster.deliver(2.5)
    machines["c"].handle_timer(2.2 + PARENT_SILENCE)
    assert ("silent", mirror_c) in machines["c"].tree_events()
    assert machines["c"].counters["parent-silent"] == 1
    machines["c"].handle_timer(2.2 + PARENT_SILENCE + 0.5)     # not again at once
    assert ("silent", mirror_c) not in machines["c"].tree_events()
    # moved to A (what the tree's move answers): A's keepalives count from now on
    assert machines["c"].repoint(mirror_c, "a", 3.5)
    cluster.control(3.5)
    machines["a"].handle_timer(3.6)
    assert ("a", "c") in [(f[0], f[1]) for f in cluster.deliver(3.6)
                          if f[2] == RelayKind.KEEPALIVE]
    machines["c"].handle_timer(3.6 + PARENT_SILENCE - 0.1)
    assert ("silent", mirror_c) not in machines["c"].tree_events()


def test_children_acknowledge_keepalives_and_a_dead_child_is_cut_off_within_a_second() -> None:
    """B relays to C; C is killed (no ``unpull``, still in the registry for its heartbeat's
    10 s): C's acknowledgements stop, and B stops relaying to it after CHILD_SILENCE."""
    cluster, parts = chain()
    machines = cluster.machines
    stream_id = parts["mirrors"]["b"].stream_id
    now = 1.0
    while now < 3.0:                            # healthy: every keepalive acknowledged
        now = round(now + KEEPALIVE_INTERVAL, 2)
        for node in ("a", "b", "c"):
            machines[node].handle_timer(now)
        frames = cluster.deliver(now) + cluster.deliver(now)
        acks = sorted((f[0], f[1]) for f in frames
                      if f[2] == RelayKind.KEEPALIVE and f[3] == KEEPALIVE_ACK)
        assert acks == [("b", "a"), ("c", "b")]
    assert sorted(machines["b"].fanouts[stream_id].nodes) == ["c"]
    assert "child-silent" not in machines["b"].counters
    killed = now                                # C dies: its frames (acks, pulls) stop
    cluster.send_video(300, 3, killed)
    while stream_id in machines["b"].fanouts and "c" in machines["b"].fanouts[stream_id].nodes:
        now = round(now + KEEPALIVE_INTERVAL, 2)
        for node in ("a", "b"):
            machines[node].handle_timer(now)
        cluster.deliver(now, drop=lambda f: f[0] == "c" or f[1] == "c")
        cluster.deliver(now, drop=lambda f: f[0] == "c" or f[1] == "c")
        assert now - killed <= CHILD_SILENCE + KEEPALIVE_INTERVAL
    assert machines["b"].counters["child-silent"] == 1
    assert stream_id not in machines["b"].fanouts      # B's only child: the fan-out is gone
    cluster.send_video(303, 3, now)
    frames = cluster.deliver(now) + cluster.deliver(now)
    assert not [f for f in frames if f[1] == "c"]       # nothing more is sent to C
    assert [(f[0], f[1]) for f in frames if f[2] == RelayKind.RTP] == [("a", "b")] * 3
    # A still hears B, so A keeps relaying to B (B's subscriber is fed)
    assert sorted(machines["a"].fanouts[stream_id].nodes) == ["b"]
    # a child that was alive after all pulls again at its lease and is fed again
    machines["c"].handle_timer(now + LEASE)
    assert ("c", "b", "pull") in cluster.control(now + LEASE)
    assert sorted(machines["b"].fanouts[stream_id].nodes) == ["c"]
