"""
DataChannels through the SFU without I/O: ids, fan-out, one-way, canReply, waitForAck, close.

Each session's PeerConnection is replaced by :class:`SctpLink`, which
carries SCTP packets straight (no DTLS) between the SFU's real
:class:`~realtime.peer.sctp_transport.SctpTransport` and a client-side one,
optionally dropping packets toward the client.  Time only moves when a
test jumps to the next SCTP deadline.
"""

from __future__ import annotations

import itertools
import random as pyrandom

import pytest

from realtime.peer.sctp_transport import (
    ChannelClosed, ChannelOpened, MessageReceived, SctpTransport,
)
from realtime.sdp import SessionDescription
from realtime.sdp.offer import MediaOffer
from realtime.sfu import datachannels as dc
from realtime.sfu.datachannels import ChannelExists, ChannelPolicy, NoTransport
from realtime.sfu.session import MediaRequest
from realtime.sfu.switchboard import Switchboard
from realtime.sfu.transceiver import APPLICATION
from tests.sfu.client import answer_sfu_offer, audio, certificate, push_offer

APPLICATION_OFFER = push_offer(MediaOffer("0", "application"))


class SctpLink:
    """A connected PeerConnection stand-in: SCTP goes straight to a client transport."""

    def __init__(self, dtls_role: str = "server", loss: float = 0.0, seed: int = 1) -> None:
        self.dtls_role = dtls_role
        self.state = "connected"
        self.sctp: SctpTransport | None = None
        self.client: SctpTransport | None = None
        self.loss = loss
        self.rng = pyrandom.Random(seed)
        self.dropped = 0
        self.received: dict[int, list] = {}
        self.client_events: list = []

    def attach_sctp(self, transport: SctpTransport) -> None:
        self.sctp = transport
        self.client = SctpTransport("client" if self.dtls_role == "server" else "server",
                                    random=counting_random(7))
        self.client.start(0.0)

    def flush_sctp(self, now: float) -> None:
        """Packets move in :func:`pump`; nothing to do here."""


def counting_random(start: int = 1):
    counter = itertools.count(start)
    return lambda n: (next(counter) % 251 + 1).to_bytes(1, "big") * n


def connect(session, now: float = 0.0, **link) -> SctpLink:
    """Give ``session`` a connected link and negotiate an m=application with a client offer."""
    session.connection = SctpLink(**link)
    session.answer_offer(APPLICATION_OFFER, now)
    return session.connection


def pump(sessions, now: float) -> None:
    """Move packets and events until every link is quiet."""
    for _ in range(1000):
        moved = False
        for session in sessions:
            link = session.connection
            for packet in link.sctp.packets_to_send(now):
                moved = True
                if link.loss and link.rng.random() < link.loss:
                    link.dropped += 1
                else:
                    link.client.receive_packet(packet, now)
            for packet in link.client.packets_to_send(now):
                moved = True
                link.sctp.receive_packet(packet, now)
            while (event := link.sctp.next_event()) is not None:
                moved = True
                session.handle_event(event, now)
            while (event := link.client.next_event()) is not None:
                link.client_events.append(event)
                if isinstance(event, MessageReceived):
                    link.received.setdefault(event.channel_id, []).append(event.data)
        if not moved:
            return
    raise AssertionError("links never went quiet")


def run(sessions, now: float, until: float) -> float:
    """Fire SCTP timers on both sides of every link until ``until``; return the time."""
    pump(sessions, now)
    while True:
        deadlines = [t for s in sessions for t in (s.connection.sctp.get_timer(),
                                                   s.connection.client.get_timer()) if t]
        if not deadlines or min(deadlines) > until:
            return until
        now = max(now, min(deadlines))
        for session in sessions:
            for transport in (session.connection.sctp, session.connection.client):
                deadline = transport.get_timer()
                if deadline is not None and deadline <= now:
                    transport.handle_timer(now)
        pump(sessions, now)


def client_open(link: SctpLink, channel, ordered=True, **reliability) -> None:
    """Open the client's negotiated twin of an API channel."""
    link.client.open_channel(channel.name, id=channel.id, negotiated=True, ordered=ordered,
                             **reliability)


@pytest.fixture
def board():
    return Switchboard(random=counting_random())


def new(board):
    return board.create_session("app", 0.0, certificate=certificate(), address="127.0.0.1",
                                port=40000)


@pytest.fixture
def fanout(board):
    """A publisher of "chat" and three subscribers, all connected and open."""
    publisher, subscribers = new(board), [new(board) for _ in range(3)]
    everyone = [publisher, *subscribers]
    for session in everyone:
        connect(session)
    pump(everyone, 0.0)
    chat = publisher.datachannels.publish("chat", ChannelPolicy(), 0.0)
    client_open(publisher.connection, chat)
    copies = [s.datachannels.subscribe(chat, ChannelPolicy(), 0.0) for s in subscribers]
    for session, copy in zip(subscribers, copies):
        client_open(session.connection, copy)
    pump(everyone, 0.0)
    return publisher, subscribers, chat, copies


# -- ids and transports ----------------------------------------------------------------


def test_ids_follow_our_dtls_parity_and_are_per_session(board) -> None:
    a, b = new(board), new(board)
    connect(a)
    connect(b, dtls_role="client")
    first = a.datachannels.publish("one", ChannelPolicy(), 0.0)
    second = a.datachannels.publish("two", ChannelPolicy(ordered=False), 0.0)
    copy = b.datachannels.subscribe(first, ChannelPolicy(), 0.0)
    assert (first.id, second.id) == (1, 3)  # DTLS server: odd ids (RFC 8832 §6)
    assert copy.id == 0  # DTLS client: even ids, its own numbering
    assert a.connection.sctp.channels.get(3).channel.negotiated
    assert not a.connection.sctp.channels.get(3).channel.ordered


def test_status_is_initializing_until_the_association_is_up(board) -> None:
    a = new(board)
    connect(a)
    chat = a.datachannels.publish("chat", ChannelPolicy(), 0.0)
    assert chat.describe() == {"location": "local", "dataChannelName": "chat", "id": 1,
                               "status": "initializing"}
    pump([a], 0.0)
    assert chat.status() == "active"


def test_without_application_section_there_is_no_transport(board) -> None:
    a = new(board)
    a.connection = SctpLink()
    a.answer_offer(push_offer(audio("0", 1111)), 0.0, publish={"0": "mic"})
    with pytest.raises(NoTransport):
        a.datachannels.publish("chat", ChannelPolicy(), 0.0)
    assert a.connection.sctp is None


def test_repeated_publication_and_subscription_are_refused(fanout) -> None:
    publisher, subscribers, chat, _ = fanout
    with pytest.raises(ChannelExists):
        publisher.datachannels.publish("chat", ChannelPolicy(), 0.0)
    with pytest.raises(ChannelExists):
        subscribers[0].datachannels.subscribe(chat, ChannelPolicy(), 0.0)


def test_policy_options_are_exclusive() -> None:
    with pytest.raises(dc.LocalProtocolError):
        ChannelPolicy(max_retransmits=0, max_packet_life_time=10)


# -- fan-out -------------------------------------------------------------------------------


def test_every_message_reaches_every_subscriber_in_order_with_its_type(fanout) -> None:
    publisher, subscribers, chat, copies = fanout
    everyone = [publisher, *subscribers]
    messages = ["hello", b"\x00\x01", "", b"", "x" * 1000, bytes(range(256)) * 256]
    for message in messages:  # the last one is 64 KiB
        publisher.connection.client.send(chat.id, message, 0.0)
    pump(everyone, 0.0)
    for session, copy in zip(subscribers, copies):
        assert session.connection.received[copy.id] == messages
    assert publisher.connection.received == {}  # nothing echoes to the publisher


def test_subscriber_messages_are_dropped_one_way(fanout) -> None:
    publisher, subscribers, chat, copies = fanout
    subscribers[0].connection.client.send(copies[0].id, "back", 0.0)
    pump([publisher, *subscribers], 0.0)
    assert publisher.connection.received == {}
    assert subscribers[0].datachannels.drops["one-way"] == 1


def test_can_reply_reaches_the_publisher_only_and_moves_on_grant(fanout) -> None:
    publisher, subscribers, chat, copies = fanout
    everyone = [publisher, *subscribers]
    subscribers[0].datachannels.grant_reply(copies[0], True)
    subscribers[1].datachannels.grant_reply(copies[1], True)  # replaces subscriber 0
    assert (copies[0].can_reply, copies[1].can_reply, chat.replier) == (False, True, copies[1])
    subscribers[0].connection.client.send(copies[0].id, "from 0", 0.0)
    subscribers[1].connection.client.send(copies[1].id, "from 1", 0.0)
    pump(everyone, 0.0)
    assert publisher.connection.received == {chat.id: ["from 1"]}
    assert all(copy.id not in s.connection.received for s, copy in zip(subscribers, copies))
    subscribers[1].datachannels.grant_reply(copies[1], False)
    assert chat.replier is None


def test_wait_for_ack_holds_delivery_until_the_first_message(board) -> None:
    publisher, subscriber = new(board), new(board)
    for session in (publisher, subscriber):
        connect(session)
    chat = publisher.datachannels.publish("chat", ChannelPolicy(), 0.0)
    copy = subscriber.datachannels.subscribe(chat, ChannelPolicy(), 0.0, wait_for_ack=True)
    client_open(publisher.connection, chat)
    client_open(subscriber.connection, copy)
    pump([publisher, subscriber], 0.0)
    publisher.connection.client.send(chat.id, "early", 0.0)
    pump([publisher, subscriber], 0.0)
    subscriber.connection.client.send(copy.id, "ack", 0.0)
    pump([publisher, subscriber], 0.0)
    publisher.connection.client.send(chat.id, "late", 0.0)
    pump([publisher, subscriber], 0.0)
    assert subscriber.connection.received == {copy.id: ["late"]}
    assert publisher.connection.received == {}  # the acknowledgment is consumed


def test_wait_for_ack_times_out_and_closes(board) -> None:
    publisher, subscriber = new(board), new(board)
    for session in (publisher, subscriber):
        connect(session)
    pump([publisher, subscriber], 0.0)
    chat = publisher.datachannels.publish("chat", ChannelPolicy(), 0.0)
    copy = subscriber.datachannels.subscribe(chat, ChannelPolicy(), 0.0, wait_for_ack=True)
    assert subscriber.datachannels.listed(dc.ACK_TIMEOUT - 1) == [copy]
    assert copy.status() == "active"
    subscriber.datachannels.listed(dc.ACK_TIMEOUT)
    assert copy.closed and copy.status() == "inactive" and chat.subscribers == []


def test_a_slow_subscriber_is_dropped_past_the_backlog(fanout, monkeypatch) -> None:
    publisher, subscribers, chat, copies = fanout
    monkeypatch.setattr(dc, "MAX_BACKLOG", 1000)
    subscribers[0].connection.loss = 1.0  # nothing reaches it: its backlog grows
    for index in range(20):
        publisher.connection.client.send(chat.id, "m" * 200, 0.0)
        pump([publisher, *subscribers], 0.0)
    assert publisher.datachannels.drops["subscriber-backlog"] > 0
    assert len(subscribers[1].connection.received[copies[1].id]) == 20


def test_unordered_unreliable_delivery_continues_through_loss(board) -> None:
    publisher, lossy, clean = new(board), new(board), new(board)
    connect(publisher)
    connect(clean)
    connect(lossy, loss=0.1, seed=4)
    everyone = [publisher, lossy, clean]
    now = run(everyone, 0.0, 10.0)  # handshakes survive the loss through retransmission
    policy = ChannelPolicy(ordered=False, max_retransmits=0)
    state = publisher.datachannels.publish("state", policy, now)
    client_open(publisher.connection, state, ordered=False, max_retransmits=0)
    copies = {s: s.datachannels.subscribe(state, policy, now) for s in (lossy, clean)}
    for session, copy in copies.items():
        client_open(session.connection, copy, ordered=False, max_retransmits=0)
    now = run(everyone, now, now + 5.0)
    lossy.connection.dropped = 0
    for index in range(300):
        publisher.connection.client.send(state.id, f"{index}", now)
        now = run(everyone, now, now + 0.02)
    now = run(everyone, now, now + 5.0)
    got = [int(m) for m in lossy.connection.received[copies[lossy].id]]
    assert lossy.connection.dropped > 0
    assert 200 < len(got) < 300  # lost ones stay lost (maxRetransmits 0) ...
    delivered = set(got)  # ... and never block later ones: every stretch keeps arriving
    assert all(len(delivered & set(range(k, k + 30))) >= 20 for k in range(0, 300, 30))
    assert sorted(int(m) for m in clean.connection.received[copies[clean].id]) == \
        list(range(300))


# -- closing ---------------------------------------------------------------------------------


def test_closing_a_publication_closes_its_subscriptions(fanout) -> None:
    publisher, subscribers, chat, copies = fanout
    assert publisher.datachannels.close(chat.id, 0.0) is chat
    assert publisher.datachannels.close(chat.id, 0.0) is None
    pump([publisher, *subscribers], 0.0)
    assert [c.status() for c in copies] == ["inactive"] * 3
    for session, copy in zip(subscribers, copies):
        assert ChannelClosed(copy.id) in session.connection.client_events
    assert ChannelClosed(chat.id) in publisher.connection.client_events
    again = publisher.datachannels.publish("chat", ChannelPolicy(), 0.0)
    assert again.id == chat.id and publisher.datachannels.listed(0.0) == [again]


def test_closing_a_subscription_detaches_it(fanout) -> None:
    publisher, subscribers, chat, copies = fanout
    subscribers[0].datachannels.close(copies[0].id, 0.0)
    publisher.connection.client.send(chat.id, "after", 0.0)
    pump([publisher, *subscribers], 0.0)
    assert chat.subscribers == copies[1:]
    assert copies[0].id not in subscribers[0].connection.received
    assert subscribers[1].connection.received[copies[1].id] == ["after"]


def test_the_publisher_resetting_its_stream_ends_the_publication(fanout) -> None:
    publisher, subscribers, chat, copies = fanout
    publisher.connection.client.close_channel(chat.id)
    pump([publisher, *subscribers], 0.0)
    assert chat.closed and all(c.closed for c in copies)


def test_closing_the_session_ends_its_publications(board, fanout) -> None:
    publisher, subscribers, chat, copies = fanout
    board.close_session(publisher)
    assert chat.closed and [c.status() for c in copies] == ["inactive"] * 3


# -- establish -------------------------------------------------------------------------------


def test_sfu_offer_of_application_opens_server_events_in_band(board) -> None:
    session = new(board)
    session.datachannels.want_server_events = True
    [transceiver] = session.offer_media([MediaRequest("application", APPLICATION)], 0.0)
    assert transceiver.codecs is None  # no payload types reserved for SCTP
    offer = session.pending_offer
    assert [m.kind for m in offer.media] == ["application"]
    assert offer.media[0].max_message_size == 262144
    assert session.datachannels.planned_server_events_id() == 1
    session.connection = SctpLink()
    session.apply_answer(answer_sfu_offer(SessionDescription.parse(offer.serialize())), 0.0)
    pump([session], 0.0)
    opened = [e.channel for e in session.connection.client_events
              if isinstance(e, ChannelOpened)]
    assert [(c.label, c.id, c.negotiated) for c in opened] == [("server-events", 1, False)]
    assert session.datachannels.server_events_id == 1


def test_a_late_wait_for_ack_subscriber_ends_without_starving_the_next(board) -> None:
    publisher, gated, subscriber = new(board), new(board), new(board)
    everyone = [publisher, gated, subscriber]
    for session in everyone:
        connect(session)
    pump(everyone, 0.0)
    chat = publisher.datachannels.publish("chat", ChannelPolicy(), 0.0)
    held = gated.datachannels.subscribe(chat, ChannelPolicy(), 0.0, wait_for_ack=True)
    copy = subscriber.datachannels.subscribe(chat, ChannelPolicy(), 0.0)   # listed after it
    client_open(publisher.connection, chat)
    client_open(subscriber.connection, copy)
    pump(everyone, 0.0)
    publisher.connection.client.send(chat.id, "hello", dc.ACK_TIMEOUT + 1)
    pump(everyone, dc.ACK_TIMEOUT + 1)
    assert held.closed and chat.subscribers == [copy]
    assert subscriber.connection.received == {copy.id: ["hello"]}
