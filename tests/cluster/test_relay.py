"""The relay link, two and three nodes at a time over a list of datagrams, and hostile bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from realtime.cluster.relay import (
    REPLAY_WINDOW, RelayHeader, RelayKind, RelayLink, RelayPacketReceived, ReplayWindow,
)
from realtime.errors import DecodeError, LocalProtocolError

SECRET = b"cluster secret of the test suite"
A, B, C = ("10.0.0.1", 7000), ("10.0.0.2", 7000), ("10.0.0.3", 7000)
MEMBERS = {"a": A, "b": B, "c": C}


def link(node_id: str, epoch: int = 1000, secret: bytes = SECRET) -> RelayLink:
    machine = RelayLink(node_id, secret, epoch)
    machine.set_members(MEMBERS)
    return machine


def events(machine: RelayLink) -> list:
    out = []
    while (event := machine.next_event()) is not None:
        out.append(event)
    return out


def test_one_seal_goes_to_every_destination_node() -> None:
    a, b, c = link("a"), link("b"), link("c")
    a.send(RelayKind.RTP, 7, b"\x80\x60rtp", [B, C])
    frames = a.datagrams_to_send(0.0)
    assert [addr for _, addr in frames] == [B, C]
    assert frames[0][0] == frames[1][0] and a.sealed == 1     # encrypted once
    b.receive_datagram(frames[0][0], A, 0.0)
    c.receive_datagram(frames[1][0], A, 0.0)
    expected = [RelayPacketReceived("a", RelayKind.RTP, 7, b"\x80\x60rtp")]
    assert events(b) == expected and events(c) == expected


def test_each_link_counts_its_frames_and_bytes() -> None:
    """Per other node and direction (the metrics' realtime_relay_link_* series)."""
    a, b = link("a"), link("b")
    a.send(RelayKind.RTP, 7, b"\x80\x60rtp", [B, C])
    a.send(RelayKind.RTP, 7, b"\x80\x60more", [B])
    frames = a.datagrams_to_send(0.0)
    assert dict(a.frames_out) == {"b": 2, "c": 1}
    assert a.bytes_out["b"] == len(frames[0][0]) + len(frames[2][0])
    assert a.bytes_out["c"] == len(frames[1][0])
    b.receive_datagram(frames[0][0], A, 0.0)
    b.receive_datagram(frames[0][0], A, 0.0)             # a replay: dropped, not counted
    assert dict(b.frames_in) == {"a": 1} and b.bytes_in["a"] == len(frames[0][0])
    b.receive_datagram(frames[2][0], ("10.9.9.9", 1), 0.0)  # not a member: not counted
    assert dict(b.frames_in) == {"a": 1}


def test_header_bytes() -> None:
    header = RelayHeader(RelayKind.RTCP, "a", 1000, 5, 7).encode()
    assert header == (
        b"\xc1"                                  # version: outside every RFC 7983 range
        b"\x02"                                  # kind: RTCP
        b"\x01" b"a"                             # sender id, length-prefixed
        b"\x00\x00\x00\x00\x00\x00\x03\xe8"      # epoch 1000
        b"\x00\x00\x00\x00\x00\x00\x00\x05"      # sequence 5
        b"\x00\x00\x00\x07")                     # stream id 7
    assert RelayHeader.decode(header + bytes(16)) == (
        RelayHeader(RelayKind.RTCP, "a", 1000, 5, 7), len(header))


def test_payload_is_encrypted() -> None:
    a = link("a")
    a.send(RelayKind.RTP, 1, b"secret media payload", [B])
    frame, _ = a.datagrams_to_send(0.0)[0]
    assert b"secret media payload" not in frame


def test_non_member_address_is_dropped_and_counted() -> None:
    a, b = link("a"), link("b")
    a.send(RelayKind.RTP, 1, b"x", [B])
    frame, _ = a.datagrams_to_send(0.0)[0]
    b.receive_datagram(frame, ("10.9.9.9", 7000), 0.0)
    assert events(b) == [] and b.dropped == {"non_member": 1}


def test_sender_id_must_match_the_members_address() -> None:
    """Node c cannot pass itself off as a by naming a in the header."""
    c, b = link("c"), link("b")
    c.node_id = "a"       # c lies about its id but sends from its own address
    c.send(RelayKind.RTP, 1, b"x", [B])
    frame, _ = c.datagrams_to_send(0.0)[0]
    b.receive_datagram(frame, C, 0.0)
    assert events(b) == [] and b.dropped == {"non_member": 1}


def test_wrong_secret_fails_authentication() -> None:
    intruder, b = link("a", secret=b"not the cluster secret!"), link("b")
    intruder.send(RelayKind.RTP, 1, b"x", [B])
    frame, _ = intruder.datagrams_to_send(0.0)[0]
    b.receive_datagram(frame, A, 0.0)
    assert events(b) == [] and b.dropped == {"authentication": 1}
    assert b._by_address[A].epoch == -1     # a forged frame moved no state


@pytest.mark.parametrize("offset", [0, 1, 3, 5, 12, 20, 24, -1])
def test_any_altered_byte_is_dropped(offset) -> None:
    a, b = link("a"), link("b")
    a.send(RelayKind.RTP, 1, b"payload", [B])
    frame = bytearray(a.datagrams_to_send(0.0)[0][0])
    frame[offset] ^= 0x01
    b.receive_datagram(bytes(frame), A, 0.0)
    assert events(b) == [] and sum(b.dropped.values()) == 1


def test_replays_are_dropped() -> None:
    a, b = link("a"), link("b")
    for i in range(3):
        a.send(RelayKind.RTP, 1, bytes([i]), [B])
    frames = [f for f, _ in a.datagrams_to_send(0.0)]
    for frame in [frames[2], frames[0], frames[2], frames[1], frames[0]]:
        b.receive_datagram(frame, A, 0.0)
    assert [e.payload for e in events(b)] == [b"\x02", b"\x00", b"\x01"]
    assert b.dropped == {"replay": 2}


def test_a_restarted_sender_is_accepted_and_its_old_epoch_refused() -> None:
    old, b = link("a", epoch=1000), link("b")
    old.send(RelayKind.RTP, 1, b"old", [B])
    old_frame = old.datagrams_to_send(0.0)[0][0]
    b.receive_datagram(old_frame, A, 0.0)
    new = link("a", epoch=2000)                    # restart: sequence starts again at 0
    new.send(RelayKind.RTP, 1, b"new", [B])
    b.receive_datagram(new.datagrams_to_send(0.0)[0][0], A, 0.0)
    b.receive_datagram(old_frame, A, 0.0)
    assert [e.payload for e in events(b)] == [b"old", b"new"]
    assert b.dropped == {"stale_epoch": 1}


def test_window_edges() -> None:
    window = ReplayWindow()
    window.record(REPLAY_WINDOW + 10)
    assert window.check(11) and not window.check(10)     # 10 is just outside the window
    window.record(11)
    assert not window.check(11) and window.check(12)


def test_membership_change_keeps_known_peers_state() -> None:
    a, b = link("a"), link("b")
    a.send(RelayKind.RTP, 1, b"x", [B])
    frame = a.datagrams_to_send(0.0)[0][0]
    b.receive_datagram(frame, A, 0.0)
    b.set_members({"a": A, "b": B})                # c left
    b.receive_datagram(frame, A, 0.0)
    assert b.dropped == {"replay": 1}
    b.set_members({"b": B})                        # a left
    b.receive_datagram(frame, A, 0.0)
    assert b.dropped == {"replay": 1, "non_member": 1}


def test_misuse_is_our_bug() -> None:
    with pytest.raises(LocalProtocolError):
        RelayLink("a", b"short", 1)
    with pytest.raises(LocalProtocolError):
        RelayHeader(1, "", 0, 0, 0).encode()


@settings(deadline=None)  # no per-example deadline: the machine is shared
@given(st.binary(max_size=120))
def test_hostile_datagrams_from_a_member_are_dropped_never_raised(data) -> None:
    b = link("b")
    b.receive_datagram(data, A, 0.0)
    assert events(b) == [] and sum(b.dropped.values()) == 1


@settings(deadline=None)  # no per-example deadline: the machine is shared
@given(st.binary(max_size=120))
def test_header_decoder_raises_only_decode_error(data) -> None:
    try:
        RelayHeader.decode(data)
    except DecodeError:
        pass


@settings(deadline=None)  # no per-example deadline: the machine is shared
@given(st.binary(max_size=60), st.integers(0, 2**32 - 1), st.sampled_from(list(RelayKind)))
def test_round_trip(payload, stream_id, kind) -> None:
    a, b = link("a"), link("b")
    a.send(kind, stream_id, payload, [B])
    b.receive_datagram(a.datagrams_to_send(0.0)[0][0], A, 0.0)
    assert events(b) == [RelayPacketReceived("a", kind, stream_id, payload)]
